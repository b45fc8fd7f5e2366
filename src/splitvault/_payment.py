"""``Payment``: validated authorization parameters, and amounts formatted for people.

Everything a device sends to the server about a payment passes through here first, so
the server and the acquirer only ever see amounts in minor units within bounds, ISO
4217 codes, printable merchant names and well-formed idempotency keys. Messages say
which rule was broken and what was given, as far as that cannot be card data: a type,
a length, the code point of a refused character, a short number, a 3-letter code. A
string that fails is never echoed, since a PAN or a name passed in the wrong argument
would then reach a log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

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

_ECHO_BELOW = 10**9
"""A wrong number is shown in a message only below this: nine digits are fewer than any
card number has, so a PAN passed as an amount by mistake is never echoed."""

_KEY_SHAPE = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_KEY_CHARS}}}")
_KEY_CHAR = re.compile(r"[A-Za-z0-9._:-]")
_CODE_SHAPE = re.compile(r"[A-Za-z]{3}")

_MERCHANT_MESSAGE = f"merchant name must be 1 to {MAX_MERCHANT_CHARS} printable characters"
_KEY_MESSAGE = f"idempotency key must be 1 to {MAX_KEY_CHARS} characters of A-Z a-z 0-9 . _ : -"
_CODE_EXAMPLES = "ISO 4217, e.g. KRW, USD"


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
        object.__setattr__(self, "amount", _check_amount(self.amount, self.currency))
        object.__setattr__(self, "currency", _check_currency(self.currency))
        object.__setattr__(self, "merchant", _check_merchant(self.merchant))
        object.__setattr__(self, "idempotency_key", _check_key(self.idempotency_key))


def validate_payment(
    amount: object, currency: object, merchant: object, idempotency_key: object
) -> Payment:
    """A ``Payment`` from untrusted values, or ``InvalidPayment`` saying which is wrong."""
    return Payment(
        amount=_check_amount(amount, currency),
        currency=_check_currency(currency),
        merchant=_check_merchant(merchant),
        idempotency_key=_check_key(idempotency_key),
    )


def format_amount(amount: int, currency: str) -> str:
    """An amount in minor units for people: ``(12000, "KRW")`` -> ``"12,000 KRW"``,
    ``(1999, "USD")`` -> ``"19.99 USD"``. Raises ``InvalidPayment`` for a non-int
    amount or an unknown currency."""
    if type(amount) is not int:
        raise InvalidPayment(_not_an_integer(amount, currency))
    exponent = CURRENCIES[_check_currency(currency)]
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exponent)
    fraction = f".{minor:0{exponent}d}" if exponent else ""
    return f"{sign}{major:,}{fraction} {currency}"


def _check_amount(amount: object, currency: object = None) -> int:
    # type() rather than isinstance(): bool is an int, and int subclasses can redefine
    # comparisons; float and Decimal amounts invite rounding errors.
    if type(amount) is not int:
        raise InvalidPayment(_not_an_integer(amount, currency))
    if amount < 1:
        got = str(amount) if amount > -_ECHO_BELOW else "a negative amount"
        raise InvalidPayment(f"amount must be at least 1 minor unit; got {got}")
    if amount > MAX_AMOUNT:
        raise InvalidPayment(f"amount is too large: at most {MAX_AMOUNT:,} minor units")
    return amount


def _check_currency(currency: object) -> str:
    # Exact match only: "usd" or " USD" is refused rather than guessed at.
    if type(currency) is str and currency in CURRENCIES:
        return currency
    if type(currency) is not str:
        raise InvalidPayment(f"currency must be a str ({_CODE_EXAMPLES}); "
                             f"got {type(currency).__name__}")
    near = currency.strip().upper()
    if near in CURRENCIES:
        raise InvalidPayment(f"unknown currency code: did you mean {near!r}? "
                             "(ISO 4217 codes are exact: upper case, no spaces)")
    if _CODE_SHAPE.fullmatch(currency):
        # Three ASCII letters: the shape of a code, and nothing a card could contain.
        raise InvalidPayment(f"unknown currency code {currency!r} ({_CODE_EXAMPLES})")
    shape = f"a str of {len(currency)} characters" if currency else "an empty str"
    raise InvalidPayment(f"unknown currency code: {shape}, not 3 letters A-Z "
                         f"({_CODE_EXAMPLES})")


def _check_merchant(merchant: object) -> str:
    if not isinstance(merchant, str):
        raise InvalidPayment(f"{_MERCHANT_MESSAGE}; got {type(merchant).__name__}")
    name = merchant.strip()
    if not name:
        raise InvalidPayment(f"{_MERCHANT_MESSAGE}; got an empty name")
    if len(name) > MAX_MERCHANT_CHARS:
        raise InvalidPayment(f"{_MERCHANT_MESSAGE}; got {len(name)} characters")
    # isprintable() refuses control, format, separator (except ASCII space) and
    # surrogate code points, so the UTF-8 encoding below cannot fail.
    if not name.isprintable():
        bad = next(c for c in name if not c.isprintable())
        raise InvalidPayment(f"{_MERCHANT_MESSAGE}; U+{ord(bad):04X} is not printable")
    size = len(name.encode("utf-8"))
    if size > MAX_MERCHANT_BYTES:
        raise InvalidPayment(f"merchant name must be at most {MAX_MERCHANT_BYTES} bytes in "
                             f"UTF-8; got {size} bytes")
    return name


def _check_key(key: object) -> str:
    if type(key) is str and _KEY_SHAPE.fullmatch(key) is not None:
        return key
    if type(key) is not str:
        got = type(key).__name__
    elif not key:
        got = "an empty str"
    elif len(key) > MAX_KEY_CHARS:
        got = f"{len(key)} characters"
    else:
        # Which character and where, never the key: it may hold anything a caller had.
        at, bad = next((i, c) for i, c in enumerate(key, 1) if not _KEY_CHAR.fullmatch(c))
        got = f"U+{ord(bad):04X} at position {at}"
    raise InvalidPayment(f"{_KEY_MESSAGE}; got {got}")


def _not_an_integer(amount: object, currency: object) -> str:
    """Why a non-int amount is refused, with an example in ``currency`` if it is valid."""
    code = currency if type(currency) is str and currency in CURRENCIES else None
    if code is None:
        hint = "KRW has no minor unit: 12000 is 12,000 KRW; in USD 1999 is 19.99 USD"
    elif CURRENCIES[code] == 0:
        hint = f"{code} has no minor unit: 12000 is {format_amount(12000, code)}"
    else:
        hint = (f"{code} has {CURRENCIES[code]} decimal places: 1999 is "
                f"{format_amount(1999, code)}")
    got = type(amount).__name__
    # Exact types only: a subclass could make abs() or str() do anything.
    if isinstance(amount, float | Decimal) and type(amount) in (float, Decimal):
        try:
            # Decimal(float) is exact; comparing a NaN raises InvalidOperation.
            short = Decimal(amount).copy_abs() < Decimal(_ECHO_BELOW)
        except ArithmeticError:
            short = False
        if short:
            got = f"{got} {amount}"
    return f"amount must be an integer number of minor units ({hint}); got {got}"
