"""``Payment``: validated authorization parameters, and amounts formatted for people.

Everything a device sends to the server about a payment passes through here first, so
the server and the acquirer only ever see amounts in minor units within bounds, ISO
4217 codes, printable merchant names and well-formed idempotency keys. Messages are
fixed strings: they never echo what the caller passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._currencies import CURRENCIES
from ._errors import InvalidPayment

__all__ = ["CURRENCIES", "MAX_AMOUNT", "Payment", "format_amount", "validate_payment"]

MAX_AMOUNT = 10**12
"""One trillion minor units (10 billion USD, 1 trillion KRW): far above any card
payment, yet small enough that no acquirer or database integer overflows."""
MAX_MERCHANT_CHARS = 64
"""Room for a descriptive name; card-network descriptors themselves are shorter."""
MAX_MERCHANT_BYTES = 256
MAX_KEY_CHARS = 128
"""Long enough for a UUID, a ULID or an order id with a prefix."""

_KEY_SHAPE = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_KEY_CHARS}}}")

_AMOUNT_MESSAGE = "amount must be a positive whole number of minor units"
_MERCHANT_MESSAGE = f"merchant name must be 1 to {MAX_MERCHANT_CHARS} printable characters"
_KEY_MESSAGE = f"idempotency key must be 1 to {MAX_KEY_CHARS} characters of A-Z a-z 0-9 . _ : -"


@dataclass(frozen=True)
class Payment:
    """An authorization request's parameters, valid by construction.

    ``amount`` is in minor units of ``currency`` (1999 USD cents is 19.99 USD).
    Build one with :func:`validate_payment`, which accepts untrusted input; the
    constructor runs the same checks and also strips ``merchant``.
    """

    amount: int
    currency: str
    merchant: str
    idempotency_key: str

    def __post_init__(self) -> None:
        # The checks are idempotent, so validate_payment() -> Payment() is safe twice.
        object.__setattr__(self, "amount", _check_amount(self.amount))
        object.__setattr__(self, "currency", _check_currency(self.currency))
        object.__setattr__(self, "merchant", _check_merchant(self.merchant))
        object.__setattr__(self, "idempotency_key", _check_key(self.idempotency_key))


def validate_payment(
    amount: object, currency: object, merchant: object, idempotency_key: object
) -> Payment:
    """A ``Payment`` from untrusted values, or ``InvalidPayment`` saying which is wrong."""
    return Payment(
        amount=_check_amount(amount),
        currency=_check_currency(currency),
        merchant=_check_merchant(merchant),
        idempotency_key=_check_key(idempotency_key),
    )


def format_amount(amount: int, currency: str) -> str:
    """An amount in minor units for people: ``(12000, "KRW")`` -> ``"12,000 KRW"``,
    ``(1999, "USD")`` -> ``"19.99 USD"``. Raises ``InvalidPayment`` for a non-int
    amount or an unknown currency."""
    if type(amount) is not int:
        raise InvalidPayment("amount must be a whole number of minor units")
    exponent = CURRENCIES[_check_currency(currency)]
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exponent)
    fraction = f".{minor:0{exponent}d}" if exponent else ""
    return f"{sign}{major:,}{fraction} {currency}"


def _check_amount(amount: object) -> int:
    # type() rather than isinstance(): bool is an int, and int subclasses can redefine
    # comparisons; float and Decimal amounts invite rounding errors.
    if type(amount) is not int or amount < 1:
        raise InvalidPayment(_AMOUNT_MESSAGE)
    if amount > MAX_AMOUNT:
        raise InvalidPayment("amount is too large")
    return amount


def _check_currency(currency: object) -> str:
    # Exact match only: "usd" or " USD" is refused rather than guessed at.
    if type(currency) is not str or currency not in CURRENCIES:
        raise InvalidPayment("unknown currency code")
    return currency


def _check_merchant(merchant: object) -> str:
    if not isinstance(merchant, str):
        raise InvalidPayment(_MERCHANT_MESSAGE)
    name = merchant.strip()
    # isprintable() refuses control, format, separator (except ASCII space) and
    # surrogate code points, so the UTF-8 encoding below cannot fail.
    if not 1 <= len(name) <= MAX_MERCHANT_CHARS or not name.isprintable():
        raise InvalidPayment(_MERCHANT_MESSAGE)
    if len(name.encode("utf-8")) > MAX_MERCHANT_BYTES:
        raise InvalidPayment(_MERCHANT_MESSAGE)
    return name


def _check_key(key: object) -> str:
    if type(key) is not str or _KEY_SHAPE.fullmatch(key) is None:
        raise InvalidPayment(_KEY_MESSAGE)
    return key
