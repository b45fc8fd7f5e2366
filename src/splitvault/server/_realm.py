"""A realm of a t-of-n deployment: one share of each card's OPRF key and of its data key.

What a realm holds per card (``cards`` row, every secret wrapped under its KEK): the
device key, its OPRF key share ``k_i``, its share ``Sigma_i`` of the realms' side of the
data key, and the PIN verifier. None of it is worth anything alone: ``t - 1`` realms'
shares are uniform whatever the key and the card are (``crypto.threshold_secret``).

The order of checks is the single server's (``_guesses.py``), with one change that the
threshold argument needs: **every evaluation is a guess**. A PIN test takes ``t``
evaluations, each counted at its realm before it leaves, and a correct PIN proof at a
realm is the only thing that gives that realm's guesses back. So with ``n`` realms of
limit ``G`` an attacker with the device gets at most ``floor(n * G / t)`` PIN tests in
all, whatever order he asks the realms in, and one who also holds ``t - 1`` realms'
stores and KEKs (he evaluates and checks guesses there himself) at most
``(n - t + 1) * G`` (threat model RL3; ``ServerProfile.REALM``: G = 2, so 3 and 4).
The store's budget of unproven evaluations is that count: its window is set beyond any
lifetime here, so it never renews, and a realm at its limit refuses the card
(``CardLocked``) until the device re-enrolls it.

A release (the payment's PIN proof) seals ``Sigma_i`` to a gateway, bound to the
payment, and only to a gateway the realm's deployment file names: a thief who knows the
PIN could otherwise have the shares sealed to himself and open the card.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import NoReturn

from .._deployment import Deployment
from .._errors import (
    CardLocked,
    ConfigurationError,
    DeviceCloned,
    InvalidChallenge,
    MalformedRequest,
    RateLimited,
    TamperedData,
    UnknownCard,
    WrongPin,
)
from .._payment import validate_payment
from .._profiles import ServerProfile
from .._protocol import CardStatusReply, CardStatusRequest, card_id_for
from .._realm_api import MAX_DELTAS
from .._realm_protocol import (
    KEY_SHARE_LEN,
    REGISTER_PLAIN_LEN,
    SEALED_REGISTER_LEN,
    SIGMA_LEN,
    VERIFIER_LEN,
    RealmCatchUp,
    RealmCatchUpReply,
    RealmDelta,
    RealmEvaluate,
    RealmEvaluateReply,
    RealmInfo,
    RealmRegister,
    RealmRelease,
    RealmReleaseReply,
    register_aad,
    release_proof_aad,
    share_aad,
)
from .._realm_refresh import REFRESH_PLAIN_LEN as DELTA_PLAIN_LEN
from .._realm_refresh import open_delta
from .._resplit import possession_mac
from ..crypto import _field, oprf
from ..crypto.envelope import open_envelope, seal_envelope
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.signing import verify
from ..crypto.threshold import Share, ThresholdError, add_shares
from ..crypto.threshold import evaluate as evaluate_share
from ._checks import check_bytes, check_id, check_version
from ._guesses import check_fresh
from ._keyring import Keyring
from ._keys import ServerKeys
from ._refresh import is_late
from ._signatures import check_device_signature, check_signature
from ._status import CardStatus
from ._store import AuditEvent, CardRecord, ChallengeRecord, Store

__all__ = ["NEVER_RENEWS", "Realm"]

NEVER_RENEWS = 1e15
"""The unproven budget's window at a realm, in seconds: beyond any card's life, so an
evaluation stays counted until a correct PIN proof at this realm takes it back."""


class Realm:
    """The realm role. Gets the store, keyring, this server's keys, its profile, a clock
    and how to read its deployment (for the gateways it may seal shares to)."""

    def __init__(self, store: Store, keyring: Keyring, keys: ServerKeys,
                 profile: ServerProfile, clock: Callable[[], float],
                 deployment: Callable[[], Deployment | None]) -> None:
        self._store = store
        self._keyring = keyring
        self._keys = keys
        self._profile = profile
        self._clock = clock
        self._deployment = deployment
        self._status = CardStatus(store, profile, clock, lambda card: card.unproven)

    @property
    def key(self) -> bytes:
        """This realm's identity: the X25519 key devices seal to."""
        return self._keys.x25519_public

    def info(self) -> RealmInfo:
        return RealmInfo(self.key, self._profile.guess_limit, self._profile.challenge_ttl)

    def status(self, request: CardStatusRequest) -> CardStatusReply:
        """The card's state here, for its device: ``guesses_used`` counts evaluations
        since the last correct PIN (what this realm's limit counts)."""
        return self._status.query(request)

    # -- enrollment ------------------------------------------------------------------

    def register(self, request: RealmRegister) -> None:
        card_id = check_id(request.card_id, "card id")
        device_key = check_bytes(request.device_key, "device key", 32)
        envelope = check_bytes(request.envelope, "envelope", SEALED_REGISTER_LEN)
        if card_id != card_id_for(device_key):
            raise MalformedRequest("card id is not the one its device key names")
        version = request.share_version
        check_version(version)
        check_signature(device_key, request.signed_bytes(self.key), request.signature)
        now = self._clock()
        existing = self._store.card(card_id)
        if existing is not None:
            if existing.device_key != device_key:
                raise MalformedRequest("card id already in use")
            if version <= existing.share_floor:
                # Sent again (a lost reply, or catching this realm up later): the card
                # is here at this enrollment or a later one, and nothing is replaced.
                return
        elif self._store.deleted(card_id):
            # Deleted here: a registration kept on a device must not bring the card back
            # with its old shares and its counts at zero (security review).
            raise UnknownCard()
        try:
            plain = open_envelope(self._keys.x25519_secret, envelope,
                                  register_aad(card_id, self.key, version), public=self.key)
        except AuthenticationFailed:
            raise TamperedData() from None
        parts: list[bytearray] = [plain]
        try:
            if len(plain) != REGISTER_PLAIN_LEN:
                raise TamperedData()
            key_share = bytearray(plain[:KEY_SHARE_LEN])
            sigma = bytearray(plain[KEY_SHARE_LEN:KEY_SHARE_LEN + SIGMA_LEN])
            at = KEY_SHARE_LEN + SIGMA_LEN
            verifier = bytes(plain[at:at + VERIFIER_LEN])
            token = bytearray(plain[at + VERIFIER_LEN:])
            parts += [key_share, sigma, token]
            if (not _field.is_canonical(key_share) or _field.is_zero(key_share)
                    or not _field.is_canonical(sigma[:32]) or not _field.is_canonical(sigma[32:])):
                raise TamperedData()
            wrapped_key = self._keyring.wrap("oprf-key", card_id, key_share)
            wrapped_share = self._keyring.wrap("share", card_id, sigma)
            wrapped_token = self._keyring.wrap("share-token", card_id, token)
        finally:
            wipe(*parts)
        if existing is not None:
            # A re-enrollment: the device key (possession of the device) replaces
            # everything, which gives a thief nothing (the card sealed on the device
            # never opens again; only the owner has the card to seal anew).
            self._store.reregister(card_id, version, wrapped_key, wrapped_share, verifier,
                                   wrapped_token, now,
                                   AuditEvent("reenrolled", card_id, {"realm": True,
                                                                      "share_version": version}))
            self._store.scrub()
            return
        slot = self._store.begin_enrollment(
            card_id, device_key, wrapped_key, now, now + self._profile.enrollment_ttl,
            total=self._profile.pending_total)
        if slot == "full":
            raise RateLimited("too many unfinished enrollments; retry in a few minutes")
        if slot == "taken":
            pending = self._store.pending_card(card_id, now)
            if pending is None or pending.device_key != device_key:
                raise MalformedRequest("card id already in use")
            # A registration whose first attempt died between its two steps: the pending
            # row holds the key share of the same envelope; finish it below.
        done = self._store.finish_enrollment(card_id, verifier, wrapped_share, now,
                                             AuditEvent("enrolled", card_id, {"realm": True}),
                                             wrapped_token)
        if not done and self._store.card(card_id) is None:
            raise UnknownCard()  # the pending row expired under us
        if version:
            # Down when the card was first enrolled and re-enrolled since: first
            # registered at all now, at the re-enrollment's version.
            self._store.reregister(card_id, version, wrapped_key, wrapped_share, verifier,
                                   wrapped_token, now,
                                   AuditEvent("reenrolled", card_id, {"realm": True,
                                                                      "share_version": version}))

    # -- guesses -----------------------------------------------------------------------

    def evaluate(self, request: RealmEvaluate) -> RealmEvaluateReply:
        card_id = check_id(request.card_id, "card id")
        blinded = check_bytes(request.blinded, "blinded element", 32)
        now = self._clock()
        nonce, nonce_expires = check_fresh(request.nonce, request.timestamp, now)
        version = request.share_version
        check_version(version)
        signed = request.signed_bytes(self.key)
        card = check_device_signature(self._store.card(card_id), signed, request.signature)
        if card.cloned:
            raise DeviceCloned()
        limit = self._profile.guess_limit
        if card.locked or card.unproven >= limit:
            raise CardLocked()
        card = self._catch_up(card, version, request.deltas, request.possession, signed, now,
                              (nonce, nonce_expires), request.timestamp / 1000.0)
        key = self._keyring.unwrap("oprf-key", card_id, card.oprf_key)
        share = Share(1, key)  # the index plays no part in evaluating: k_i * B and its proof
        try:
            done = evaluate_share(share, blinded)
        except oprf.OprfError:
            raise MalformedRequest("malformed blinded element") from None  # spends nothing
        finally:
            share.wipe()
        evaluated, proof = done.element, done.proof
        challenge = ChallengeRecord(secrets.token_hex(16), card_id, secrets.token_bytes(32),
                                    "evaluated", now + self._profile.challenge_ttl)
        # Counted, durably, before the evaluation leaves: one conditional UPDATE in the
        # store, exact on any number of workers. Here the unproven budget *is* the
        # guess limit (see the module's docstring).
        # The version is judged again in the spend's transaction: a copy racing in with
        # the old one since is marked there.
        spend = self._store.spend_guess(card_id, nonce, nonce_expires, challenge, limit, now,
                                        unproven_limit=limit, unproven_window=NEVER_RENEWS,
                                        share_version=version)
        if spend.outcome == "replayed":
            raise InvalidChallenge("request already used (replayed nonce)")
        if spend.outcome == "unknown":
            raise UnknownCard()
        if spend.outcome in ("cloned", "cut_off", "unproven", "late", "ahead"):
            raise DeviceCloned()
        if spend.outcome != "spent":  # locked, or every evaluation of the limit used
            raise CardLocked()
        used = self._store.card(card_id)
        left = limit - (used.unproven if used is not None else limit)
        return RealmEvaluateReply(evaluated, proof, max(left, 0), challenge.challenge_id,
                                  challenge.nonce, challenge.expires_at, spend.share_version,
                                  card.share_floor)

    def _catch_up(self, card: CardRecord, version: int, deltas: object, possession: object,
                  signed: bytes, now: float, nonce: tuple[bytes, float],
                  sent_at: float) -> CardRecord:
        """Bring this realm's share to the device's ``version`` with the gateway's deltas
        it carries, and check the device holds that version (its token's MAC). A version
        behind this realm's, or one claimed without its token, is a copy of the device:
        the card is marked cloned here (audited) and refused."""
        if not isinstance(deltas, tuple) or not isinstance(possession, bytes):
            raise MalformedRequest("malformed re-split steps")
        if version < card.share_floor:
            # A copy from before the card's re-enrollment: cut off, and not marked (it
            # would freeze the re-enrolled card for its owner again).
            raise DeviceCloned()
        if version < card.share_version:
            if is_late(sent_at, card.committed_at):
                # Sent before this realm moved past its version: the owner's request
                # held back (dropped, then delivered late), not a copy's; refused, not
                # marked (second security review; as the single server's C4), and
                # recorded as the single server records it.
                self._store.append_audit(AuditEvent(
                    "stale_copy_refused", card.card_id,
                    {"presented": version, "share_version": card.share_version,
                     "late": True, "realm": True}), now)
                raise InvalidChallenge("this request was sent before the card's shares "
                                       "last changed; try again")
            self._cloned(card, version, now, nonce)
        steps = self._steps(card, deltas)
        if [d.version for d in steps] != list(range(card.share_version + 1, version + 1)):
            raise MalformedRequest(f"the re-split steps do not lead from version "
                                   f"{card.share_version} to {version}")

        def proven(token: bytearray) -> None:
            if not hmac.compare_digest(possession_mac(token, None, signed), possession):
                self._cloned(card, version, now, nonce)

        return self._advance(card, steps, now, proven)

    def catch_up(self, request: RealmCatchUp) -> RealmCatchUpReply:
        """Steps only, for a realm far behind (no evaluation, no guess, no possession
        proof: a step is the gateway's alone, so applying one a copy still holds moves
        the realm only where the owner's device takes it too)."""
        card_id = check_id(request.card_id, "card id")
        now = self._clock()
        nonce, nonce_expires = check_fresh(request.nonce, request.timestamp, now)
        card = check_device_signature(self._store.card(card_id),
                                      request.signed_bytes(self.key), request.signature)
        if card.cloned:
            raise DeviceCloned()
        if not isinstance(request.deltas, tuple):
            raise MalformedRequest("malformed re-split steps")
        steps = self._steps(card, request.deltas)
        if [d.version for d in steps] != list(range(card.share_version + 1,
                                                    card.share_version + 1 + len(steps))):
            raise MalformedRequest(f"the re-split steps do not follow version "
                                   f"{card.share_version}")
        if not self._store.use_nonce(nonce, nonce_expires):
            raise InvalidChallenge("request already used (replayed nonce)")
        moved = self._advance(card, steps, now, None)
        return RealmCatchUpReply(moved.share_version)

    @staticmethod
    def _steps(card: CardRecord, deltas: tuple[RealmDelta, ...]) -> list[RealmDelta]:
        """The steps past the card's version, in order (those it has are ignored); at
        most MAX_DELTAS per request, as on the wire, in process too."""
        if len(deltas) > MAX_DELTAS:
            raise MalformedRequest(f"at most {MAX_DELTAS} re-split steps per request")
        return sorted((d for d in deltas if d.version > card.share_version),
                      key=lambda d: d.version)

    def _advance(self, card: CardRecord, steps: list[RealmDelta], now: float,
                 proven: Callable[[bytearray], None] | None) -> CardRecord:
        """Apply ``steps`` (each opened and checked: the deployment's gateway made it for
        this realm, card and version), call ``proven`` with the token of the version
        reached, and store the share and token by compare-and-set."""
        card_id = card.card_id
        deployment = self._deployment() if steps else None
        if steps and deployment is None:
            raise ConfigurationError("this realm has no deployment file, so it trusts no "
                                     "gateway's re-split (start it with --deployment)")
        if card.share_token is None:
            raise TamperedData()  # every realm card has one from its registration
        sigma = self._keyring.unwrap("share", card_id, card.share)
        token = self._keyring.unwrap("share-token", card_id, card.share_token)
        try:
            for step in steps:
                if (step.realm_key != self.key or deployment is None
                        or deployment.gateway(step.gateway_key) is None):
                    raise MalformedRequest("a re-split step not made for this realm by a "
                                           "gateway of its deployment")
                try:
                    # Bound to this enrollment: a step made before the card was last
                    # re-enrolled (a copy kept it) does not open (security review).
                    plain = open_delta(self._keys.x25519_secret, self.key, step.gateway_key,
                                       card_id, step.version, step.sealed,
                                       floor=card.share_floor)
                except AuthenticationFailed:
                    raise TamperedData() from None
                try:
                    if len(plain) != DELTA_PLAIN_LEN:
                        raise TamperedData()
                    moved = add_shares(Share(1, sigma), Share(1, bytearray(plain[:SIGMA_LEN])))
                    wipe(sigma, token)
                    sigma, token = moved.value, bytearray(plain[SIGMA_LEN:])
                except ThresholdError:
                    raise TamperedData() from None
                finally:
                    wipe(plain)
            if proven is not None:
                proven(token)
            if not steps:
                return card
            version = steps[-1].version
            if not self._store.advance_share(
                    card_id, card.share_version, version,
                    self._keyring.wrap("share", card_id, sigma),
                    self._keyring.wrap("share-token", card_id, token), now,
                    AuditEvent("shares_committed", card_id,
                               {"share_version": version, "realm": True})):
                raise InvalidChallenge("the card's shares changed during this request; "
                                       "try again")
        finally:
            wipe(sigma, token)
        moved_card = self._store.card(card_id)
        if moved_card is None:
            raise UnknownCard()
        return moved_card

    def _cloned(self, card: CardRecord, presented: int, now: float,
                nonce: tuple[bytes, float]) -> NoReturn:
        # The request's nonce first: an old request of the owner's replayed after the
        # realm moved on is a replay, not a copy (it must not freeze the card).
        if not self._store.use_nonce(*nonce):
            raise InvalidChallenge("request already used (replayed nonce)")
        self._store.mark_cloned(card.card_id, card.share_version, now,
                                AuditEvent("clone_detected", card.card_id,
                                           {"presented": presented,
                                            "share_version": card.share_version}))
        raise DeviceCloned()

    # -- payments ----------------------------------------------------------------------

    def release(self, request: RealmRelease) -> RealmReleaseReply:
        card_id = check_id(request.card_id, "card id")
        payment = validate_payment(request.amount, request.currency, request.merchant,
                                   request.idempotency_key)
        gateway_key = check_bytes(request.gateway_key, "gateway key", 32)
        sealed = check_bytes(request.pin_signature, "PIN signature")
        deployment = self._deployment()
        if deployment is None:
            raise ConfigurationError("this realm has no deployment file, so it trusts no "
                                     "gateway (start it with --deployment)")
        if deployment.gateway(gateway_key) is None:
            raise MalformedRequest("the gateway key is not one of this realm's deployment")
        now = self._clock()
        challenge_id = check_id(request.challenge_id, "challenge id")
        challenge = self._store.challenge(challenge_id)
        if (challenge is None or challenge.card_id != card_id
                or challenge.state != "evaluated" or challenge.expires_at < now):
            raise InvalidChallenge()
        card = self._store.card(card_id)
        if card is None:
            raise UnknownCard()
        if card.cloned:
            raise DeviceCloned()  # marked since this challenge was issued
        if challenge.share_version != card.share_version:
            raise InvalidChallenge("the card's shares were re-split since this evaluation; "
                                   "pay again")
        verified = self._verified(card, request.signed_bytes(self.key, challenge.nonce),
                                  sealed)
        # One evaluation, one proof: consumed whatever the outcome. The evaluation was
        # counted already; a wrong proof counts again toward the lock, a right one gives
        # this realm's guesses back.
        outcome = self._store.settle_proof(card_id, challenge_id, verified=verified,
                                           limit=self._profile.guess_limit, now=now)
        if outcome.outcome == "gone":
            raise InvalidChallenge()
        if outcome.outcome == "locked":
            raise CardLocked()
        if outcome.outcome == "wrong":
            after = self._store.card(card_id)
            raise WrongPin(0 if after is None else max(self._profile.guess_limit
                                                       - after.unproven, 0))
        sigma = self._keyring.unwrap("share", card_id, card.share)
        try:
            return RealmReleaseReply(seal_envelope(
                gateway_key, sigma,
                share_aad(card_id, self.key, gateway_key, card.share_version,
                          payment.amount, payment.currency, payment.merchant,
                          payment.idempotency_key, floor=card.share_floor,
                          expires=int(challenge.expires_at * 1000))))
        finally:
            wipe(sigma)

    def _verified(self, card: CardRecord, message: bytes, sealed: bytes) -> bool:
        """Whether ``sealed`` opens to the PIN key's signature over ``message``; one that
        does not open is a wrong proof like any other."""
        try:
            signature = open_envelope(self._keys.x25519_secret, sealed,
                                      release_proof_aad(card.card_id, self.key),
                                      public=self.key)
        except AuthenticationFailed:
            return False
        try:
            verify(card.verifier, message, bytes(signature))
        except AuthenticationFailed:
            return False
        finally:
            wipe(signature)
        return True
