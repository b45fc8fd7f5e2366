"""Side paths never change a payment: receipts go through a transactional outbox.

The 2016 incident behind this project: the cash-receipt step ran inline after the
charge, raised, and the customer was told the payment had failed while the money was
taken. Here a receipt is a row written in the *same transaction* that records the
payment's outcome (``Store.finish_payment``, and ``Store.settle_payment`` for one
settled by reconciliation), and it is delivered only after that transaction commits,
by :meth:`Outbox.deliver` (``ShareServer.deliver_outbox()``, and a loop in ``splitvault
serve``). So a receipt exists exactly when an outcome was recorded, and delivering it
can fail, be slow or be retried without touching the payment: the ledger is never
read or written on this path.

Delivery is at least once: a sink that raises is tried again later (back-off doubling
from :data:`RETRY_FIRST` to :data:`RETRY_MAX`, never given up), and a worker that dies
mid-delivery leaves its message to be claimed again after :data:`LEASE`. A sink
deduplicates by ``Receipt.receipt_id``. The payload is wrapped under the KEK; the row
shows only when it is next due and how many tries it had.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

from .._authorization import Authorization
from .._errors import ConfigurationError, TamperedData
from ..crypto.memory import wipe
from ._keyring import Keyring
from ._store import OutboxMessage, Store

__all__ = ["BATCH", "DELIVER_EVERY", "LEASE", "DeliveryReport", "Outbox", "Outcome",
           "Receipt", "ReceiptSink", "load_sink"]

BATCH = 100
"""Messages one delivery run takes at most; the next run takes the rest."""
LEASE = 60.0
"""Seconds a claimed message is held for one delivery try: a sink call must end well
within it, or the message is delivered again (which a sink must tolerate anyway)."""
RETRY_FIRST = 5.0
"""Seconds before the first retry of a failed delivery; each further failure doubles it."""
RETRY_MAX = 3600.0
"""The longest wait between retries: a sink down for a day is tried every hour."""
DELIVER_EVERY = 5.0
"""Seconds between delivery runs in ``splitvault serve``: a receipt arrives within
about this long of its payment; an idle run is one indexed read."""
log = logging.getLogger("splitvault.outbox")
Outcome = Literal["approved", "declined", "reversed", "failed"]
"""What a receipt reports: ``approved`` or ``declined`` (the acquirer's answer), or,
for a payment that was in doubt and reconciliation settled as not charged,
``reversed`` (the charge was undone) or ``failed`` (the acquirer had no record)."""


@dataclass(frozen=True)
class Receipt:
    """A payment's recorded outcome, for the customer and the merchant. ``receipt_id``
    is random and stable across redeliveries (deduplicate by it); ``reference`` is the
    acquirer's payment reference. The card shows only as ``•••• last4``.

    ``not_charged`` is ``reversed`` or ``failed`` for the notice that a payment in
    doubt took no money (reconciliation settled it so): its authorization is then a
    decline saying so, and a later retry of the key that charges gets a receipt of its
    own, under the next reference."""

    receipt_id: str
    reference: str
    authorization: Authorization
    not_charged: Literal["reversed", "failed"] | None = None

    def __post_init__(self) -> None:
        if self.not_charged not in (None, "reversed", "failed") or (
                self.not_charged is not None and self.authorization.approved):
            raise ValueError("only a decline can say a payment was not charged")

    @property
    def outcome(self) -> Outcome:
        """approved, declined, reversed or failed."""
        if self.not_charged is not None:
            return self.not_charged
        return "approved" if self.authorization.approved else "declined"


@runtime_checkable
class ReceiptSink(Protocol):
    """Where receipts go (a mail or webhook sender the application provides). Raise
    anything to have the receipt tried again later; return to mark it delivered."""

    def deliver(self, receipt: Receipt) -> None: ...


@dataclass(frozen=True)
class DeliveryReport:
    """One delivery run: messages ``delivered``, ``failed`` (retried later), ``busy``
    (another worker re-claimed it first) and ``pending`` (still queued after the run)."""

    delivered: int = 0
    failed: int = 0
    busy: int = 0
    pending: int = 0

    def __str__(self) -> str:
        return (f"outbox: {self.delivered} delivered, {self.failed} failed, "
                f"{self.pending} pending")


class Outbox:
    """Makes outbox messages and delivers them. ``sink`` is looked up per run (the
    application may set ``ShareServer.receipts`` after opening)."""

    def __init__(self, store: Store, keyring: Keyring, clock: Callable[[], float],
                 sink: Callable[[], ReceiptSink | None]) -> None:
        self._store = store
        self._keyring = keyring
        self._clock = clock
        self._sink = sink

    def receipts(self, auth: Authorization, reference: str,
                 not_charged: Literal["reversed", "failed"] | None = None
                 ) -> tuple[OutboxMessage, ...]:
        """The messages to queue with a recorded outcome: one receipt, or none when no
        sink is set (nothing would ever deliver it). ``not_charged`` as
        :class:`Receipt`'s."""
        if self._sink() is None:
            return ()
        Receipt("", reference, auth, not_charged)  # a mistake shows here, not at delivery
        message_id = secrets.token_hex(16)
        raw = bytearray(json.dumps({
            "reference": reference, "approved": auth.approved, "not_charged": not_charged,
            "approval_code": auth.approval_code, "decline_reason": auth.decline_reason,
            "masked_pan": auth.masked_pan, "amount": auth.amount, "currency": auth.currency,
            "merchant": auth.merchant, "idempotency_key": auth.idempotency_key,
            "timestamp": auth.timestamp.timestamp(),
        }, sort_keys=True).encode())
        try:
            return (OutboxMessage(message_id, "receipt",
                                  self._keyring.wrap("outbox", message_id, raw)),)
        finally:
            wipe(raw)

    def deliver(self, limit: int = BATCH) -> DeliveryReport:
        sink = self._sink()
        if sink is None:
            return DeliveryReport(pending=self._store.outbox_pending())
        now = self._clock()
        counts = {"delivered": 0, "failed": 0, "busy": 0}
        for message in self._store.claim_outbox(now, now + LEASE, limit):
            counts[self._one(sink, message)] += 1
        report = DeliveryReport(**counts, pending=self._store.outbox_pending())
        if report.delivered or report.failed:
            log.info("%s", report)
        return report

    def _one(self, sink: ReceiptSink, message: OutboxMessage) -> str:
        try:
            receipt = self._open(message)
        except TamperedData:
            # Damaged or moved between rows: retried (and counted as failing) so that
            # an operator sees it, never delivered as something it is not.
            self._retry(message)
            return "failed"
        try:
            sink.deliver(receipt)
        except Exception as exc:
            # The sink's text is not ours to log: it may quote the receipt.
            log.warning("receipt delivery failed (%s); retried later", type(exc).__name__)
            self._retry(message)
            return "failed"
        if not self._store.outbox_delivered(message.message_id, message.attempts):
            return "busy"
        return "delivered"

    def _retry(self, message: OutboxMessage) -> None:
        wait = min(RETRY_FIRST * 2 ** max(message.attempts - 1, 0), RETRY_MAX)
        self._store.outbox_retry(message.message_id, message.attempts, self._clock() + wait)

    def _open(self, message: OutboxMessage) -> Receipt:
        raw = self._keyring.unwrap("outbox", message.message_id, message.payload)
        try:
            d = json.loads(bytes(raw))
            return Receipt(message.message_id, d["reference"], Authorization(
                approved=d["approved"], approval_code=d["approval_code"],
                decline_reason=d["decline_reason"], masked_pan=d["masked_pan"],
                amount=d["amount"], currency=d["currency"], merchant=d["merchant"],
                idempotency_key=d["idempotency_key"],
                timestamp=datetime.fromtimestamp(d["timestamp"], UTC)), d.get("not_charged"))
        except (ValueError, KeyError, TypeError):
            raise TamperedData() from None
        finally:
            wipe(raw)


def load_sink(spec: str) -> ReceiptSink:
    """``module:name`` (``--receipts``): the sink, or what calling it returns (a class
    or a factory). Only a module the operator named is imported, never one the store
    names."""
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigurationError("--receipts must be MODULE:NAME, e.g. myshop.receipts:Mailer")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ConfigurationError(f"cannot load the receipt sink {spec}") from None
    sink = found() if isinstance(found, type) or not hasattr(found, "deliver") else found
    if not isinstance(sink, ReceiptSink):
        raise ConfigurationError(f"the receipt sink {spec} has no deliver(receipt) method")
    return sink
