"""A card's life on the server: enrollment (two steps) and deletion.

Enrollment leaves a *pending* row (device key and a fresh OPRF key) until the device
sends its share and PIN verifier; a pending row that is never finished expires and is
swept. Nothing about the card itself ever reaches the server: only the server share,
sealed to the server's X25519 key, and a verifier (an Ed25519 public key).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from .._errors import (
    InvalidChallenge,
    MalformedRequest,
    RateLimited,
    TamperedData,
    UnknownCard,
)
from .._profiles import ServerProfile
from .._protocol import (
    SEALED_KEY_LEN,
    DeleteRequest,
    EnrollBegin,
    EnrollBeginReply,
    EnrollFinish,
    EvaluateReply,
    ReenrollBegin,
    ReenrollFinish,
    card_id_for,
)
from .._resplit import TOKEN_LEN
from ..crypto import oprf
from ..crypto.memory import wipe
from ..crypto.shares import KEY_LEN
from ._checks import check_bytes, check_id
from ._envelopes import open_proof, open_to_server
from ._guesses import check_fresh, evaluate_blinded
from ._keyring import Keyring
from ._keys import ServerKeys
from ._refresh import REENROLL_STEP
from ._signatures import check_device_signature, check_pending_signature, check_signature
from ._store import AuditEvent, ChallengeRecord, Store

__all__ = ["Enrollment"]

_D_ORIGIN = b"splitvault/v1/enrollment-origin\x00"
_D_WALLET = b"splitvault/v5/wallet-row\x00"


class Enrollment:
    def __init__(self, store: Store, keyring: Keyring, keys: ServerKeys,
                 profile: ServerProfile, clock: Callable[[], float]) -> None:
        self._store = store
        self._keyring = keyring
        self._keys = keys
        self._profile = profile
        self._clock = clock

    def origin(self, address: str) -> bytes:
        """A keyed MAC of a client address, stored with its pending enrollments for the
        per-address cap: a dump shows which rows came from one address, not which
        address (with the KEK an insider could test guessed addresses, hence it is
        cleared once the enrollment finishes)."""
        return hmac.new(bytes(self._keys.ledger), _D_ORIGIN + address.encode("utf-8"),
                        "sha256").digest()[:16]

    def wallet_row(self, wallet_key: bytes) -> bytes:
        """The ``wallets`` row key of a device's wallet public key: a keyed MAC, so a
        dump cannot be matched against a wallet key seen elsewhere (a device's files,
        a log of enrollment requests) without the server's MAC key."""
        return hmac.new(bytes(self._keys.ledger), _D_WALLET + wallet_key,
                        "sha256").digest()[:16]

    def begin(self, request: EnrollBegin, origin: str | None = None) -> EnrollBeginReply:
        card_id = check_id(request.card_id, "card id")
        device_key = check_bytes(request.device_key, "device key", 32)
        blinded = check_bytes(request.blinded, "blinded element", 32)
        # The id is a hash of the device key, so "already in use" below can only ever
        # answer the holder of that key: no one learns whether another card's id exists.
        if not hmac.compare_digest(card_id, card_id_for(device_key)):
            raise MalformedRequest("card id is not the one its device key names")
        check_signature(device_key, request.signed_bytes(), request.signature)  # possession
        wallet_key = request.wallet_key
        if wallet_key is not None:
            # Possession of the wallet key too: else anyone who learned it could put
            # cards of his own in the wallet and spend its budget with wrong PINs.
            wallet_key = check_bytes(wallet_key, "wallet key", 32)
            check_signature(wallet_key, request.signed_bytes(), request.wallet_signature)
        now = self._clock()
        key = oprf.generate_key()
        try:
            evaluated = evaluate_blinded(key, blinded)
            wrapped = self._keyring.wrap("oprf-key", card_id, key)
        finally:
            wipe(key)
        wallet = None
        if wallet_key is not None:
            row = self.wallet_row(wallet_key)
            # A wallet its budget already locked would lock a new card at its first
            # use: the new card gets its own limit instead (a thief adding cards of
            # his own gains nothing from them).
            if self._store.wallet_guesses(row) < self._profile.guess_limit:
                wallet = self._keyring.wrap("wallet", card_id, row)
        slot = self._store.begin_enrollment(
            card_id, device_key, wrapped, now, now + self._profile.enrollment_ttl,
            origin=None if origin is None else self.origin(origin),
            per_origin=self._profile.pending_per_origin, total=self._profile.pending_total,
            wallet=wallet)
        if slot == "full":
            raise RateLimited("too many unfinished enrollments; retry in a few minutes")
        if slot == "taken":
            raise MalformedRequest("card id already in use")
        return EnrollBeginReply(evaluated, self._keys.x25519_public)

    def finish(self, request: EnrollFinish) -> None:
        card_id = check_id(request.card_id, "card id")
        check_bytes(request.verifier, "verifier", SEALED_KEY_LEN)
        envelope = check_bytes(request.envelope, "envelope")
        now = self._clock()
        pending = self._store.pending_card(card_id, now)
        signed = request.signed_bytes()
        # An unknown enrollment and a bad signature: one answer, after the same work.
        check_pending_signature(None if pending is None else pending.device_key, signed,
                                request.device_signature)
        if pending is None:
            raise UnknownCard()  # not reached: the dummy key's seed is never used
        verifier = self._opened(request.verifier, "enroll-verifier", card_id, 32)
        # The device knows the PIN key (and the signature, like the verifier, travels
        # sealed: in the clear either would test PIN guesses, see _protocol.proof_aad).
        check_signature(verifier, signed,
                        self._opened(request.pin_signature, "enroll-pin", card_id, 64))
        wrapped, token = self._wrapped_share(envelope, EnrollFinish.envelope_aad(card_id),
                                             card_id)
        if not self._store.finish_enrollment(card_id, verifier, wrapped, now,
                                             AuditEvent("enrolled", card_id), token):
            raise UnknownCard()  # expired, or finished by a concurrent request

    def reenroll_begin(self, request: ReenrollBegin) -> EvaluateReply:
        """The way back from a lock: the device key (possession of the device) starts
        a new enrollment of the same card id under a fresh OPRF key and a new PIN.

        It gives a thief with the device nothing: finishing it replaces the server's
        share, so the card sealed on the device can never be opened again; only the
        owner, who has the card itself to seal anew, gets a working card back. A thief
        could already destroy the card with ``delete``."""
        card_id = check_id(request.card_id, "card id")
        blinded = check_bytes(request.blinded, "blinded element", 32)
        now = self._clock()
        nonce, nonce_expires = check_fresh(request.nonce, request.timestamp, now)
        card = check_device_signature(self._store.card(card_id), request.signed_bytes(),
                                      request.signature)
        key = oprf.generate_key()
        challenge_id = secrets.token_hex(16)
        try:
            evaluated = evaluate_blinded(key, blinded)
            wrapped = self._keyring.wrap("oprf-key", challenge_id, key)
        finally:
            wipe(key)
        challenge = ChallengeRecord(challenge_id, card_id, secrets.token_bytes(32), "reenroll",
                                    now + self._profile.challenge_ttl, wrapped,
                                    card.share_version)
        outcome = self._store.begin_reenrollment(card_id, nonce, nonce_expires, challenge, now)
        if outcome == "replayed":
            raise InvalidChallenge("request already used (replayed nonce)")
        if outcome == "unknown":
            raise UnknownCard()
        # The version the new shares will have (``Store.finish_reenrollment``): every
        # copy of the device is below it, and so cut off.
        return EvaluateReply(evaluated, self._profile.guess_limit, challenge_id,
                             challenge.nonce, challenge.expires_at,
                             card.share_version + REENROLL_STEP)

    def reenroll_finish(self, request: ReenrollFinish) -> None:
        card_id = check_id(request.card_id, "card id")
        challenge_id = check_id(request.challenge_id, "challenge id")
        check_bytes(request.verifier, "verifier", SEALED_KEY_LEN)
        envelope = check_bytes(request.envelope, "envelope")
        now = self._clock()
        challenge = self._store.challenge(challenge_id)
        if (challenge is None or challenge.card_id != card_id or challenge.state != "reenroll"
                or challenge.expires_at < now or challenge.new_oprf_key is None):
            raise InvalidChallenge()
        signed = request.signed_bytes(challenge.nonce)
        check_device_signature(self._store.card(card_id), signed, request.device_signature)
        verifier = self._opened(request.verifier, "reenroll-verifier", card_id, 32)
        check_signature(verifier, signed,
                        self._opened(request.pin_signature, "reenroll-pin", card_id, 64))
        wrapped, token = self._wrapped_share(
            envelope, ReenrollFinish.envelope_aad(card_id, challenge_id), card_id)
        key = self._keyring.unwrap("oprf-key", challenge_id, challenge.new_oprf_key)
        try:
            oprf_key = self._keyring.wrap("oprf-key", card_id, key)
        finally:
            wipe(key)
        if not self._store.finish_reenrollment(card_id, challenge_id, oprf_key, verifier,
                                               wrapped, now, AuditEvent("reenrolled", card_id),
                                               token):
            raise InvalidChallenge()
        # The old share's pages: secure_delete zeroed them; scrubbing moves them out of
        # the WAL.
        self._store.scrub()

    def _opened(self, sealed: object, kind: str, card_id: str, length: int) -> bytes:
        value = open_proof(self._keys, sealed, kind, card_id, length)
        if value is None:
            raise TamperedData()
        return value

    def _wrapped_share(self, envelope: bytes, aad: bytes,
                       card_id: str) -> tuple[bytes, bytes | None]:
        """The server share and the first version's token the device sealed together
        (``share || token``), each wrapped. A share alone is refused: a card without a
        token needs no possession proof, and nobody holding the device key (a copy
        re-enrollment cut off, say) may take a card back to that form."""
        plain = open_to_server(self._keys, envelope, aad)
        parts = [bytearray(plain[:KEY_LEN]), bytearray(plain[KEY_LEN:])]
        try:
            if len(plain) != KEY_LEN + TOKEN_LEN:
                raise TamperedData()
            share = self._keyring.wrap("share", card_id, parts[0])
            token = self._keyring.wrap("share-token", card_id, parts[1])
            return share, token
        finally:
            wipe(plain, *parts)

    def delete(self, request: DeleteRequest) -> None:
        card_id = check_id(request.card_id, "card id")
        now = self._clock()
        nonce, nonce_expires = check_fresh(request.nonce, request.timestamp, now)
        card = self._store.card(card_id)
        if card is not None:
            check_device_signature(card, request.signed_bytes(), request.signature)
        else:
            # A half-done enrollment is deleted the same way (the device cancels what it
            # never saw finished); an unknown id costs the same one verification.
            pending = self._store.pending_card(card_id, now)
            check_pending_signature(None if pending is None else pending.device_key,
                                    request.signed_bytes(), request.signature)
        if not self._store.delete_card(card_id, nonce, nonce_expires, now):
            raise InvalidChallenge("request already used (replayed nonce)")
        # secure_delete zeroed the freed pages; scrubbing moves them out of the WAL.
        self._store.scrub()
