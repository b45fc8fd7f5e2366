"""Card validation: PAN, brand, expiry, holder, secrecy and the sealed record."""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from splitvault import Card, InvalidCard
from splitvault._card import BRAND_NAMES, brand_of, luhn_valid, normalise_pan

VECTORS = json.loads((Path(__file__).parent / "vectors" / "test_cards.json").read_text("utf-8"))
TODAY = datetime.date(2026, 11, 21)
HOLDER = "KIM MINSU"
VISA = "4111111111111111"
FULLWIDTH_VISA = "".join(chr(0xFF10 + int(digit)) for digit in VISA)
ARABIC_INDIC_VISA = "".join(chr(0x0660 + int(digit)) for digit in VISA)


def exact(message: str) -> str:
    """A pytest.raises(match=...) pattern for exactly this message."""
    return f"^{re.escape(message)}$"


def parse(pan: str = VISA, expiry: str = "12/30", holder: str = HOLDER) -> Card:
    return Card.parse(pan, expiry, holder, today=TODAY)


def with_check_digit(body: str) -> str:
    """``body`` plus the one digit that makes it pass Luhn."""
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable")


def pan_with_prefix(prefix: str, length: int = 16) -> str:
    return with_check_digit(prefix.ljust(length - 1, "0"))


HOLDER_MESSAGE = "holder name must be 1 to 64 printable characters"
SEPARATORS = "card number separators must be single spaces or dashes between digits"

luhn_pans = st.builds(
    lambda body: with_check_digit(body),
    st.text(alphabet="0123456789", min_size=11, max_size=18),
)


# -- the published vectors ---------------------------------------------------------------


def test_vectors_name_their_source() -> None:
    """The vector file says where its numbers come from."""
    assert "Stripe" in VECTORS["source"]


@pytest.mark.parametrize("row", VECTORS["valid"], ids=lambda row: row["pan"])
def test_valid_vector_parses_with_its_brand(row: dict[str, str]) -> None:
    """Every published test number parses, keeps its digits and gets the listed brand."""
    card = parse(row["pan"])
    assert card.pan == row["pan"]
    assert card.brand == row["brand"]
    assert brand_of(row["pan"]) == row["brand"]


@pytest.mark.parametrize("row", VECTORS["invalid"], ids=lambda row: row["why"])
def test_invalid_vector_is_refused(row: dict[str, str]) -> None:
    """Every must-fail row raises InvalidCard, and the message does not echo it."""
    with pytest.raises(InvalidCard) as info:
        parse(row["pan"])
    assert not row["pan"] or row["pan"] not in str(info.value)


# -- PAN ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111 1111-1111 1111", "  4111111111111111 "],
)
def test_separators_are_removed(text: str) -> None:
    """Single spaces or dashes between groups, and surrounding spaces, are accepted."""
    assert normalise_pan(text) == VISA
    assert parse(text).pan == VISA


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4111  1111 1111 1111", SEPARATORS),
        ("-4111111111111111", SEPARATORS),
        ("4111-1111-1111-1111-", SEPARATORS),
        ("4111 - 1111 1111 1111", SEPARATORS),
        ("4111.1111.1111.1111", "card number may contain only digits, spaces and dashes"),
        ("4111\t1111 1111 1111", "card number may contain only digits, spaces and dashes"),
        ("4111111111111111\n", "card number may contain only digits, spaces and dashes"),
        (
            FULLWIDTH_VISA,
            "card number may contain only digits, spaces and dashes",
        ),
        (ARABIC_INDIC_VISA, "card number may contain only digits, spaces and dashes"),
        ("41111111111111x1", "card number may contain only digits, spaces and dashes"),
        ("", "card number must be 12 to 19 digits"),
        ("   ", "card number must be 12 to 19 digits"),
        (with_check_digit("4" * 10), "card number must be 12 to 19 digits"),
        (with_check_digit("4" * 19), "card number must be 12 to 19 digits"),
        ("4111111111111112", "card number fails the Luhn check"),
    ],
)
def test_bad_pan_message(text: str, message: str) -> None:
    """Each PAN mistake gets its own fixed message."""
    with pytest.raises(InvalidCard, match=exact(message)):
        normalise_pan(text)


@pytest.mark.parametrize("length", [12, 19])
def test_pan_length_bounds_accepted(length: int) -> None:
    """12 and 19 digits, the bounds, are accepted."""
    pan = pan_with_prefix("4", length)
    assert parse(pan).pan == pan


@pytest.mark.parametrize("value", [None, 4111111111111111, b"4111111111111111", ["4"]])
def test_pan_must_be_a_string(value: Any) -> None:
    """A PAN that is not a str is refused with InvalidCard, not TypeError."""
    with pytest.raises(InvalidCard, match=exact("card number must be a string")):
        parse(value)


def test_luhn_basics() -> None:
    """luhn_valid accepts a known good number and refuses empty and non-digit input."""
    assert luhn_valid(VISA)
    assert luhn_valid("0")
    assert not luhn_valid("")
    assert not luhn_valid("4111 1111 1111 1111")
    assert not luhn_valid(FULLWIDTH_VISA)
    assert not luhn_valid(4111111111111111)  # type: ignore[arg-type]


@given(pan=luhn_pans, data=st.data())
def test_any_single_digit_change_breaks_luhn(pan: str, data: st.DataObject) -> None:
    """Changing any one digit of a valid PAN makes it fail Luhn."""
    index = data.draw(st.integers(0, len(pan) - 1))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != pan[index]]))
    assert not luhn_valid(pan[:index] + digit + pan[index + 1 :])


# -- brand -------------------------------------------------------------------------------


# Each range's first and last prefix, and the neighbours just outside it.
IIN_BOUNDARIES = (
    "4:visa 50:unknown 51:mastercard 55:mastercard 56:unknown 2220:unknown 2221:mastercard "
    "2720:mastercard 2721:unknown 33:unknown 34:amex 35:unknown 37:amex 3527:unknown "
    "3528:jcb 3589:jcb 3590:unknown 299:unknown 300:diners 305:diners 306:unknown 36:diners "
    "38:diners 39:diners 6010:unknown 6011:discover 6012:unknown 61:unknown 62:unionpay "
    "622125:unionpay 622126:discover 622925:discover 622926:unionpay 643:unknown "
    "644:discover 649:discover 65:discover 66:unknown 1:unknown 9:unknown"
)


@pytest.mark.parametrize("case", IIN_BOUNDARIES.split())
def test_iin_boundaries(case: str) -> None:
    """Each IIN range's first and last prefix get the brand; their neighbours do not."""
    prefix, brand = case.split(":")
    card = parse(pan_with_prefix(prefix))
    assert card.brand == brand
    assert card.brand in BRAND_NAMES


PARTIAL_BRANDS = (
    "4:visa 5:unknown 2:unknown 223:mastercard 272:unknown 35:unknown 358:jcb 62:unknown "
    "620:unionpay 6223:discover 6229:unknown 30:unknown 3:unknown 6:unknown 64:unknown"
)


@pytest.mark.parametrize("case", PARTIAL_BRANDS.split())
def test_brand_of_partial_numbers(case: str) -> None:
    """brand_of names a brand only once every completion of the typed digits has it."""
    typed, brand = case.split(":")
    assert brand_of(typed) == brand


def test_brand_of_odd_input() -> None:
    """brand_of ignores separators and says unknown for empty or non-ASCII-digit input."""
    assert brand_of("4111 11") == brand_of("4111-11") == "visa"
    for text in ("", " ", "abc", FULLWIDTH_VISA, None):
        assert brand_of(text) == "unknown"  # type: ignore[arg-type]


@given(digits=st.text(alphabet="0123456789", min_size=6, max_size=19), cut=st.integers(0, 19))
def test_partial_brand_is_never_contradicted(digits: str, cut: int) -> None:
    """A brand shown for a prefix is the brand of the whole number."""
    partial = brand_of(digits[:cut])
    assert partial == "unknown" or partial == brand_of(digits)


def test_brand_names_cover_every_brand() -> None:
    """BRAND_NAMES has a display name for every brand id, with the expected spelling."""
    assert BRAND_NAMES["amex"] == "American Express"
    assert BRAND_NAMES["mastercard"] == "Mastercard"
    assert {row["brand"] for row in VECTORS["valid"]} <= BRAND_NAMES.keys()


# -- expiry ------------------------------------------------------------------------------


def test_this_month_is_valid_and_last_month_expired() -> None:
    """A card is valid through the last day of its expiry month and not a day longer."""
    assert parse(expiry="11/26").expiry == "11/26"
    with pytest.raises(InvalidCard, match=exact("card has expired")):
        parse(expiry="10/26")
    card = Card.parse(VISA, "11/26", HOLDER, today=datetime.date(2026, 11, 30))
    assert not card.is_expired(datetime.date(2026, 11, 30))
    assert card.is_expired(datetime.date(2026, 12, 1))
    with pytest.raises(InvalidCard, match=exact("card has expired")):
        Card.parse(VISA, "11/26", HOLDER, today=datetime.date(2026, 12, 1))


def test_december_rolls_into_next_year() -> None:
    """A 12/26 card is valid on 31 December 2026 and expired on 1 January 2027."""
    card = Card.parse(VISA, "12/26", HOLDER, today=datetime.date(2026, 12, 31))
    assert card.is_expired(datetime.date(2027, 1, 1))


def test_four_digit_year_is_normalised() -> None:
    """MM/YYYY is accepted and stored as MM/YY with a four-digit expiry_year."""
    card = parse(expiry="03/2031")
    assert (card.expiry, card.expiry_month, card.expiry_year) == ("03/31", 3, 2031)
    assert parse(expiry="01/99").expiry_year == 2099


@pytest.mark.parametrize(
    ("expiry", "message"),
    [
        ("00/30", "expiry month must be 01 to 12"),
        ("13/30", "expiry month must be 01 to 12"),
        ("1/30", "expiry must be MM/YY or MM/YYYY"),
        ("12-30", "expiry must be MM/YY or MM/YYYY"),
        ("12/3", "expiry must be MM/YY or MM/YYYY"),
        ("12/030", "expiry must be MM/YY or MM/YYYY"),
        (FULLWIDTH_VISA[:2] + "/30", "expiry must be MM/YY or MM/YYYY"),
        ("", "expiry must be MM/YY or MM/YYYY"),
        ("12/2100", "expiry year must be 2000 to 2099"),
        ("12/1999", "expiry year must be 2000 to 2099"),
    ],
)
def test_bad_expiry_message(expiry: str, message: str) -> None:
    """Each expiry mistake gets its own fixed message."""
    with pytest.raises(InvalidCard, match=exact(message)):
        parse(expiry=expiry)


def test_constructor_checks_against_today() -> None:
    """Card(...) validates like parse() with the real date: old cards are refused."""
    assert Card(VISA, "12/99", HOLDER).expiry == "12/99"
    with pytest.raises(InvalidCard, match=exact("card has expired")):
        Card(VISA, "01/00", HOLDER)


# -- holder ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "A",
        "A" * 64,
        "김민수",
        "KIM MINSU",
        "José O'Brien-Ñúñez",
        "\U0001d49c" * 64,  # 4 UTF-8 bytes each: exactly 256 bytes
    ],
)
def test_holder_accepted(name: str) -> None:
    """1 to 64 printable characters of any script are accepted."""
    assert parse(holder=name).holder == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "A" * 65,
        "KIM\x00MINSU",
        "KIM\nMINSU",
        "KIM\u200bMINSU",
        "KIM\u00a0MINSU",
        "\ud800",
        None,
        7,
    ],
)
def test_holder_refused(name: Any) -> None:
    """Empty, over 64 characters, control/format/odd space characters and non-str are refused."""
    with pytest.raises(InvalidCard, match=exact(HOLDER_MESSAGE)):
        parse(holder=name)


def test_holder_is_stripped() -> None:
    """Whitespace around the name is removed before the length check."""
    assert parse(holder="  " + "A" * 64 + "\n").holder == "A" * 64


# -- secrecy and immutability ------------------------------------------------------------


def test_repr_shows_brand_last4_and_expiry_only() -> None:
    """repr, str, format and f-strings show brand, last four and expiry, never PAN or name."""
    card = parse()
    for shown in (repr(card), str(card), f"{card}", format(card, "s"), repr([card])):
        assert VISA not in shown
        assert HOLDER not in shown
    assert repr(card) == "<Card visa ****1111 exp 12/30>"


def test_masked_pan_and_last4() -> None:
    """masked_pan is four bullets and the last four digits, whatever the length."""
    assert parse().masked_pan == "•••• 1111"
    assert parse("378282246310005").masked_pan == "•••• 0005"
    assert parse().last4 == "1111"


def test_pickling_is_refused() -> None:
    """A Card cannot be pickled with any protocol."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(parse(), protocol=protocol)


def test_card_is_immutable() -> None:
    """Fields cannot be set or deleted, and copies are the same object."""
    card = parse()
    with pytest.raises(AttributeError):
        card.pan = "4242424242424242"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        card._pan = "4242424242424242"
    with pytest.raises(AttributeError):
        del card._holder
    assert copy.copy(card) is card
    assert copy.deepcopy(card) is card
    assert card.pan == VISA


def test_error_messages_never_echo_input() -> None:
    """No InvalidCard message contains the PAN or the holder name given."""
    cases = [
        (VISA[:-1] + "2", "12/30", HOLDER),
        (VISA, "10/26", "SECRET NAME"),
        (VISA, "12/30", "X" * 65),
    ]
    for pan, expiry, holder in cases:
        with pytest.raises(InvalidCard) as info:
            parse(pan, expiry, holder)
        assert pan not in str(info.value)
        assert holder not in str(info.value)


# -- the sealed record -------------------------------------------------------------------


def test_record_known_answer() -> None:
    """_to_record is sorted, compact UTF-8 JSON with a version field, in a bytearray."""
    record = parse(holder="김민수")._to_record()
    assert isinstance(record, bytearray)
    expected = '{"expiry":"12/30","holder":"김민수","pan":"4111111111111111","v":1}'
    assert record == expected.encode("utf-8")


def test_record_round_trip_keeps_expired_cards() -> None:
    """_from_record gives back the same fields, even for a card that has since expired."""
    old = Card.parse(VISA, "01/20", HOLDER, today=datetime.date(2019, 6, 1))
    back = Card._from_record(bytes(old._to_record()))
    assert (back.pan, back.expiry, back.holder) == (VISA, "01/20", HOLDER)
    assert back.is_expired(TODAY)


def _record(**fields: Any) -> bytes:
    base: dict[str, Any] = {"v": 1, "pan": VISA, "expiry": "12/30", "holder": HOLDER}
    base.update(fields)
    base = {key: value for key, value in base.items() if value is not ...}
    text = json.dumps(base, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


@pytest.mark.parametrize(
    "data",
    [
        _record(v=2),
        _record(v=True),
        _record(v="1"),
        _record(v=1.0),
        _record(v=...),
        _record(extra="x"),
        _record(pan=...),
        _record(pan=4111111111111111),
        _record(holder=None),
        _record(expiry=["12/30"]),
        _record(pan="4111 1111 1111 1111"),
        _record(expiry="12/2030"),
        _record(holder=" KIM MINSU"),
        _record(pan="4111111111111112"),
        _record(expiry="13/30"),
        _record(holder=""),
        _record().replace(b":1}", b": 1}"),
        _record().replace(b'"pan"', b'"\\u0070an"'),
        _record()[:-1] + b',"v":1}',
        _record().replace(b":1}", b":NaN}"),
        b"\xef\xbb\xbf" + _record(),
        _record() + b" ",
        _record().decode("utf-8").encode("utf-16"),
        b"\xff\xfe",
        b"[]",
        b"null",
        b"",
        b"[" * 1000,
        b"[" * 100_000,
        _record(holder="A" * 2000),
    ],
)
def test_malformed_records_refused(data: bytes) -> None:
    """Unknown versions, extra or missing keys, wrong types, non-canonical bytes are refused."""
    with pytest.raises(InvalidCard, match=exact("malformed card record")):
        Card._from_record(data)


@pytest.mark.parametrize("data", ["{}", None, memoryview(b"{}"), 0])
def test_record_must_be_bytes(data: Any) -> None:
    """A record that is not bytes or bytearray is refused with InvalidCard."""
    with pytest.raises(InvalidCard, match=exact("malformed card record")):
        Card._from_record(data)


@given(pan=luhn_pans)
def test_any_luhn_valid_pan_parses_and_round_trips(pan: str) -> None:
    """Every Luhn-valid 12-19 digit string is a Card whose record reads back exactly."""
    card = parse(pan)
    record = card._to_record()
    back = Card._from_record(record)
    assert (back.pan, back.expiry, back.holder) == (pan, "12/30", HOLDER)
    assert back._to_record() == record


printable_names = (
    st.text(min_size=1, max_size=64)
    .map(str.strip)
    .filter(lambda name: len(name) >= 1 and name.isprintable())
)


@given(name=printable_names, month=st.integers(1, 12), year=st.integers(2000, 2099))
def test_any_valid_fields_round_trip(name: str, month: int, year: int) -> None:
    """Any printable name and any expiry round-trip byte for byte through the record."""
    card = Card._from_record(_record(holder=name, expiry=f"{month:02d}/{year % 100:02d}"))
    assert card.holder == name
    assert (card.expiry_month, card.expiry_year) == (month, year)
    assert card._to_record() == _record(holder=name, expiry=card.expiry)


# -- fuzzing: InvalidCard or success, nothing else ---------------------------------------


@given(pan=st.text(), expiry=st.text(), holder=st.text())
def test_parse_arbitrary_text_only_raises_invalid_card(pan: str, expiry: str, holder: str) -> None:
    """Card.parse on any text either succeeds or raises InvalidCard."""
    with contextlib.suppress(InvalidCard):
        parse(pan, expiry, holder)


@given(value=st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text())))
def test_parse_arbitrary_objects_only_raises_invalid_card(value: Any) -> None:
    """Non-str values for any field raise InvalidCard, never TypeError."""
    for fields in ((value, "12/30", HOLDER), (VISA, value, HOLDER), (VISA, "12/30", value)):
        with pytest.raises(InvalidCard):
            parse(*fields)


@given(text=st.text())
def test_normalise_pan_arbitrary_text(text: str) -> None:
    """normalise_pan on any text returns 12-19 Luhn-valid ASCII digits or raises InvalidCard."""
    try:
        digits = normalise_pan(text)
    except InvalidCard:
        return
    assert digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19
    assert luhn_valid(digits)


@given(text=st.text())
def test_brand_of_never_raises(text: str) -> None:
    """brand_of on any text returns a known brand id."""
    assert brand_of(text) in BRAND_NAMES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(data=st.binary(max_size=300))
def test_from_record_arbitrary_bytes(data: bytes) -> None:
    """_from_record on any bytes succeeds or raises InvalidCard."""
    with contextlib.suppress(InvalidCard):
        Card._from_record(data)


@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "v": json_values | st.just(1),
            "pan": json_values | luhn_pans,
            "expiry": json_values | st.just("12/30"),
            "holder": json_values | st.just(HOLDER),
            "other": json_values,
        },
    )
)
def test_from_record_arbitrary_json(fields: dict[str, Any]) -> None:
    """_from_record on any JSON object succeeds or raises InvalidCard."""
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    with contextlib.suppress(InvalidCard):
        Card._from_record(data.encode("utf-8", "surrogatepass"))
