"""Changing a card's PIN: prove the old one, evaluate the new one under a fresh OPRF key,
then swap key and verifier in one transaction.

Proving the old PIN spends a guess like a payment does (its evaluation counted it).
The new OPRF key waits, wrapped, on the consumed challenge until the device proves
both PINs over the same challenge; a crash at any point leaves either the old PIN or
the new one working, never neither.
"""

from __future__ import annotations

from collections.abc import Callable

from .._errors import InvalidChallenge, TamperedData
from .._profiles import ServerProfile
from .._protocol import SEALED_KEY_LEN, ChangePinBegin, ChangePinFinish, EvaluateReply
from ..crypto import oprf
from ..crypto.memory import wipe
from ._checks import check_bytes, check_id
from ._envelopes import open_proof
from ._guesses import Guesses, evaluate_blinded
from ._keyring import Keyring
from ._keys import ServerKeys
from ._signatures import check_signature
from ._store import Store

__all__ = ["PinChange"]


class PinChange:
    def __init__(self, store: Store, keyring: Keyring, guesses: Guesses,
                 profile: ServerProfile, clock: Callable[[], float],
                 keys: ServerKeys) -> None:
        self._store = store
        self._keys = keys
        self._keyring = keyring
        self._guesses = guesses
        self._profile = profile
        self._clock = clock

    def begin(self, request: ChangePinBegin) -> EvaluateReply:
        card_id = check_id(request.card_id, "card id")
        blinded = check_bytes(request.new_blinded, "blinded element", 32)
        card, challenge = self._guesses.proof_card(card_id, request.challenge_id)
        verified = self._guesses.pin_verified(card, "change-pin",
                                              request.signed_bytes(challenge.nonce),
                                              request.pin_signature)
        key = oprf.generate_key()
        try:
            evaluated = evaluate_blinded(key, blinded)
            wrapped = self._keyring.wrap("oprf-key", challenge.challenge_id, key)
        finally:
            wipe(key)
        self._guesses.settle(card_id, challenge.challenge_id, verified, pin_change_key=wrapped)
        return EvaluateReply(evaluated, self._profile.guess_limit, challenge.challenge_id,
                             challenge.nonce, challenge.expires_at)

    def finish(self, request: ChangePinFinish) -> None:
        card_id = check_id(request.card_id, "card id")
        check_bytes(request.new_verifier, "verifier", SEALED_KEY_LEN)
        card, challenge = self._guesses.proof_card(card_id, request.challenge_id, "pin_change")
        signed = request.signed_bytes(challenge.nonce)
        verifier = self._open(request.new_verifier, "change-pin-verifier", card_id, 32)
        check_signature(card.verifier, signed,
                        self._open(request.old_pin_signature, "change-pin-old", card_id, 64))
        check_signature(verifier, signed,
                        self._open(request.new_pin_signature, "change-pin-new", card_id, 64))
        if challenge.new_oprf_key is None:
            raise TamperedData()
        key = self._keyring.unwrap("oprf-key", challenge.challenge_id, challenge.new_oprf_key)
        try:
            wrapped = self._keyring.wrap("oprf-key", card_id, key)
        finally:
            wipe(key)
        if not self._store.finish_pin_change(card_id, challenge.challenge_id, wrapped,
                                             verifier, self._clock()):
            raise InvalidChallenge()

    def _open(self, sealed: bytes, kind: str, card_id: str, length: int) -> bytes:
        value = open_proof(self._keys, sealed, kind, card_id, length)
        if value is None:
            raise TamperedData()
        return value
