"""The card form: live brand and Luhn check, expiry check, inline errors."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from textual.widgets import Input

from splitvault.tui import DemoApp
from splitvault.tui._add_card import AddCardScreen, expiry_hint, pan_hint
from splitvault.tui._phrase import PhraseScreen
from splitvault.tui._widgets import ErrorLine

from .helpers import SIZE, click_button, fill_card, screen_text, type_into

Demo = Callable[..., DemoApp]


@pytest.mark.parametrize(
    ("typed", "shown", "kind"),
    [
        ("", "12 to 19 digits; spaces are fine", "hint"),
        ("4", "Visa · 1 digits so far", "hint"),
        ("5500 0000 0000 0004", "Mastercard · ✓ passes the Luhn check", "ok"),
        ("4111 1111 1111 1112", "Visa · ✗ fails the Luhn check: a digit is mistyped", "error"),
        ("62", "2 digits so far", "hint"),
    ],
)
def test_pan_hint(typed: str, shown: str, kind: str) -> None:
    """The line under the card number follows every keystroke."""
    assert pan_hint(typed) == (shown, kind)


@pytest.mark.parametrize(
    ("typed", "kind", "fragment"),
    [
        ("", "hint", "MM/YY"),
        ("12/30", "ok", "valid through 12/2030"),
        ("06/2025", "ok", "valid through 06/2025"),
        ("05/25", "error", "expired"),
        ("13/30", "error", "01 to 12"),
        ("1230", "hint", "MM/YY"),
        ("12/3x0", "error", "MM/YY"),
    ],
)
def test_expiry_hint(typed: str, kind: str, fragment: str) -> None:
    """Valid through the last day of the month; expired from the next."""
    text, got = expiry_hint(typed, datetime.date(2025, 6, 30))
    assert got == kind and fragment in text


async def test_inline_errors_field_by_field(demo: Demo) -> None:
    """Each mistake is caught live and again on Continue, shown under its own field
    (whose border turns red), which gets the focus; the form stays until all is well."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Add card")
        await fill_card(pilot, pan="", expiry="05/25", holder="  ")
        # Typed key by key: the number field drops anything but digits and spaces.
        await type_into(pilot, "#pan", "4111-1111 abc1111 1112", keys=True)
        assert app.screen.query_one("#pan", Input).value == "41111111 1111 1112"
        text = screen_text(app)
        assert "✗ fails the Luhn check" in text and "✗ this card has expired" in text
        fixes = {"pan": "4111 1111 1111 1111", "expiry": "12/30", "holder": "KIM MINSU"}
        for field in fixes:
            await click_button(pilot, "Continue")
            assert isinstance(app.screen, AddCardScreen)
            # Every remaining mistake is shown; the focus goes to the first.
            for pending in list(fixes)[list(fixes).index(field):]:
                assert app.screen.query_one(f"#{pending}-hint", ErrorLine).is_error
                assert app.screen.query_one(f"#{pending}", Input).has_class("-invalid")
            assert app.focused is app.screen.query_one(f"#{field}", Input)
            await type_into(pilot, f"#{field}", fixes[field])
        await click_button(pilot, "Continue")
        assert isinstance(app.screen, PhraseScreen)
