"""A card's life on the server: enrollment (two steps) and deletion.

Enrollment leaves a *pending* row (device key and a fresh OPRF key) until the device
sends its share and PIN verifier; a pending row that is never finished expires and is
swept. Nothing about the card itself ever reaches the server: only the server share,
sealed to the server's X25519 key, and a verifier (an Ed25519 public key).
"""

from __future__ import annotations

from collections.abc import Callable

from .._errors import InvalidChallenge, MalformedRequest, TamperedData, UnknownCard
from .._profiles import ServerProfile
from .._protocol import DeleteRequest, EnrollBegin, EnrollBeginReply, EnrollFinish
from ..crypto import oprf
from ..crypto.memory import wipe
from ._checks import check_bytes, check_id
from ._envelopes import open_to_server
from ._guesses import check_fresh, evaluate_blinded
from ._keyring import Keyring
from ._keys import ServerKeys
from ._signatures import check_device_signature, check_signature
from ._store import AuditEvent, Store

__all__ = ["Enrollment"]


class Enrollment:
    def __init__(self, store: Store, keyring: Keyring, keys: ServerKeys,
                 profile: ServerProfile, clock: Callable[[], float]) -> None:
        self._store = store
        self._keyring = keyring
        self._keys = keys
        self._profile = profile
        self._clock = clock

    def begin(self, request: EnrollBegin) -> EnrollBeginReply:
        card_id = check_id(request.card_id, "card id")
        device_key = check_bytes(request.device_key, "device key", 32)
        blinded = check_bytes(request.blinded, "blinded element", 32)
        check_signature(device_key, request.signed_bytes(), request.signature)  # possession
        now = self._clock()
        key = oprf.generate_key()
        try:
            evaluated = evaluate_blinded(key, blinded)
            wrapped = self._keyring.wrap("oprf-key", card_id, key)
        finally:
            wipe(key)
        if not self._store.begin_enrollment(card_id, device_key, wrapped, now,
                                            now + self._profile.enrollment_ttl):
            raise MalformedRequest("card id already in use")
        return EnrollBeginReply(evaluated, self._keys.x25519_public)

    def finish(self, request: EnrollFinish) -> None:
        card_id = check_id(request.card_id, "card id")
        verifier = check_bytes(request.verifier, "verifier", 32)
        envelope = check_bytes(request.envelope, "envelope")
        now = self._clock()
        pending = self._store.pending_card(card_id, now)
        if pending is None:
            raise UnknownCard()
        signed = request.signed_bytes()
        check_signature(pending.device_key, signed, request.device_signature)
        check_signature(verifier, signed, request.pin_signature)  # the device knows the PIN key
        share = open_to_server(self._keys, envelope, EnrollFinish.envelope_aad(card_id))
        try:
            if len(share) != 32:
                raise TamperedData()
            wrapped = self._keyring.wrap("share", card_id, share)
        finally:
            wipe(share)
        if not self._store.finish_enrollment(card_id, verifier, wrapped, now,
                                             AuditEvent("enrolled", card_id)):
            raise UnknownCard()  # expired, or finished by a concurrent request

    def delete(self, request: DeleteRequest) -> None:
        card_id = check_id(request.card_id, "card id")
        now = self._clock()
        nonce, nonce_expires = check_fresh(request.nonce, request.timestamp, now)
        check_device_signature(self._store.card(card_id), request.signed_bytes(),
                               request.signature)
        if not self._store.delete_card(card_id, nonce, nonce_expires, now):
            raise InvalidChallenge("request already used (replayed nonce)")
        # secure_delete zeroed the freed pages; scrubbing moves them out of the WAL.
        self._store.scrub()
