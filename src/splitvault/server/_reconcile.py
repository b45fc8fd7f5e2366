"""Reconciliation: settle every payment in doubt with the acquirer's books.

A payment is in doubt when the acquirer may have taken the money but we do not know
(a timeout, a lost reply, a crash, a result we could not record). It is never charged
again blindly; instead, for each such row, one reconciler (of any number running, on
any host) claims it (``Store.claim_unsettled``: a lease, so the worker that started it
can no longer record into it), asks ``status(reference)``, and records:

- ``approved``  -> approved, with the acquirer's approval code;
- ``declined``  -> declined, with its reason;
- ``not_found`` -> failed: nothing was taken, and the next retry may charge once;
- ``unknown`` (or a malformed answer) -> ``reverse(reference)``, then reversed: the
  same as failed, after making sure.

Each settlement queues its notice in the same transaction (with a receipt sink set):
the receipt of an approval or a decline, or for failed and reversed a ``Receipt``
whose ``not_charged`` says so (a decline reading :data:`NOT_CHARGED` or
:data:`REVERSED`): the customer was told "in doubt", and now learns no money was
taken.

If ``status`` or ``reverse`` raises, the row goes back to ``in_doubt`` for the next
run. An acquirer without ``status`` and ``reverse`` (0.1.0's four-argument one) cannot
be asked: its rows are counted as ``manual`` and left in doubt for an operator.

The report holds counts only: never a card, an amount or a merchant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Literal

from .._errors import TamperedData
from ._acquirer import AcquirerStatus, Settler, clean_text, settler
from ._store import AuditEvent, LedgerEntry, LedgerState, OutboxMessage, Store

if TYPE_CHECKING:
    from ._ledger import Ledger
    from ._outbox import Outbox

__all__ = ["BATCH", "NOT_CHARGED", "RECONCILE_EVERY", "REVERSED", "ReconcileReport",
           "Reconciler"]

BATCH = 500
"""Rows one run settles at most: bounds a run's duration; the next run takes the rest."""
RECONCILE_EVERY = 60.0
"""Seconds between background runs in ``splitvault serve``: a payment in doubt is
settled within about a minute plus its lease, and an idle run costs one indexed read."""
NOT_CHARGED = "not charged: the acquirer has no record of it"
"""The decline reason of the notice for a payment settled as ``failed``."""
REVERSED = "reversed: the acquirer undid the charge"
"""The decline reason of the notice for a payment settled as ``reversed``."""
log = logging.getLogger("splitvault.reconcile")


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation did, by outcome. ``left`` is what is still in doubt:
    ``manual`` (the acquirer cannot be asked), ``errors`` (asking failed; retried next
    run) and ``busy`` (another reconciler or a live worker holds the row)."""

    examined: int = 0
    approved: int = 0
    declined: int = 0
    failed: int = 0
    reversed: int = 0
    manual: int = 0
    errors: int = 0
    busy: int = 0

    @property
    def settled(self) -> int:
        return self.approved + self.declined + self.failed + self.reversed

    @property
    def left(self) -> int:
        return self.manual + self.errors + self.busy

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "settled": self.settled, "left": self.left}

    def __str__(self) -> str:
        parts = ", ".join(f"{v} {k}" for k, v in asdict(self).items()
                          if k != "examined" and v)
        return f"reconciled {self.examined} payment(s) in doubt" + (f": {parts}" if parts
                                                                      else "")


class Reconciler:
    """Settles payments in doubt. ``acquirer`` is looked up on each run (the server's
    may be swapped); ``owner`` names this reconciler's leases; ``lease`` seconds."""

    def __init__(self, store: Store, ledger: Ledger, acquirer: Callable[[], object],
                 clock: Callable[[], float], owner: str, lease: float, *,
                 outbox: Outbox | None = None) -> None:
        self._store = store
        self._ledger = ledger
        self._acquirer = acquirer
        self._clock = clock
        self._owner = f"reconcile:{owner}"
        self._lease = lease
        self._outbox = outbox

    def run(self, *, limit: int = BATCH, dry_run: bool = False) -> ReconcileReport:
        rows = self._store.unsettled(self._clock(), limit)
        settle = None if dry_run else settler(self._acquirer())
        counts = {"examined": len(rows)}
        for entry in rows:
            outcome = "manual" if settle is None else self._settle(entry, settle)
            counts[outcome] = counts.get(outcome, 0) + 1
        report = ReconcileReport(**counts)
        if rows:
            log.info("%s", report)
        return report

    def _settle(self, entry: LedgerEntry, settle: Settler) -> str:
        now = self._clock()
        held = self._store.claim_unsettled(entry.key, self._owner, now + self._lease, now)
        if held is None:
            return "busy"
        reference = held.reference
        try:
            status = settle.status(reference)
        except Exception:  # the acquirer's text is not ours to log (it could hold anything)
            self._store.release_claim(held.key, self._owner)
            return "errors"
        if not isinstance(status, AcquirerStatus) or (
                status.state == "approved" and not clean_text(status.approval_code)):
            status = AcquirerStatus.unknown()  # malformed: as unknown, so reversed
        if status.state == "unknown":
            try:
                settle.reverse(reference)
            except Exception:
                self._store.release_claim(held.key, self._owner)
                return "errors"
        return self._record(held, status)

    def _record(self, held: LedgerEntry, status: AcquirerStatus) -> str:
        state: LedgerState
        result: bytes | None = None
        events = []
        receipts: tuple[OutboxMessage, ...] = ()
        if status.state in ("approved", "declined"):
            try:
                intent = self._ledger.open_result(held)
            except TamperedData:
                # A row from before intents were kept (or damaged): the acquirer's
                # answer cannot be written down faithfully; an operator must.
                self._store.release_claim(held.key, self._owner)
                return "manual"
            if status.state == "approved":
                state = "approved"
                final = replace(intent, approved=True, decline_reason=None,
                                approval_code=clean_text(status.approval_code))
            else:
                state = "declined"
                final = replace(intent, decline_reason=clean_text(status.decline_reason)
                                or "declined")
            result = self._ledger.seal_result(held.key, final)
            if self._outbox is not None:
                # Queued with the settled outcome, in its transaction: the receipt the
                # worker that lost track of this payment never wrote.
                receipts = self._outbox.receipts(final, held.reference)
        elif status.state == "not_found":
            state = "failed"
            receipts = self._notice(held, "failed", NOT_CHARGED)
        else:
            state = "reversed"
            events.append(AuditEvent("reversed", "", {"reference": held.reference}))
            receipts = self._notice(held, "reversed", REVERSED)
        events.append(AuditEvent("reconciled", "", {"reference": held.reference,
                                                    "outcome": state}))
        if not self._store.settle_payment(held.key, self._owner, state, result,
                                          self._clock(), events, receipts):
            return "busy"  # our lease ran out and another reconciler took the row
        return state

    def _notice(self, held: LedgerEntry, outcome: Literal["failed", "reversed"],
                reason: str) -> tuple[OutboxMessage, ...]:
        """The notice that a payment in doubt took no money, queued with the settled
        state; none without a sink, or for a row without a readable intent (it is
        settled all the same: a missing notice must not keep money in doubt)."""
        if self._outbox is None:
            return ()
        try:
            intent = self._ledger.open_result(held)
        except TamperedData:
            return ()
        told = replace(intent, approved=False, approval_code=None, decline_reason=reason)
        return self._outbox.receipts(told, held.reference, outcome)
