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

from splitvault import InvalidPayment
from splitvault._payment import (
    CURRENCIES,
    MAX_AMOUNT,
    Payment,
    format_amount,
    validate_payment,
)

NOT_INT = ("amount must be an integer number of minor units (KRW has no minor unit: 12000 is "
           "12,000 KRW); got ")
AT_LEAST_1 = "amount must be at least 1 minor unit; got "
TOO_LARGE = "amount is too large: at most 1,000,000,000,000 minor units"
CODE = "ISO 4217, e.g. KRW, USD"
EXACT_CODE = "(ISO 4217 codes are exact: upper case, no spaces)"
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
    with pytest.raises(InvalidPayment, match=exact(AT_LEAST_1 + "0")):
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


@pytest.mark.parametrize(("amount", "message"), [
    (0, AT_LEAST_1 + "0"),
    (-1, AT_LEAST_1 + "-1"),
    (-(10**13), AT_LEAST_1 + "a negative amount"),
    (True, NOT_INT + "bool"),
    (False, NOT_INT + "bool"),
    (1.0, NOT_INT + "float 1.0"),
    (12000.5, NOT_INT + "float 12000.5"),
    (float("nan"), NOT_INT + "float"),
    (float("-inf"), NOT_INT + "float"),
    ("12000", NOT_INT + "str"),
])
def test_amount_refused(amount: object, message: str) -> None:
    """Zero, negatives, bool, float and str amounts are refused, saying what was given:
    the type, and the number if it is short."""
    with pytest.raises(InvalidPayment, match=exact(message)):
        pay(amount=amount)


@pytest.mark.parametrize(("amount", "message"), [
    (Decimal(5), NOT_INT + "Decimal 5"),
    (Decimal("sNaN"), NOT_INT + "Decimal"),
    (None, NOT_INT + "NoneType"),
    ([1], NOT_INT + "list"),
    (1j, NOT_INT + "complex"),
])
def test_amount_refused_other_types(amount: object, message: str) -> None:
    """Decimal, None, containers and complex are refused with InvalidPayment."""
    with pytest.raises(InvalidPayment, match=exact(message)):
        pay(amount=amount)


@pytest.mark.parametrize(("currency", "example"), [
    ("USD", "USD has 2 decimal places: 1999 is 19.99 USD"),
    ("BHD", "BHD has 3 decimal places: 1999 is 1.999 BHD"),
    ("JPY", "JPY has no minor unit: 12000 is 12,000 JPY"),
    ("EURO", "KRW has no minor unit: 12000 is 12,000 KRW; in USD 1999 is 19.99 USD"),
])
def test_amount_message_explains_minor_units_in_the_currency(currency: str,
                                                             example: str) -> None:
    """A non-integer amount is explained in the payment's own currency when it is valid."""
    with pytest.raises(InvalidPayment) as err:
        pay(amount=19.99, currency=currency)
    assert str(err.value) == (f"amount must be an integer number of minor units ({example}); "
                              "got float 19.99")


@pytest.mark.parametrize("amount", [4111111111111111.0, Decimal("4111111111111111"),
                                    -4111111111111111, "4111111111111111"])
def test_card_number_as_amount_is_not_echoed(amount: object) -> None:
    """A PAN passed as the amount by mistake never appears in the message."""
    with pytest.raises(InvalidPayment) as err:
        pay(amount=amount)
    assert "4111" not in str(err.value)


@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, 10**100, 4111111111111111])
def test_amount_too_large(amount: int) -> None:
    """Anything above 10**12 minor units is refused as too large, without echoing it."""
    with pytest.raises(InvalidPayment, match=exact(TOO_LARGE)):
        pay(amount=amount)


# -- currency ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["KRW", "USD", "EUR", "BHD", "CLF", "XCG"])
def test_currency_accepted(code: str) -> None:
    """Active ISO 4217 codes are accepted as given."""
    assert pay(currency=code).currency == code


@pytest.mark.parametrize(("code", "message"), [
    ("usd", f"unknown currency code: did you mean 'USD'? {EXACT_CODE}"),
    ("Usd", f"unknown currency code: did you mean 'USD'? {EXACT_CODE}"),
    (" USD", f"unknown currency code: did you mean 'USD'? {EXACT_CODE}"),
    ("USD ", f"unknown currency code: did you mean 'USD'? {EXACT_CODE}"),
    ("KRX", f"unknown currency code 'KRX' ({CODE})"),
    ("XXX", f"unknown currency code 'XXX' ({CODE})"),
    ("ANG", f"unknown currency code 'ANG' ({CODE})"),
    ("US", f"unknown currency code: a str of 2 characters, not 3 letters A-Z ({CODE})"),
    ("USDD", f"unknown currency code: a str of 4 characters, not 3 letters A-Z ({CODE})"),
    ("", f"unknown currency code: an empty str, not 3 letters A-Z ({CODE})"),
    ("\uff35SD", f"unknown currency code: a str of 3 characters, not 3 letters A-Z ({CODE})"),
    ("4111111111111111",
     f"unknown currency code: a str of 16 characters, not 3 letters A-Z ({CODE})"),
    (None, f"currency must be a str ({CODE}); got NoneType"),
    (840, f"currency must be a str ({CODE}); got int"),
])
def test_currency_refused(code: object, message: str) -> None:
    """Lowercase, padded, wrong-length, withdrawn, non-ASCII and non-str codes are refused;
    a 3-letter code is echoed, anything else only described."""
    with pytest.raises(InvalidPayment, match=exact(message)):
        pay(currency=code)


# -- merchant ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["A", "M" * 64, "스타벅스 강남점", "Café 24/7", "\U0001d49c" * 64])
def test_merchant_accepted(name: str) -> None:
    """1 to 64 printable characters of any script (up to 256 UTF-8 bytes) are accepted."""
    assert pay(merchant=name).merchant == name


def test_merchant_is_stripped() -> None:
    """Whitespace around the merchant name is removed before the length check."""
    assert pay(merchant="\t" + "M" * 64 + "  ").merchant == "M" * 64


@pytest.mark.parametrize(("name", "got"), [
    ("", "; got an empty name"),
    ("   ", "; got an empty name"),
    ("M" * 65, "; got 65 characters"),
    ("Shop\x00", "; U+0000 is not printable"),
    ("Sh\nop", "; U+000A is not printable"),
    ("Shop\u202e", "; U+202E is not printable"),
    ("\ud800", "; U+D800 is not printable"),
    (None, "; got NoneType"),
    (5, "; got int"),
    (b"Shop", "; got bytes"),
])
def test_merchant_refused(name: object, got: str) -> None:
    """Empty, too long, control/format/surrogate characters and non-str are refused,
    saying which rule: the length, or the code point of the refused character."""
    with pytest.raises(InvalidPayment, match=exact(MERCHANT + got)):
        pay(merchant=name)


def test_merchant_too_many_bytes() -> None:
    """65 characters of 4 UTF-8 bytes each break the character limit; 64 fit in 256 bytes,
    so the byte limit guards the encoding, and says so."""
    assert pay(merchant="\U0001d49c" * 64).merchant == "\U0001d49c" * 64
    with pytest.raises(InvalidPayment, match=exact(MERCHANT + "; got 65 characters")):
        pay(merchant="\U0001d49c" * 65)


# -- idempotency key ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a", "k" * 128, "order-2026.11.21_0001:retry", "ABCxyz0189"])
def test_key_accepted(key: str) -> None:
    """1 to 128 characters of A-Z a-z 0-9 . _ : - are accepted."""
    assert pay(key=key).idempotency_key == key


@pytest.mark.parametrize(("key", "got"), [
    ("", "an empty str"),
    ("k" * 129, "129 characters"),
    ("order 1", "U+0020 at position 6"),
    ("order/1", "U+002F at position 6"),
    ("orderé", "U+00E9 at position 6"),
    ("order-1\n", "U+000A at position 8"),
    ("\uff41", "U+FF41 at position 1"),
    ("4111 1111 1111 1111", "U+0020 at position 5"),
    (None, "NoneType"),
    (1, "int"),
    (b"k", "bytes"),
])
def test_key_refused(key: object, got: str) -> None:
    """Empty, too long, other characters (newline and non-ASCII too) and non-str are
    refused, saying which rule and where, never the key itself."""
    with pytest.raises(InvalidPayment, match=exact(f"{KEY}; got {got}")):
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
    with pytest.raises(InvalidPayment, match=exact(f"unknown currency code 'ZZZ' ({CODE})")):
        format_amount(100, "ZZZ")
    for amount in (1.5, True, "100"):
        with pytest.raises(InvalidPayment, match=r"^amount must be an integer number"):
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


card_data = st.one_of(
    st.from_regex(r"[0-9]{12,19}", fullmatch=True),  # a PAN
    st.from_regex(r"[0-9]{4}( [0-9]{4}){2,3}", fullmatch=True),  # a PAN, spaced
    st.from_regex(r"[A-Z][a-z]{3,9} [A-Z][a-z]{3,9}", fullmatch=True),  # a holder name
    st.from_regex(r"(0[1-9]|1[0-2])/[0-9]{2}", fullmatch=True),  # an expiry
)


@given(field=st.sampled_from(["amount", "currency", "merchant", "key"]), value=card_data,
       wrap=st.sampled_from(["{}", "{}\n", "\x00{}", "{}/"]))
def test_card_data_is_never_echoed(field: str, value: str, wrap: str) -> None:
    """Card data passed in the wrong argument never appears in the message, whatever the
    field refused it for: only its type, length or one code point is told."""
    try:
        pay(**{field: wrap.format(value)})
    except InvalidPayment as exc:
        assert value not in str(exc)
