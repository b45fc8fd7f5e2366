"""R, the re-split of a card's shares, as it travels from server to device, and the
proof that a device holds the share version it presents.

Shared by both roles (the rules are in ``server/_refresh.py``).

**R travels sealed** to an X25519 key the device drew for this payment and put in its
signed request, bound to the card and to the version R makes: nobody on the way learns
it, a sealed R opens for no other card or step, and the server need never store it (it
recomputes R from its two wrapped versions to answer a retry, and seals it afresh).
With R comes the next version's *token* ``T_v+1`` (32 random bytes), and a tag keyed
by the current version's token ``T_v``: only the server, which holds ``T_v`` wrapped,
can make one the device accepts, so a forged R (a hostile proxy that knows the
device's refresh public key) is refused before it could replace a working share.

**A presented version is proven**, not just claimed: the device key signs the version,
but a copy of the device has that key too. So each evaluation also carries a MAC over
its signed bytes under a key derived from the token of the version presented (and,
when it presents a refresh key, from X25519 of that key's secret with the server's
key): only a device that took that version's R (or enrolled it) has the token, and
only the device that drew the refresh key has its secret. A copy can then claim
neither a version it never held nor the owner's waiting re-split.

A second MAC, keyed by the *epoch token* (the token the card was enrolled or last
re-enrolled with, which both sides keep), proves the device belongs to the card's
current enrollment: only such a device's stale version marks the card as copied, so
a copy that re-enrollment cut off cannot mark it again by claiming a number.
"""

from __future__ import annotations

import hmac

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from ._protocol import refresh_aad
from .crypto.encoding import encode, u64
from .crypto.envelope import open_envelope, seal_envelope
from .crypto.errors import AuthenticationFailed
from .crypto.memory import wipe
from .crypto.shares import KEY_LEN

__all__ = ["POSSESSION_LEN", "TOKEN_LEN", "epoch_mac", "open_refresh", "possession_mac",
           "seal_refresh"]

TOKEN_LEN = 32
POSSESSION_LEN = 64
"""An evaluation's proof: the epoch MAC, then the version MAC (32 bytes each)."""
_TAG_LEN = 32
D_POSSESSION = b"splitvault/v4/possession"
D_EPOCH = b"splitvault/v4/epoch"
D_REFRESH_TAG = b"splitvault/v4/refresh-tag"


def _mac(key: bytes | bytearray, message: bytes) -> bytes:
    return bytes(blake2b(message, digest_size=32, key=bytes(key), encoder=RawEncoder))


def possession_mac(token: bytes | bytearray, dh: bytes | bytearray | None,
                   message: bytes) -> bytes:
    """The MAC an evaluation carries over ``message`` (its signed bytes): keyed by the
    presented version's token and, with a refresh key, the X25519 secret shared with
    the server (``dh``)."""
    key = bytearray(_mac(bytes(token), encode(D_POSSESSION, bytes(dh or b""))))
    try:
        return _mac(key, message)
    finally:
        wipe(key)


def epoch_mac(epoch_token: bytes | bytearray, message: bytes) -> bytes:
    """The MAC that shows a device of the card's current enrollment sent ``message``."""
    key = bytearray(_mac(bytes(epoch_token), encode(D_EPOCH)))
    try:
        return _mac(key, message)
    finally:
        wipe(key)


def _tag(tag_key: bytes | bytearray | None, card_id: str, version_after: int,
         r: bytes | bytearray, next_token: bytes | bytearray) -> bytes:
    if tag_key is None:  # a card enrolled before tokens: nothing to key a tag with
        return bytes(_TAG_LEN)
    return _mac(tag_key, encode(D_REFRESH_TAG, card_id.encode("utf-8"), u64(version_after),
                                bytes(r), bytes(next_token)))


def seal_refresh(refresh_key: bytes, r: bytes | bytearray, next_token: bytes | bytearray,
                 tag_key: bytes | bytearray | None, card_id: str, version_after: int) -> bytes:
    """R and the next version's token sealed to the device's refresh key, tagged under
    the current version's token (``tag_key``), bound to the card and the version."""
    plain = bytearray(r) + bytearray(next_token)
    try:
        plain += _tag(tag_key, card_id, version_after, r, next_token)
        return seal_envelope(refresh_key, plain, refresh_aad(card_id, version_after))
    finally:
        wipe(plain)


def open_refresh(secret: bytes | bytearray, sealed: bytes, card_id: str, version_after: int,
                 tag_key: bytes | bytearray | None) -> tuple[bytearray, bytearray]:
    """``(R, next token)`` from a sealed re-split; the caller wipes both.
    ``AuthenticationFailed`` if it was not sealed to this key, for this card and
    version, or (with ``tag_key``, this version's token) not made by the server."""
    plain = open_envelope(secret, sealed, refresh_aad(card_id, version_after))
    try:
        if len(plain) != KEY_LEN + TOKEN_LEN + _TAG_LEN:
            raise AuthenticationFailed("malformed re-split")
        r, token = bytearray(plain[:KEY_LEN]), bytearray(plain[KEY_LEN:KEY_LEN + TOKEN_LEN])
        if tag_key is not None and not hmac.compare_digest(
                _tag(tag_key, card_id, version_after, r, token), bytes(plain[-_TAG_LEN:])):
            wipe(r, token)
            raise AuthenticationFailed("re-split not made by the server")
        return r, token
    finally:
        wipe(plain)
