"""``DemoReceipts``: the embedded demo's receipt sink, the customer's inbox.

The demo's share server queues a receipt in the same transaction that records an
approval (the transactional outbox, ``server/_outbox.py``); the result screen asks the
server to deliver what is due (``ShareServer.deliver_outbox``) and shows the receipt
once this sink has it, or "receipt pending" until then. A sink that fails only delays
the receipt: the payment on screen stays approved (the 2016 incident, in the demo).

Receipts are kept in memory, numbered in the order they first arrive: delivery is at
least once, so one delivered again (same ``receipt_id``) keeps its number.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..server import Receipt

__all__ = ["Delivered", "DemoReceipts"]


@dataclass(frozen=True)
class Delivered:
    """One receipt as the demo's inbox holds it: its number there, and the receipt."""

    number: int
    receipt: Receipt


class DemoReceipts:
    """A :class:`~splitvault.ReceiptSink` that keeps each receipt, by payment key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Delivered] = {}
        self._ids: dict[str, Delivered] = {}

    def deliver(self, receipt: Receipt) -> None:
        with self._lock:
            if receipt.receipt_id in self._ids:
                return  # delivered again after a lost acknowledgement: the same receipt
            kept = Delivered(len(self._ids) + 1, receipt)
            self._ids[receipt.receipt_id] = kept
            self._by_key[receipt.authorization.idempotency_key] = kept

    def get(self, idempotency_key: str) -> Delivered | None:
        """The latest receipt delivered for a payment key, or None."""
        with self._lock:
            return self._by_key.get(idempotency_key)
