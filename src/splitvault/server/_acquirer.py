"""The acquirer: the plug point for a real payment gateway.

It is the only code that ever sees the whole card, in memory, for one call.
"""

from __future__ import annotations

import inspect
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol

from .._errors import Declined

if TYPE_CHECKING:
    from .._card import Card

__all__ = ["Acquirer", "AcquirerCall", "AnyAcquirer", "LegacyAcquirer", "SimulatedAcquirer",
           "authorizer"]


class Acquirer(Protocol):
    """Anything with this method. Return an approval code, or raise ``Declined(reason)``.

    Raise ``AcquirerUnavailable`` only when the payment certainly was not taken (the
    gateway refused the connection, say): the server then records nothing and a retry
    may call again. Any other exception leaves the payment in doubt (``PaymentInDoubt``)
    and it is never retried into a second charge.
    """

    def authorize(self, card: Card, amount: int, currency: str, merchant: str,
                  reference: str) -> str: ...


class LegacyAcquirer(Protocol):
    """An acquirer written against 0.1.0: ``authorize`` without the reference. Still
    accepted (see :func:`authorizer`), but it cannot deduplicate retries by reference."""

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str: ...


AnyAcquirer = Acquirer | LegacyAcquirer

Authorize = Callable[["Card", int, str, str, str], str]


def authorizer(acquirer: object) -> Authorize:
    """``acquirer.authorize`` called with the payment reference, or, for an acquirer
    written against 0.1.0's four-argument ``authorize(card, amount, currency,
    merchant)``, without it (it then cannot deduplicate by reference)."""
    method = acquirer.authorize  # type: ignore[attr-defined]
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        params = []
    takes_reference = any(p.name == "reference" or p.kind is inspect.Parameter.VAR_KEYWORD
                          for p in params)
    if takes_reference:
        def call(card: Card, amount: int, currency: str, merchant: str, reference: str) -> str:
            result: str = method(card, amount, currency, merchant, reference=reference)
            return result
    else:
        def call(card: Card, amount: int, currency: str, merchant: str, reference: str) -> str:
            result: str = method(card, amount, currency, merchant)
            return result
    return call


@dataclass(frozen=True)
class AcquirerCall:
    """What the simulated acquirer remembers of a call: never the PAN."""

    last4: str
    amount: int
    currency: str
    merchant: str
    approval_code: str | None
    reference: str | None = None


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

    def authorize(self, card: Card, amount: int, currency: str, merchant: str,
                  reference: str | None = None) -> str:
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
                self.calls.append(AcquirerCall(card.last4, amount, currency, merchant, code,
                                               reference))

    def __repr__(self) -> str:
        return f"<SimulatedAcquirer limit={self.limit} calls={len(self.calls)}>"
