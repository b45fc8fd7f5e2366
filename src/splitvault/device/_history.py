"""The device's own record of its payments: what it asked for and what the server said.

The server's ledger is the record that counts (and it holds no amounts in the clear);
this one is for the person holding the device: amount, merchant, time, and the
approval code or the reason it was not paid. It holds nothing secret beyond what the
wallet shows (no PAN, no PIN, nothing a guess could be tested against), and one row
per idempotency key: a retry of the same payment replaces its row with the newer answer.

From it the device also knows how its card stood at its last answer: the guesses a
wrong PIN left, or that the server locked it. That is this device's view, not the
server's count: a thief's copy of the device spends guesses this one never hears of.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .._authorization import Authorization
from .._errors import CardLocked, WrongPin

if TYPE_CHECKING:
    from ._device import Device

__all__ = ["HISTORY_SCHEMA", "OUTCOMES", "PaymentRecord", "last_known_state", "recorded"]

_Authorize = TypeVar("_Authorize", bound=Callable[..., Authorization])

OUTCOMES = ("approved", "declined", "wrong_pin", "locked")
"""What a recorded answer can be. Errors that leave nothing decided (the server
unreachable, a payment in doubt) are not recorded: the retry's answer will be."""

HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    card_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    at REAL NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    merchant TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('approved', 'declined', 'wrong_pin', 'locked')),
    detail TEXT,
    attempts_left INTEGER,
    PRIMARY KEY (card_id, idempotency_key)
) STRICT;
"""
"""The ``payments`` table of the device store (see ``_store.py``)."""


@dataclass(frozen=True)
class PaymentRecord:
    """One payment as this device recorded its answer (``Device.history``).

    ``outcome`` is ``"approved"`` (``detail`` is the approval code), ``"declined"``
    (``detail`` is the acquirer's reason), ``"wrong_pin"`` (``attempts_left`` says how
    many guesses the server had left) or ``"locked"``. ``at`` is the device's clock,
    in seconds since the epoch; ``amount`` is in the currency's smallest unit, as
    ``Device.authorize`` takes it.
    """

    card_id: str
    idempotency_key: str
    at: float
    amount: int
    currency: str
    merchant: str
    outcome: str
    detail: str | None = None
    attempts_left: int | None = None

    @property
    def paid(self) -> bool:
        """True if the payment was approved: money moved."""
        return self.outcome == "approved"


def last_known_state(records: list[PaymentRecord]) -> tuple[int | None, bool]:
    """``(attempts_left, locked)`` from this device's latest answer, newest last in
    ``records``: ``None`` attempts when the last answer reset the count (a right PIN)
    or there is none."""
    if not records:
        return None, False
    last = records[-1]
    return last.attempts_left, last.outcome == "locked"


def recorded(authorize: _Authorize) -> _Authorize:
    """``Device.authorize``, keeping each answer in the device store's history.

    An approval or decline is recorded from the ``Authorization`` itself (the server's
    time of the payment, which a retry returns unchanged); a wrong PIN or a lock with
    the payment as asked (by then ``authorize`` has checked it) and the device's clock.
    Anything else raised is not an answer about this payment and leaves no row."""

    @functools.wraps(authorize)
    def wrapper(device: Device, *args: Any, **kwargs: Any) -> Authorization:
        try:
            auth: Authorization = authorize(device, *args, **kwargs)
        except (WrongPin, CardLocked) as exc:
            card_id = args[0] if args else kwargs["card_id"]
            locked = isinstance(exc, CardLocked)
            device._store.record_payment(PaymentRecord(
                card_id, kwargs["idempotency_key"], device._clock(), kwargs["amount"],
                kwargs["currency"], kwargs["merchant"].strip(),
                "locked" if locked else "wrong_pin", None,
                None if locked else getattr(exc, "attempts_left", None)))
            raise
        device._store.record_payment(PaymentRecord(
            args[0] if args else kwargs["card_id"], auth.idempotency_key,
            auth.timestamp.timestamp(), auth.amount, auth.currency, auth.merchant,
            "approved" if auth.approved else "declined",
            auth.approval_code if auth.approved else auth.decline_reason))
        return auth

    return wrapper  # type: ignore[return-value]
