"""The acquirer: the plug point for a real payment gateway.

It is the only code that ever sees the whole card, in memory, for one call.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol

from .._errors import Declined

if TYPE_CHECKING:
    from .._card import Card

__all__ = ["Acquirer", "AcquirerCall", "SimulatedAcquirer"]


class Acquirer(Protocol):
    """Anything with this method. Return an approval code, or raise ``Declined(reason)``.

    Raise ``AcquirerUnavailable`` only when the payment certainly was not taken (the
    gateway refused the connection, say): the server then records nothing and a retry
    may call again. Any other exception leaves the payment in doubt (``PaymentInDoubt``)
    and it is never retried into a second charge.
    """

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str: ...


@dataclass(frozen=True)
class AcquirerCall:
    """What the simulated acquirer remembers of a call: never the PAN."""

    last4: str
    amount: int
    currency: str
    merchant: str
    approval_code: str | None


class SimulatedAcquirer:
    """Approves, except expired cards and amounts over ``limit`` (in minor units).

    For demos and tests. ``calls`` records each call (last 4 digits only), so tests can
    count how often money would have moved.
    """

    #: 1,000,000 minor units: 1,000,000 KRW (about 700 USD), a typical per-payment cap
    #: for a simple-payment wallet.
    DEFAULT_LIMIT = 1_000_000

    def __init__(self, limit: int = DEFAULT_LIMIT, *, today: date | None = None) -> None:
        self.limit = limit
        self._today = today
        self._lock = threading.Lock()
        self.calls: list[AcquirerCall] = []

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str:
        code: str | None = None
        try:
            if card.is_expired(self._today or date.today()):
                raise Declined("card expired")
            if amount > self.limit:
                raise Declined("amount over limit")
            code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))
            return code
        finally:
            with self._lock:
                self.calls.append(AcquirerCall(card.last4, amount, currency, merchant, code))

    def __repr__(self) -> str:
        return f"<SimulatedAcquirer limit={self.limit} calls={len(self.calls)}>"
