"""Payment parameters: amount, currency, merchant, idempotency key, and formatting."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from splitvault._errors import InvalidPayment
from splitvault._payment import (
    CURRENCIES,
    MAX_AMOUNT,
    Payment,
    format_amount,
    validate_payment,
)

AMOUNT = "amount must be a positive whole number of minor units"
CURRENCY = "unknown currency code"
MERCHANT = "merchant name must be 1 to 64 printable characters"
KEY = "idempotency key must be 1 to 128 characters of A-Z a-z 0-9 . _ : -"


def exact(message: str) -> str:
    """A pytest.raises(match=...) pattern for exactly this message."""
    return f"^{re.escape(message)}$"


def pay(
    amount: object = 12000,
    currency: object = "KRW",
    merchant: object = "Coffee Shop",
    key: object = "order-1",
) -> Payment:
    return validate_payment(amount, currency, merchant, key)


def test_valid_payment() -> None:
    """Valid parameters come back as a Payment with the same values."""
    assert pay() == Payment(12000, "KRW", "Coffee Shop", "order-1")


def test_payment_is_frozen() -> None:
    """A Payment cannot be changed after validation."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        pay().amount = 1  # type: ignore[misc]


def test_constructor_validates_too() -> None:
    """Payment(...) runs the same checks, so no unchecked Payment can exist."""
    with pytest.raises(InvalidPayment, match=exact(AMOUNT)):
        Payment(0, "KRW", "Coffee Shop", "order-1")
    assert Payment(1, "USD", "  Shop ", "k").merchant == "Shop"


# -- currency table ----------------------------------------------------------------------


def test_currency_exponents() -> None:
    """Known exponents from ISO 4217 List One are right."""
    expected = {"KRW": 0, "JPY": 0, "USD": 2, "EUR": 2, "BHD": 3, "KWD": 3, "CLF": 4}
    expected |= {"UYW": 4, "ISK": 0, "IQD": 3, "TND": 3, "VND": 0, "XCG": 2, "ZWG": 2}
    for code, exponent in expected.items():
        assert CURRENCIES[code] == exponent, code


def test_currency_table_is_complete_and_current() -> None:
    """The table holds every active code and none that ISO withdrew or lists without units."""
    assert len(CURRENCIES) == 165
    for gone in ("ANG", "BGN", "CUC", "HRK", "SLL", "ZWL", "VEF", "MRO", "STD", "LTL"):
        assert gone not in CURRENCIES, gone
    for no_units in ("XXX", "XTS", "XAU", "XAG", "XPD", "XPT", "XDR", "XSU", "XUA", "XBA"):
        assert no_units not in CURRENCIES, no_units
    assert all(re.fullmatch("[A-Z]{3}", code) for code in CURRENCIES)
    assert set(CURRENCIES.values()) == {0, 2, 3, 4}


def test_currency_table_is_read_only() -> None:
    """Nobody can add a currency to the shared table at run time."""
    with pytest.raises(TypeError):
        CURRENCIES["ABC"] = 2  # type: ignore[index]


# -- amount ------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [1, 2, MAX_AMOUNT - 1, MAX_AMOUNT])
def test_amount_accepted(amount: int) -> None:
    """Whole numbers from 1 to 10**12 minor units are accepted."""
    assert pay(amount=amount).amount == amount


@pytest.mark.parametrize("amount", [0, -1, -(10**13), True, False, 1.0, 12000.5, "12000"])
def test_amount_refused(amount: object) -> None:
    """Zero, negatives, bool, float and str amounts are refused."""
    with pytest.raises(InvalidPayment, match=exact(AMOUNT)):
        pay(amount=amount)


@pytest.mark.parametrize("amount", [Decimal(5), None, [1], 1j])
def test_amount_refused_other_types(amount: object) -> None:
    """Decimal, None, containers and complex are refused with InvalidPayment."""
    with pytest.raises(InvalidPayment, match=exact(AMOUNT)):
        pay(amount=amount)


@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, 10**100])
def test_amount_too_large(amount: int) -> None:
    """Anything above 10**12 minor units is refused as too large."""
    with pytest.raises(InvalidPayment, match=exact("amount is too large")):
        pay(amount=amount)


# -- currency ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["KRW", "USD", "EUR", "BHD", "CLF", "XCG"])
def test_currency_accepted(code: str) -> None:
    """Active ISO 4217 codes are accepted as given."""
    assert pay(currency=code).currency == code


@pytest.mark.parametrize(
    "code", ["usd", "Usd", " USD", "USD ", "US", "USDD", "XXX", "ANG", "", "\uff35SD", None, 840]
)
def test_currency_refused(code: object) -> None:
    """Lowercase, padded, wrong-length, withdrawn, non-ASCII and non-str codes are refused."""
    with pytest.raises(InvalidPayment, match=exact(CURRENCY)):
        pay(currency=code)


# -- merchant ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["A", "M" * 64, "스타벅스 강남점", "Café 24/7", "\U0001d49c" * 64])
def test_merchant_accepted(name: str) -> None:
    """1 to 64 printable characters of any script (up to 256 UTF-8 bytes) are accepted."""
    assert pay(merchant=name).merchant == name


def test_merchant_is_stripped() -> None:
    """Whitespace around the merchant name is removed before the length check."""
    assert pay(merchant="\t" + "M" * 64 + "  ").merchant == "M" * 64


@pytest.mark.parametrize(
    "name", ["", "   ", "M" * 65, "Shop\x00", "Sh\nop", "Shop\u202e", "\ud800", None, 5, b"Shop"]
)
def test_merchant_refused(name: object) -> None:
    """Empty, too long, control/format/surrogate characters and non-str are refused."""
    with pytest.raises(InvalidPayment, match=exact(MERCHANT)):
        pay(merchant=name)


# -- idempotency key ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a", "k" * 128, "order-2026.11.21_0001:retry", "ABCxyz0189"])
def test_key_accepted(key: str) -> None:
    """1 to 128 characters of A-Z a-z 0-9 . _ : - are accepted."""
    assert pay(key=key).idempotency_key == key


@pytest.mark.parametrize(
    "key", ["", "k" * 129, "order 1", "order/1", "orderé", "order-1\n", "\uff41", None, 1, b"k"]
)
def test_key_refused(key: object) -> None:
    """Empty, too long, other characters (newline and non-ASCII too) and non-str are refused."""
    with pytest.raises(InvalidPayment, match=exact(KEY)):
        pay(key=key)


# -- formatting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (12000, "KRW", "12,000 KRW"),
        (1999, "USD", "19.99 USD"),
        (5, "USD", "0.05 USD"),
        (123456789, "EUR", "1,234,567.89 EUR"),
        (1500, "BHD", "1.500 BHD"),
        (12345, "CLF", "1.2345 CLF"),
        (MAX_AMOUNT, "JPY", "1,000,000,000,000 JPY"),
        (0, "USD", "0.00 USD"),
        (-1999, "USD", "-19.99 USD"),
    ],
)
def test_format_amount(amount: int, currency: str, text: str) -> None:
    """Amounts show with the currency's decimals and thousands separators."""
    assert format_amount(amount, currency) == text


def test_format_amount_refuses_bad_input() -> None:
    """format_amount refuses unknown currencies and non-int amounts."""
    with pytest.raises(InvalidPayment, match=exact(CURRENCY)):
        format_amount(100, "ZZZ")
    for amount in (1.5, True, "100"):
        with pytest.raises(InvalidPayment):
            format_amount(amount, "USD")  # type: ignore[arg-type]


# -- properties --------------------------------------------------------------------------

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(),
    st.binary(),
    st.sampled_from(sorted(CURRENCIES)),
    st.lists(st.integers(), max_size=3),
)


@given(amount=anything, currency=anything, merchant=anything, key=anything)
def test_validate_payment_only_raises_invalid_payment(
    amount: Any, currency: Any, merchant: Any, key: Any
) -> None:
    """Any objects give a Payment or InvalidPayment, never another exception."""
    with contextlib.suppress(InvalidPayment):
        payment = validate_payment(amount, currency, merchant, key)
        assert type(payment.amount) is int and 1 <= payment.amount <= MAX_AMOUNT
        assert payment.currency in CURRENCIES


@given(
    amount=st.integers(1, MAX_AMOUNT),
    currency=st.sampled_from(sorted(CURRENCIES)),
    key=st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True),
)
def test_valid_values_always_accepted(amount: int, currency: str, key: str) -> None:
    """Every in-range amount, listed currency and well-formed key is accepted unchanged."""
    payment = pay(amount, currency, "Shop", key)
    assert (payment.amount, payment.currency, payment.idempotency_key) == (amount, currency, key)
    assert format_amount(amount, currency).endswith(" " + currency)
