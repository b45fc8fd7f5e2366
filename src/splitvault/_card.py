"""``Card``: a validated payment card (PAN, expiry, holder) that never shows itself.

A ``Card`` exists only to be sealed: :meth:`Card._to_record` gives the canonical bytes
the vault encrypts, :meth:`Card._from_record` reads them back. ``repr``, ``str`` and
error messages show at most the brand and the last four digits (PCI DSS 3.4.1 allows
those); the PAN and the holder's name never appear in them, and a Card cannot be
pickled. As with ``Pin``, Python cannot wipe ``str`` copies: see threat_model.md.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import NoReturn

from ._errors import InvalidCard
from .crypto.memory import wipe

__all__ = ["BRAND_NAMES", "Card", "brand_of", "luhn_valid", "normalise_pan"]

MIN_PAN_DIGITS = 12
"""ISO/IEC 7812-1 caps a PAN at 19 digits; 12 is the shortest in use (Maestro)."""
MAX_PAN_DIGITS = 19
MAX_HOLDER_CHARS = 64
"""ISO/IEC 7813 track 1 allows 26 characters; 64 leaves room for long romanised names."""
MAX_HOLDER_BYTES = 256
"""64 characters of at most 4 UTF-8 bytes each: a bound on the sealed record's size."""
RECORD_VERSION = 1
_MAX_RECORD_BYTES = 1024
"""Larger than any valid record (holder <= 256 bytes, doubled by JSON escapes)."""

BRAND_NAMES: dict[str, str] = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
    "jcb": "JCB",
    "unionpay": "UnionPay",
    "diners": "Diners Club",
    "unknown": "Unknown",
}
"""Brand id (as returned by :func:`brand_of`) -> name for display."""

#: IIN ranges as (prefix length, first, last, brand), longest prefix first: a longer
#: prefix wins, so 622126-622925 is Discover although all of 62 is otherwise UnionPay.
_IIN_RANGES: tuple[tuple[int, int, int, str], ...] = (
    (6, 622126, 622925, "discover"),
    (4, 2221, 2720, "mastercard"),
    (4, 3528, 3589, "jcb"),
    (4, 6011, 6011, "discover"),
    (3, 300, 305, "diners"),
    (3, 644, 649, "discover"),
    (2, 34, 34, "amex"),
    (2, 37, 37, "amex"),
    (2, 36, 36, "diners"),
    (2, 38, 39, "diners"),
    (2, 51, 55, "mastercard"),
    (2, 62, 62, "unionpay"),
    (2, 65, 65, "discover"),
    (1, 4, 4, "visa"),
)

_PAN_CHARS = frozenset("0123456789 -")
# Groups of ASCII digits joined by single separators; no separator at either end.
_PAN_SHAPE = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_EXPIRY_SHAPE = re.compile(r"([0-9]{2})/([0-9]{2}|[0-9]{4})")
_RECORD_KEYS = frozenset({"v", "pan", "expiry", "holder"})

_MALFORMED = "malformed card record"


def luhn_valid(digits: str) -> bool:
    """True if ``digits`` is a non-empty string of ASCII digits passing the Luhn check."""
    if not isinstance(digits, str) or not digits or not _is_ascii_digits(digits):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:  # every second digit from the right is doubled
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def brand_of(digits: str) -> str:
    """The brand id of a PAN or of the digits typed so far, else ``"unknown"``.

    Spaces and dashes are ignored. A partial number gets a brand only once every
    completion of it belongs to that brand ("62" stays unknown: it may become
    Discover's 622126-622925). Never raises.
    """
    if not isinstance(digits, str):
        return "unknown"
    digits = digits.replace(" ", "").replace("-", "")
    if not digits or not _is_ascii_digits(digits):
        return "unknown"
    for length, first, last, brand in _IIN_RANGES:
        if len(digits) >= length:
            if first <= int(digits[:length]) <= last:
                return brand
            continue
        lowest = int(digits.ljust(length, "0"))
        highest = int(digits.ljust(length, "9"))
        if first <= lowest and highest <= last:
            return brand
        if lowest <= last and first <= highest:
            return "unknown"  # some completions are in this range, some are not
    return "unknown"


def normalise_pan(text: str) -> str:
    """The digits of a PAN typed with optional single spaces or dashes between groups.

    Surrounding ASCII spaces are ignored. Anything else that is not an ASCII digit is
    refused, full-width and other non-ASCII digits included (never silently mapped).
    Raises ``InvalidCard`` unless the result has 12 to 19 digits and passes Luhn.
    """
    if not isinstance(text, str):
        raise InvalidCard("card number must be a string")
    text = text.strip(" ")
    if not _PAN_CHARS.issuperset(text):
        raise InvalidCard("card number may contain only digits, spaces and dashes")
    digits = text.replace(" ", "").replace("-", "")
    if not MIN_PAN_DIGITS <= len(digits) <= MAX_PAN_DIGITS:
        raise InvalidCard(f"card number must be {MIN_PAN_DIGITS} to {MAX_PAN_DIGITS} digits")
    if not _PAN_SHAPE.fullmatch(text):
        raise InvalidCard("card number separators must be single spaces or dashes between digits")
    if not luhn_valid(digits):
        raise InvalidCard("card number fails the Luhn check")
    return digits


class Card:
    """A payment card, validated on construction: ``Card(pan, expiry, holder)``.

    ``pan`` holds digits only, ``expiry`` is normalised to ``MM/YY`` and ``holder`` is
    stripped. Immutable; compares by identity; cannot be pickled.
    """

    __slots__ = ("_holder", "_month", "_pan", "_year")

    _pan: str
    _month: int
    _year: int
    _holder: str

    def __init__(self, pan: str, expiry: str, holder: str) -> None:
        self._setup(pan, expiry, holder, datetime.date.today())

    @classmethod
    def parse(
        cls, pan: str, expiry: str, holder: str, *, today: datetime.date | None = None
    ) -> Card:
        """As the constructor, but checking expiry against ``today`` (default: local date)."""
        card = cls.__new__(cls)
        card._setup(pan, expiry, holder, datetime.date.today() if today is None else today)
        return card

    def _setup(self, pan: str, expiry: str, holder: str, today: datetime.date | None) -> None:
        # today=None skips the expiry check: only _from_record does that.
        digits = normalise_pan(pan)
        month, year = _parse_expiry(expiry)
        name = _check_holder(holder)
        if today is not None and _past(month, year, today):
            raise InvalidCard("card has expired")
        object.__setattr__(self, "_pan", digits)
        object.__setattr__(self, "_month", month)
        object.__setattr__(self, "_year", year)
        object.__setattr__(self, "_holder", name)

    # -- fields ------------------------------------------------------------------------

    @property
    def pan(self) -> str:
        """The card number, ASCII digits only."""
        return self._pan

    @property
    def expiry(self) -> str:
        """The expiry as ``MM/YY``."""
        return f"{self._month:02d}/{self._year % 100:02d}"

    @property
    def expiry_month(self) -> int:
        """1 to 12."""
        return self._month

    @property
    def expiry_year(self) -> int:
        """Four digits, 2000 to 2099."""
        return self._year

    @property
    def holder(self) -> str:
        """The cardholder's name, stripped."""
        return self._holder

    @property
    def brand(self) -> str:
        """The brand id (a key of ``BRAND_NAMES``), from the PAN's IIN."""
        return brand_of(self._pan)

    @property
    def last4(self) -> str:
        """The last four digits, which PCI DSS allows to be shown."""
        return self._pan[-4:]

    @property
    def masked_pan(self) -> str:
        """``"•••• 1111"``: the last four digits only; the length stays hidden too."""
        return f"\u2022\u2022\u2022\u2022 {self.last4}"

    def is_expired(self, today: datetime.date | None = None) -> bool:
        """True after the last day of the expiry month (``today`` defaults to local date)."""
        return _past(self._month, self._year, datetime.date.today() if today is None else today)

    # -- sealing -----------------------------------------------------------------------

    def _to_record(self) -> bytearray:
        """Canonical UTF-8 JSON (sorted keys, no spaces) for sealing. Wipe it after use."""
        text = json.dumps(
            {"v": RECORD_VERSION, "pan": self._pan, "expiry": self.expiry, "holder": self._holder},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return bytearray(text, "utf-8")

    @classmethod
    def _from_record(cls, data: bytes | bytearray) -> Card:
        """The Card a record came from. Only the exact canonical bytes are accepted;
        expired cards are (the acquirer decides about expiry). Raises ``InvalidCard``."""
        if not isinstance(data, bytes | bytearray) or len(data) > _MAX_RECORD_BYTES:
            raise InvalidCard(_MALFORMED)
        try:
            # Anything non-canonical (duplicate keys, NaN, escapes, spaces) parses here
            # but fails the byte comparison with the re-encoded record below.
            fields = json.loads(bytes(data).decode("utf-8"))
        except (ValueError, RecursionError):
            raise InvalidCard(_MALFORMED) from None
        if (
            type(fields) is not dict
            or fields.keys() != _RECORD_KEYS
            or type(fields["v"]) is not int
            or fields["v"] != RECORD_VERSION
            or not all(type(fields[key]) is str for key in ("pan", "expiry", "holder"))
        ):
            raise InvalidCard(_MALFORMED)
        card = cls.__new__(cls)
        try:
            card._setup(fields["pan"], fields["expiry"], fields["holder"], None)
        except InvalidCard:
            raise InvalidCard(_MALFORMED) from None
        canonical = card._to_record()
        try:
            if canonical != data:  # e.g. "12/2030", spaces in the PAN, unstripped name
                raise InvalidCard(_MALFORMED)
        finally:
            wipe(canonical)
        return card

    # -- never show, never serialize ---------------------------------------------------

    def __repr__(self) -> str:
        return f"<Card {self.brand} ****{self.last4} exp {self.expiry}>"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Card is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Card is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("Card cannot be pickled")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("Card cannot be pickled")

    def __copy__(self) -> Card:
        return self  # immutable

    def __deepcopy__(self, memo: object) -> Card:
        return self


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _parse_expiry(expiry: str) -> tuple[int, int]:
    if not isinstance(expiry, str):
        raise InvalidCard("expiry must be MM/YY or MM/YYYY")
    match = _EXPIRY_SHAPE.fullmatch(expiry.strip(" "))
    if match is None:
        raise InvalidCard("expiry must be MM/YY or MM/YYYY")
    month, year = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise InvalidCard("expiry month must be 01 to 12")
    if len(match[2]) == 2:
        year += 2000
    elif not 2000 <= year <= 2099:  # stored as MM/YY, so the century must be implied
        raise InvalidCard("expiry year must be 2000 to 2099")
    return month, year


def _check_holder(holder: str) -> str:
    message = f"holder name must be 1 to {MAX_HOLDER_CHARS} printable characters"
    if not isinstance(holder, str):
        raise InvalidCard(message)
    name = holder.strip()
    # isprintable() refuses control, format, separator (except ASCII space) and
    # surrogate code points, so the UTF-8 encoding below cannot fail.
    if not 1 <= len(name) <= MAX_HOLDER_CHARS or not name.isprintable():
        raise InvalidCard(message)
    if len(name.encode("utf-8")) > MAX_HOLDER_BYTES:
        raise InvalidCard(message)
    return name


def _past(month: int, year: int, today: datetime.date) -> bool:
    # A card is valid through the last day of its expiry month.
    return (today.year, today.month) > (year, month)
