"""The authorization flow: verify, recombine in memory, call the acquirer once, record.

1. Validate the payment and the message shape (no state touched on bad input).
2. Read the card and the proof's challenge; check the PIN signature (pure).
3. For a good proof of a key not yet in the ledger: recombine the shares and open
   the card, in memory, for this call only.
4. One transaction: consume the challenge, record the proof's outcome (a wrong PIN
   never gets further), reset the guess count and, for a new payment, write the
   ledger row as ``pending`` with this worker's *lease* (owner, expiry).
5. Call the acquirer with the payment's reference, then record its outcome (a second
   transaction). A crash in between leaves ``pending``: once the lease has expired a
   retry is refused as ``PaymentInDoubt``, never charged again; while it is live, a
   retry on any worker waits for it. Only an acquirer that says it did not take the
   payment (``AcquirerUnavailable``) lets the row go, so a retry may call again.
   Between the two, for a new key, the fraud rules (``_risk_book.py``) run inside the
   transaction of step 4: one that fires records a ``risk:`` decline instead of the
   pending row, and the acquirer is never called. The outcome's receipt is queued in
   the transaction of step 5 (``_outbox.py``) and delivered after it commits, so a
   failing receipt can never change the payment.
6. A payment in doubt is settled by reconciliation (``_reconcile.py``); one settled as
   ``reversed`` or ``failed`` took no money, and the next retry charges it once, under
   a new attempt and so a new payment reference (``Store.restart_payment``).
7. An approval re-splits the shares (``_refresh.py``): the next server share is drawn
   while the current one is unwrapped in step 3, written (wrapped) in the transaction
   of step 5 with the approval, and R goes back sealed to the request's refresh key.
   Every reply carries the re-split still waiting for this device, if the request's
   key is the one it was sealed to, so a retry of a lost reply gets it again.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime

from .._authorization import Authorization
from .._card import Card
from .._errors import (
    AcquirerUnavailable,
    Declined,
    IdempotencyConflict,
    InvalidChallenge,
    PaymentInDoubt,
    ServerUnavailable,
    TamperedData,
)
from .._payment import Payment, validate_payment
from .._profiles import ServerProfile
from .._protocol import AuthorizeReply, AuthorizeRequest, card_record_aad
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.sealing import open_sealed
from ..crypto.shares import KEY_LEN, combine
from ._acquirer import Authorize, clean_text
from ._checks import check_bytes, check_id
from ._envelopes import open_to_server
from ._guesses import Guesses
from ._keyring import REFRESH_SECONDS, Keyring
from ._keys import ServerKeys
from ._ledger import Ledger
from ._outbox import Outbox
from ._refresh import Resplit, draw, resealed
from ._risk_book import RiskBook
from ._store import (
    RETRYABLE,
    AuditEvent,
    CardRecord,
    LedgerEntry,
    LedgerStart,
    OutboxMessage,
    RiskCheck,
    ShareStep,
    Store,
)

__all__ = ["Payments"]

_POLL = 0.02
OWNER_LIVE_SECONDS = 3 * REFRESH_SECONDS
"""A lease owner whose heartbeat is older than this is taken as gone (``serve``
refreshes every worker's heartbeat every :data:`REFRESH_SECONDS`)."""
OWNER_CHECK_SECONDS = 0.5
"""How often a waiting retry looks at the owner's heartbeat (a read of the workers
table): far more often than a heartbeat can age, far less often than every poll."""
MAX_WAIT_SECONDS = 5.0
"""How long a retry waits for another worker's live attempt at the same key before
answering "still being processed": below the device's default 10 s deadline."""
INTENT_REASON = "outcome unknown"
"""The decline reason a pending row's wrapped intent carries until it is settled."""


class Payments:
    """Authorizes payments exactly once. Gets the store, keys, ledger, the guess rules,
    the acquirer call, a clock and this worker's name (the lease owner)."""

    def __init__(self, store: Store, keyring: Keyring, keys: ServerKeys, ledger: Ledger,
                 guesses: Guesses, authorize: Authorize, profile: ServerProfile,
                 clock: Callable[[], float], owner: str,
                 sleep: Callable[[float], None] = time.sleep, *,
                 risk: RiskBook | None = None, outbox: Outbox | None = None) -> None:
        self._store = store
        self._keyring = keyring
        self._keys = keys
        self._ledger = ledger
        self._guesses = guesses
        self._authorize = authorize
        self._profile = profile
        self._clock = clock
        self._owner = owner
        self._sleep = sleep
        self._risk = risk
        self._outbox = outbox

    def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        card_id = check_id(request.card_id, "card id")
        payment = validate_payment(request.amount, request.currency, request.merchant,
                                   request.idempotency_key)
        envelope = check_bytes(request.envelope, "envelope")
        refresh_key = check_bytes(request.refresh_key, "refresh key", 32)
        card, challenge = self._guesses.proof_card(card_id, request.challenge_id,
                                                   resent=True)
        verified = self._guesses.pin_verified(card, "authorize",
                                              request.signed_bytes(challenge.nonce),
                                              request.pin_signature)
        ledger = self._ledger
        key = ledger.key_digest(card_id, payment.idempotency_key)
        params = ledger.params_digest(card_id, payment.idempotency_key, payment.amount,
                                      payment.currency, payment.merchant)
        if challenge.state == "used":
            return self._reply(card_id, refresh_key, self._resent(key, params, verified))
        if challenge.share_version != card.share_version:
            # The shares were re-split and committed since this challenge was issued
            # (another payment of this device, racing): the envelope holds a share of
            # a version the server no longer has. The proof is settled (counted if
            # wrong) and nothing is charged.
            self._guesses.settle(card_id, challenge.challenge_id, verified)
            raise InvalidChallenge("the card's shares were re-split during this payment; "
                                   "pay again")
        entry = self._store.ledger_entry(key) if verified else None
        found: Card | None = None
        resplit: Resplit | None = None
        tampered = False
        if verified and (entry is None or entry.state in RETRYABLE):
            # The PIN verified and there is something to charge: only now are the
            # shares recombined.
            opened = self._open_card(card, challenge.challenge_id, envelope)
            if opened is not None:
                found, resplit = opened
            tampered = found is None
        start = risk = None
        step = None
        try:
            if found is not None and resplit is not None:
                start = self._start(card_id, found, payment, key, params, 0)
                risk = self._risk_check(card_id, card.device_key, found, payment, key,
                                        start.reference)
                step = ShareStep(card_id, card.share_version, resplit.wrapped_next,
                                 refresh_key, resplit.wrapped_token)
            outcome = self._guesses.settle(card_id, challenge.challenge_id, verified,
                                           ledger=start, risk=risk)
            if tampered:
                # The challenge stays consumed: the PIN proof was good, the device's
                # data is not.
                raise TamperedData()
            if found is not None and start is not None and outcome.ledger == "new":
                return self._reply(card_id, refresh_key,
                                   self._charge(card_id, found, payment, start, step),
                                   resplit)
            recorded = outcome.entry or entry
            if (found is not None and recorded is not None and recorded.state in RETRYABLE
                    and ledger.same_params(recorded, params)):
                # Settled without taking money: this retry charges it once, under the
                # next attempt's reference. Of concurrent retries one wins the row.
                again = self._start(card_id, found, payment, key, params,
                                    recorded.attempt + 1)
                if self._store.restart_payment(again, recorded.attempt, self._clock()):
                    return self._reply(card_id, refresh_key,
                                       self._charge(card_id, found, payment, again, step),
                                       resplit)
                recorded = self._store.ledger_entry(key)
        finally:
            del found  # the acquirer's copy is the last; see threat_model.md
            if resplit is not None:
                resplit.wipe()
        if recorded is None:  # cannot happen: a good proof has a card or an entry
            raise TamperedData()
        return self._reply(card_id, refresh_key, self._recorded(key, params, recorded))

    def _reply(self, card_id: str, refresh_key: bytes, result: Authorization,
               resplit: Resplit | None = None) -> AuthorizeReply:
        """The result, with the re-split waiting for the device if ``refresh_key`` is
        the key it was sealed to: this payment's own (R still in memory), or an
        earlier one whose reply was lost (R recomputed from the two versions)."""
        card = self._store.card(card_id)
        if card is None:
            return AuthorizeReply(result)
        if (card.share_next is None or card.refresh_key is None
                or not hmac.compare_digest(card.refresh_key, refresh_key)):
            return AuthorizeReply(result, card.share_version)
        if resplit is not None and card.share_next == resplit.wrapped_next:
            sealed = resplit.seal(refresh_key, card_id, card.share_version)
        else:
            sealed = resealed(self._keyring, card, refresh_key)
        return AuthorizeReply(result, card.share_version, sealed)

    def _start(self, card_id: str, card: Card, payment: Payment, key: bytes, params: bytes,
               attempt: int) -> LedgerStart:
        """The pending row of one attempt. Its ``intent`` (the payment's details,
        wrapped) lets a reconciler record the outcome later without the card."""
        # Sealed as a decline that says so: a reconciler replaces it with the outcome,
        # and nothing ever shows a row's intent as its result.
        intent = self._ledger.seal_result(key, self._result(card, payment, None,
                                                            INTENT_REASON))
        return LedgerStart(key, params, self._owner, self._clock() + self._profile.lease_seconds,
                           self._ledger.reference(card_id, payment.idempotency_key, attempt),
                           intent, attempt)

    def _risk_check(self, card_id: str, device_key: bytes, card: Card, payment: Payment,
                    key: bytes, reference: str) -> RiskCheck | None:
        """The fraud rules' check for a new payment (None if no rule is set). Only what
        the server may hold enters it: card id, device key, amount, currency, merchant,
        time; the decline it may record is sealed like any other result, and gets a
        receipt like any other (queued in the same transaction)."""
        if self._risk is None:
            return None
        fact = self._risk.fact(payment, device_key, self._clock())
        outbox = self._outbox

        def notify(reason: str) -> tuple[OutboxMessage, ...]:
            if outbox is None:
                return ()
            return outbox.receipts(self._result(card, payment, None, reason), reference)
        return self._risk.check(card_id, fact, lambda reason: self._ledger.seal_result(
            key, self._result(card, payment, None, reason)), notify)

    def _resent(self, key: bytes, params: bytes, verified: bool) -> Authorization:
        """A proof sent again for the challenge it already consumed (the device lost
        the reply): the recorded result for its key, or ``InvalidChallenge``.

        Nothing is counted, reset or charged: the proof was settled when it first
        arrived. Only the holder of the PIN key can make a proof that verifies, it is
        bound to this payment's key and parameters, and the answer is the result its
        first arrival recorded, which the sender was owed anyway."""
        entry = self._store.ledger_entry(key) if verified else None
        if entry is None:
            raise InvalidChallenge()
        return self._recorded(key, params, entry)

    def _charge(self, card_id: str, card: Card, payment: Payment,
                start: LedgerStart, step: ShareStep | None) -> Authorization:
        outcome = self._ask_acquirer(card, payment, start)
        approved = outcome.approved
        recorded = False
        try:
            # An approval re-splits the shares in the same transaction (``step``):
            # recorded together or not at all.
            recorded = self._store.finish_payment(
                start.key, self._owner, "approved" if approved else "declined",
                self._ledger.seal_result(start.key, outcome), self._clock(),
                AuditEvent("authorized" if approved else "declined", card_id),
                () if self._outbox is None else self._outbox.receipts(outcome,
                                                                      start.reference),
                step=step if approved else None)
        except Exception:
            recorded = False  # handled below, outside the except block
        if not recorded:
            # The acquirer answered but we could not write it down (disk full, I/O
            # error, the database gone): money may have moved, so the answer is "in
            # doubt", never "failed".
            self._mark_in_doubt(start.key)
            raise PaymentInDoubt(_in_doubt("its answer could not be recorded"))
        return outcome

    def _ask_acquirer(self, card: Card, payment: Payment, start: LedgerStart) -> Authorization:
        """The acquirer's answer as a result, or the error to raise.

        Errors are raised *after* the except blocks, so the acquirer's own exception is
        not even reachable as ``__context__``: its text could hold anything, the card
        included.
        """
        verdict, code, reason, why = "doubt", None, None, ""
        try:
            code = self._authorize(card, payment.amount, payment.currency, payment.merchant,
                                   start.reference)
            verdict = "approved"
        except Declined as declined:
            verdict, reason = "declined", clean_text(declined.reason) or "declined"
        except AcquirerUnavailable:
            verdict = "unavailable"
        except Exception as exc:
            # Anything else: see below. Only the type's name is kept, never the text.
            name = clean_text(type(exc).__name__)[:40] or "an exception"
            verdict, why = "doubt", f"the acquirer raised {name}"
        if verdict == "unavailable":
            # The acquirer says it never took the payment: nothing was charged, nothing
            # is recorded, and a retry may try again.
            try:
                self._store.abandon_payment(start.key, self._owner)
            except Exception:
                self._mark_in_doubt(start.key)
                raise PaymentInDoubt() from None
            raise AcquirerUnavailable()
        if verdict == "approved" and (not isinstance(code, str) or not clean_text(code)):
            # An approval we cannot record faithfully.
            verdict = "doubt"
            why = f"the acquirer's answer was malformed ({type(code).__name__})"
        if verdict == "doubt":
            # A timeout, a dropped connection, a bug: any of them may have come after the
            # money moved. Calling that "failed" is how money gets taken for a payment
            # the user was told had failed; so it stays in doubt until reconciled.
            self._mark_in_doubt(start.key)
            raise PaymentInDoubt(_in_doubt(why))
        return self._result(card, payment, clean_text(code) if code else None, reason)

    def _mark_in_doubt(self, key: bytes) -> None:
        try:
            self._store.mark_in_doubt(key, self._owner, self._clock())
        except Exception:
            # Best effort: a row left 'pending' is in doubt anyway once its lease
            # expires (see _recorded).
            return

    def _result(self, card: Card, payment: Payment, code: str | None,
                reason: str | None) -> Authorization:
        return Authorization(
            approved=code is not None,
            approval_code=code,
            decline_reason=reason,
            masked_pan=f"•••• {card.last4}",
            amount=payment.amount,
            currency=payment.currency,
            merchant=payment.merchant,
            idempotency_key=payment.idempotency_key,
            timestamp=datetime.fromtimestamp(self._clock(), UTC),
        )

    def _recorded(self, key: bytes, params: bytes, entry: LedgerEntry) -> Authorization:
        """What the ledger says for a key already there; waits while another worker's
        lease on it is live."""
        if not self._ledger.same_params(entry, params):
            raise IdempotencyConflict()
        waited, owner_checked = 0.0, -OWNER_CHECK_SECONDS
        while entry.state in ("pending", "in_doubt", "settling"):
            if entry.state != "pending":
                raise PaymentInDoubt()
            if entry.lease_until < self._clock():
                # Its worker died or hung past its lease: whatever it did is unknown.
                self._store.mark_in_doubt(key, None, self._clock())
                raise PaymentInDoubt()
            if (entry.owner != self._owner and waited - owner_checked >= OWNER_CHECK_SECONDS
                    and not self._owner_alive(entry.owner)):
                # Its worker is gone (no heartbeat: killed, or closed): nobody will
                # record what the acquirer did, so it is in doubt now, not at lease end.
                self._store.mark_in_doubt(key, entry.owner, self._clock())
                raise PaymentInDoubt()
            if waited - owner_checked >= OWNER_CHECK_SECONDS:
                owner_checked = waited
            if waited >= MAX_WAIT_SECONDS:
                # Still being charged, by a live lease: no answer yet. Holding the
                # request longer would outlast the device's own deadline; it retries
                # with the same key and gets the outcome, or "in doubt" once the lease
                # has run out.
                raise ServerUnavailable(
                    "this payment is still being processed; retry with the same "
                    "idempotency key")
            self._sleep(_POLL)
            waited += _POLL
            found = self._store.ledger_entry(key)
            if found is None:  # the other attempt's acquirer took nothing; not retried here
                raise AcquirerUnavailable()
            entry = found
        if entry.state in RETRYABLE:
            # Settled as not charged, and not retried here (no card was opened).
            raise AcquirerUnavailable()
        return self._ledger.open_result(entry)

    def _owner_alive(self, owner: str) -> bool:
        since = self._clock() - OWNER_LIVE_SECONDS
        return any(w.worker_id == owner for w in self._store.workers(since))

    def _open_card(self, stored: CardRecord, challenge_id: str,
                   envelope: bytes) -> tuple[Card, Resplit] | None:
        """The card and the re-split an approval will write (drawn while the server's
        share is unwrapped anyway), or None if the device's data does not open."""
        card_id = stored.card_id
        buffers: list[bytearray] = []
        try:
            plain = open_to_server(self._keys, envelope,
                                   AuthorizeRequest.envelope_aad(card_id, challenge_id))
            buffers.append(plain)
            server_share = self._keyring.unwrap("share", card_id, stored.share)
            buffers.append(server_share)
            if len(plain) <= KEY_LEN:
                return None
            device_share = bytearray(plain[:KEY_LEN])
            data_key = combine(device_share, server_share)
            buffers += [device_share, data_key]
            record = open_sealed(data_key, bytes(plain[KEY_LEN:]), card_record_aad(card_id))
            buffers.append(record)
            card = Card._from_record(record)
            return card, draw(self._keyring, card_id, server_share, stored.share_token)
        except (AuthenticationFailed, TamperedData, ValueError):
            return None
        finally:
            wipe(*buffers)


def _in_doubt(why: str) -> str:
    return (f"the payment's outcome is unknown: {why}. It is in doubt until reconciled "
            "with the acquirer, and never charged again")
