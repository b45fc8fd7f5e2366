"""Device-signed requests built by hand, as an attacker holding (or guessing) a device
key would build them: the same nonce, clock and signature a ``Device`` uses, with any
field the attack wants to choose; and the PIN verifier a device derives, as an attacker
holding its files would derive it to test a guess.
"""

from __future__ import annotations

import dataclasses
import secrets
import time

from .._profiles import KdfProfile
from .._protocol import DeleteRequest, EvaluateRequest
from ..crypto.memory import wipe
from ..crypto.signing import public_key, sign
from ..hazmat import DeviceCard, derive_pin_seed, device_possession

__all__ = ["device_verifier", "millis", "presented_version", "signed_delete",
           "signed_evaluate"]


def millis(now: float | None = None) -> int:
    """``now`` (default: this machine's clock) as the Unix milliseconds a device sends."""
    return int((time.time() if now is None else now) * 1000)


def signed_evaluate(card_id: str, seed: bytes | bytearray, blinded: bytes, *,
                    nonce: bytes | None = None, timestamp: int | None = None,
                    card: DeviceCard | None = None) -> EvaluateRequest:
    """An evaluate request signed with ``seed`` over a fresh nonce and the current time
    (or the ``nonce`` and ``timestamp`` given). With ``card`` (a stolen device's
    record) it presents that device's share version with its possession proof, as the
    device would; without, version 0 and no proof (a stranger's request)."""
    request = EvaluateRequest(card_id, secrets.token_bytes(16) if nonce is None else nonce,
                              millis() if timestamp is None else timestamp, blinded, b"",
                              0 if card is None else presented_version(card))
    request = dataclasses.replace(request, signature=sign(seed, request.signed_bytes()))
    if card is None:
        return request
    return dataclasses.replace(request, possession=device_possession(card, request))


def presented_version(card: DeviceCard) -> int:
    """The share version a device holding ``card`` presents: its staged re-split, if it
    has one (the server then commits it), else its current share's."""
    return card.share_version + (card.next_share is not None)


def signed_delete(card_id: str, seed: bytes | bytearray) -> DeleteRequest:
    """A delete request signed with ``seed`` over a fresh nonce and the current time."""
    request = DeleteRequest(card_id, secrets.token_bytes(16), millis(), b"")
    return dataclasses.replace(request, signature=sign(seed, request.signed_bytes()))


def device_verifier(card: DeviceCard, oprf_output: bytearray) -> bytes:
    """The PIN verifier ``card``'s device derives from ``oprf_output`` (which this
    wipes): equal to the server's for the right PIN's output, whatever held it."""
    seed = derive_pin_seed(oprf_output, salt=card.salt, device_secret=card.device_secret,
                           card_id=card.card_id, profile=KdfProfile.from_parameters(*card.kdf))
    try:
        return public_key(seed)
    finally:
        wipe(seed)
