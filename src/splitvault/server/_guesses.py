"""PIN guesses: the OPRF evaluation that spends one, and the proof that settles it.

The order of checks is the security argument:

1. Shape, then freshness of the device's nonce and clock (no state touched).
2. The device key's signature, before anything is spent: a stranger who does not
   hold the device key cannot use up the card's guesses (no malicious lockout).
3. The evaluation is computed, then the guess is counted durably (one store
   transaction, which also takes the nonce and issues the proof's challenge), and
   only after that commit does the evaluation leave: the guess is counted before the
   PIN can be tried.
4. A proof consumes its challenge whatever its outcome: one evaluation, one proof.

What counts toward the lock is a *wrong proof*, not an evaluation. An evaluation gives
its requester OPRF(k, guess), but nothing to check it against: the verifier and every
PIN-key signature travel sealed to the server (``_protocol.proof_aad``), so the
device's files and transcripts hold nothing a candidate PIN key could be compared
with. The only PIN test is a proof sent here, and each wrong one is counted. An
evaluation whose proof never arrives (a dropped packet) therefore tests nothing and
cannot lock the card; it spends from a separate budget per window (``_store``), which
bounds the work a device key can ask for.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from .._errors import (
    CardLocked,
    DeviceCloned,
    InvalidChallenge,
    MalformedRequest,
    ServerRolledBack,
    UnknownCard,
    WrongPin,
)
from .._profiles import ServerProfile
from .._protocol import FRESHNESS_SECONDS, EvaluateReply, EvaluateRequest
from ..crypto import oprf
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.signing import verify
from ._checks import check_bytes, check_id, check_version
from ._envelopes import open_proof
from ._keyring import Keyring
from ._keys import ServerKeys
from ._refresh import proven, resealed
from ._signatures import check_device_signature
from ._store import CardRecord, ChallengeRecord, LedgerStart, ProofOutcome, RiskCheck, Store

__all__ = ["Guesses", "check_fresh", "evaluate_blinded"]

NONCE_LEN = 16


def check_fresh(nonce: object, timestamp: object, now: float) -> tuple[bytes, float]:
    """The nonce and how long the store must remember it, or a typed error."""
    nonce = check_bytes(nonce, "nonce", NONCE_LEN)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise MalformedRequest("malformed timestamp")
    at = timestamp / 1000.0
    if abs(at - now) > FRESHNESS_SECONDS:
        raise InvalidChallenge(
            "request timestamp is too far from the server's clock; check the device's clock")
    return nonce, max(at, now) + FRESHNESS_SECONDS


def evaluate_blinded(key: bytes | bytearray, blinded: bytes) -> bytes:
    try:
        return oprf.blind_evaluate(key, blinded)
    except oprf.OprfError:
        raise MalformedRequest("malformed blinded element") from None


class Guesses:
    """Counts guesses and settles proofs. Gets the store, the keyring and a clock."""

    def __init__(self, store: Store, keyring: Keyring, profile: ServerProfile,
                 clock: Callable[[], float], keys: ServerKeys) -> None:
        self._store = store
        self._keys = keys
        self._keyring = keyring
        self._profile = profile
        self._clock = clock

    def evaluate(self, request: EvaluateRequest) -> EvaluateReply:
        card_id = check_id(request.card_id, "card id")
        blinded = check_bytes(request.blinded, "blinded element", 32)
        version = request.share_version
        check_version(version)
        refresh_key = request.refresh_key
        if not isinstance(refresh_key, bytes) or len(refresh_key) not in (0, 32):
            raise MalformedRequest("malformed refresh key")
        now = self._clock()
        nonce, nonce_expires = check_fresh(request.nonce, request.timestamp, now)
        signed = request.signed_bytes()
        card = check_device_signature(self._store.card(card_id), signed, request.signature)
        if card.cloned:
            raise DeviceCloned()
        if card.locked:
            raise CardLocked()
        possession = request.possession
        if not isinstance(possession, bytes) or len(possession) not in (0, 64):
            raise MalformedRequest("malformed possession proof")
        # Signed by the device key, which a copy has too: the version claimed counts
        # only with its possession proof (``_refresh.proven``). Tokens never change for
        # a version within an enrollment, so this read of the card serves the store's
        # transaction below, which voids the proof if a re-enrollment came between.
        proof = proven(self._keyring, self._keys.x25519_secret, card, version, refresh_key,
                       possession, signed)
        key = self._keyring.unwrap("oprf-key", card_id, card.oprf_key)
        try:
            evaluated = evaluate_blinded(key, blinded)  # a bad element spends nothing
        finally:
            wipe(key)
        limit = self._profile.guess_limit
        challenge = ChallengeRecord(secrets.token_hex(16), card_id, secrets.token_bytes(32),
                                    "evaluated", now + self._profile.challenge_ttl)
        # The share version is judged in the same transaction that spends the
        # evaluation, before the evaluation leaves: a copy of the device is refused
        # without learning anything about a PIN (``_refresh.py``).
        spend = self._store.spend_guess(card_id, nonce, nonce_expires, challenge, limit, now,
                                        share_version=version, refresh_key=refresh_key,
                                        wallet=None if card.wallet is None
                                        else self._wallet_row(card_id, card.wallet),
                                        proven=proof.version, epoch_proven=proof.epoch,
                                        sent_at=request.timestamp / 1000.0,
                                        proof_floor=card.share_floor)
        if spend.outcome == "replayed":
            raise InvalidChallenge("request already used (replayed nonce)")
        if spend.outcome == "unknown":
            raise UnknownCard()
        if spend.outcome == "locked":
            raise CardLocked()
        if spend.outcome in ("cloned", "cut_off", "unproven"):
            raise DeviceCloned()
        if spend.outcome == "late":
            raise InvalidChallenge("this request was sent before the card's shares last "
                                   "changed; try again")
        if spend.outcome == "ahead":
            raise ServerRolledBack()
        if spend.outcome == "busy":
            raise InvalidChallenge(
                "too many unanswered PIN checks for this card; try again in a few minutes")
        refresh = None
        if spend.resend:
            # The owner, whose reply with R was lost (it proved the refresh key's
            # secret): R again, sealed afresh. The versions a waiting re-split keeps
            # never change until it is committed, which only this device can do.
            now_card = self._store.card(card_id)
            if (now_card is not None and now_card.share_version == spend.share_version
                    and now_card.share_next is not None):
                refresh = resealed(self._keyring, now_card, refresh_key)
        return EvaluateReply(evaluated, max(limit - spend.guesses_used - 1, 0),
                             challenge.challenge_id, challenge.nonce, challenge.expires_at,
                             spend.share_version, refresh)

    def _wallet_row(self, card_id: str, wrapped: bytes) -> bytes:
        """The card's wallet row key, unwrapped (it is not a secret like a share, but
        kept wrapped so that a dump does not show which cards share a wallet)."""
        return bytes(self._keyring.unwrap("wallet", card_id, wrapped))

    def wallet_guesses(self, card: CardRecord) -> int:
        """The wrong PINs counted against the card's wallet (0 for a card without)."""
        if card.wallet is None:
            return 0
        return self._store.wallet_guesses(self._wallet_row(card.card_id, card.wallet))

    def proof_card(self, card_id: str, challenge_id: object, state: str = "evaluated", *,
                   resent: bool = False) -> tuple[CardRecord, ChallengeRecord]:
        """The card and its live challenge in ``state`` (or, with ``resent``, one a
        proof already consumed), or ``InvalidChallenge`` / ``UnknownCard``. Nothing is
        consumed here; :meth:`settle` does that."""
        challenge_id = check_id(challenge_id, "challenge id")
        challenge = self._store.challenge(challenge_id)
        states = (state, "used") if resent else (state,)
        if (challenge is None or challenge.card_id != card_id or challenge.state not in states
                or challenge.expires_at < self._clock()):
            raise InvalidChallenge()
        card = self._store.card(card_id)
        if card is None:
            raise UnknownCard()
        return card, challenge

    def pin_verified(self, card: CardRecord, kind: str, message: bytes,
                     sealed: object) -> bool:
        """Whether ``sealed`` opens to the PIN key's signature over ``message``. A seal
        that does not open is a wrong proof like any other (it is counted)."""
        if not isinstance(sealed, bytes):
            raise MalformedRequest("malformed signature")
        signature = open_proof(self._keys, sealed, kind, card.card_id, 64)
        if signature is None:
            return False
        try:
            verify(card.verifier, message, signature)
        except AuthenticationFailed:
            return False
        return True

    def settle(self, card_id: str, challenge_id: str, verified: bool, *,
               ledger: LedgerStart | None = None,
               pin_change_key: bytes | None = None,
               risk: RiskCheck | None = None) -> ProofOutcome:
        """Consume the challenge and record the proof's outcome (one transaction);
        raise for a wrong PIN, a locked card or a challenge someone else consumed."""
        outcome = self._store.settle_proof(card_id, challenge_id, verified=verified,
                                           limit=self._profile.guess_limit, now=self._clock(),
                                           ledger=ledger, pin_change_key=pin_change_key,
                                           risk=risk,
                                           wallet=lambda blob: self._wallet_row(card_id, blob))
        if outcome.outcome == "gone":
            raise InvalidChallenge()
        if outcome.outcome == "locked":
            raise CardLocked()
        if outcome.outcome == "wrong":
            raise WrongPin(outcome.attempts_left)
        return outcome
