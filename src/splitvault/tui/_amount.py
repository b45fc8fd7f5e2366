"""The amount as a person types it: ``12000`` or ``12,000`` won, checked in plain words.

The field takes every character typed (nothing is dropped without a word); this
says what is wrong with the text, or what amount it is. Won have no smaller unit, so
a decimal point is refused rather than rounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._payment import MAX_AMOUNT, format_amount

__all__ = ["AmountCheck", "check_amount"]

_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+")
_EXAMPLE = "type 12000 or 12,000"


@dataclass(frozen=True)
class AmountCheck:
    """The amount in won, or ``None`` with the reason in ``message``."""

    amount: int | None
    message: str


def check_amount(text: str, currency: str = "KRW") -> AmountCheck:
    """What ``text`` says as an amount in ``currency`` (a currency without decimals)."""
    typed = text.strip()
    if not typed:
        return AmountCheck(None, f"whole won, no decimals: {_EXAMPLE}")
    if "." in typed:
        return AmountCheck(None, f"✗ won have no decimals: {_EXAMPLE}")
    bad = next((c for c in typed if not (c.isdecimal() and c.isascii()) and c != ","), None)
    if bad is not None:
        shown = "a space" if bad.isspace() else f"“{bad}”"
        return AmountCheck(None, f"✗ only digits and commas, not {shown}: {_EXAMPLE}")
    if "," in typed and not _GROUPED.fullmatch(typed):
        return AmountCheck(None, "✗ commas go between groups of three digits: 12,000")
    digits = typed.replace(",", "").lstrip("0")
    if not digits:
        return AmountCheck(None, "✗ the amount must be at least 1 won")
    if len(digits) > len(str(MAX_AMOUNT)) or int(digits) > MAX_AMOUNT:
        return AmountCheck(None, f"✗ at most {format_amount(MAX_AMOUNT, currency)}")
    amount = int(digits)
    return AmountCheck(amount, format_amount(amount, currency))
