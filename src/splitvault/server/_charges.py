"""One payment's charge against the acquirer and its record in the ledger: the part of
the exactly-once flow the single server (``_payments.py``) and a gateway
(``_gateway.py``) share once a verified payment holds its card in memory.

``start`` makes the pending row of an attempt (with its lease and the wrapped intent a
reconciler needs); ``charge`` calls the acquirer under that lease and records what it
said (an approval, a decline, "unavailable": nothing taken, or in doubt); ``recorded``
answers a retry from the ledger, waiting while another worker's live lease holds the
key. The rules and their reasons are in ``_payments.py``'s docstring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from .._authorization import Authorization
from .._card import Card
from .._errors import (
    AcquirerUnavailable,
    Declined,
    IdempotencyConflict,
    PaymentInDoubt,
    ServerUnavailable,
)
from .._payment import Payment
from .._profiles import ServerProfile
from ._acquirer import Authorize, clean_text
from ._keyring import REFRESH_SECONDS
from ._ledger import Ledger
from ._outbox import Outbox
from ._store import RETRYABLE, AuditEvent, LedgerEntry, LedgerStart, ShareStep, Store

__all__ = ["INTENT_REASON", "MAX_WAIT_SECONDS", "Charges"]

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


class Charges:
    """Charges and records payments. Gets the store, the ledger, the acquirer call, the
    profile (lease length), a clock, this worker's name (the lease owner), a sleep for
    waiting retries and, if receipts are on, the outbox."""

    def __init__(self, store: Store, ledger: Ledger, authorize: Authorize,
                 profile: ServerProfile, clock: Callable[[], float], owner: str,
                 sleep: Callable[[float], None] = time.sleep, *,
                 outbox: Outbox | None = None) -> None:
        self._store = store
        self._ledger = ledger
        self._authorize = authorize
        self._profile = profile
        self._clock = clock
        self._owner = owner
        self._sleep = sleep
        self._outbox = outbox

    def start(self, card_id: str, card: Card, payment: Payment, key: bytes, params: bytes,
               attempt: int) -> LedgerStart:
        """The pending row of one attempt. Its ``intent`` (the payment's details,
        wrapped) lets a reconciler record the outcome later without the card."""
        # Sealed as a decline that says so: a reconciler replaces it with the outcome,
        # and nothing ever shows a row's intent as its result.
        intent = self._ledger.seal_result(key, self.result(card, payment, None,
                                                            INTENT_REASON))
        return LedgerStart(key, params, self._owner, self._clock() + self._profile.lease_seconds,
                           self._ledger.reference(card_id, payment.idempotency_key, attempt),
                           intent, attempt)

    def retry(self, card_id: str, card: Card, payment: Payment, key: bytes, params: bytes,
              entry: LedgerEntry, step: ShareStep | None) -> Authorization | None:
        """Charge once more a payment ``entry`` settled without taking money, under the
        next attempt's reference; None if a concurrent retry won the row first."""
        again = self.start(card_id, card, payment, key, params, entry.attempt + 1)
        if not self._store.restart_payment(again, entry.attempt, self._clock()):
            return None
        return self.charge(card_id, card, payment, again, step)

    def charge(self, card_id: str, card: Card, payment: Payment,
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
        return self.result(card, payment, clean_text(code) if code else None, reason)

    def _mark_in_doubt(self, key: bytes) -> None:
        try:
            self._store.mark_in_doubt(key, self._owner, self._clock())
        except Exception:
            # Best effort: a row left 'pending' is in doubt anyway once its lease
            # expires (see _recorded).
            return

    def result(self, card: Card, payment: Payment, code: str | None,
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

    def recorded(self, key: bytes, params: bytes, entry: LedgerEntry) -> Authorization:
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


def _in_doubt(why: str) -> str:
    return (f"the payment's outcome is unknown: {why}. It is in doubt until reconciled "
            "with the acquirer, and never charged again")
