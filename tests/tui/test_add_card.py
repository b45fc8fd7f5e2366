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

from .helpers import SIZE, TODAY, click_button, fill_card, screen_text, type_into

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


async def test_bad_luhn_is_an_inline_error(demo: Demo) -> None:
    """A mistyped number is caught live and on Continue; the form stays, nothing else."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Add card")
        await fill_card(pilot, pan="4111 1111 1111 1112")
        assert "✗ fails the Luhn check" in screen_text(app)
        await click_button(pilot, "Continue")
        assert isinstance(app.screen, AddCardScreen)
        line = app.screen.query_one("#pan-hint", ErrorLine)
        assert line.is_error and "Luhn" in str(line.render())
        assert app.focused is app.screen.query_one("#pan")


async def test_expired_card_is_an_inline_error(demo: Demo) -> None:
    """An expired card stays on the form with the error under the expiry."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Add card")
        await fill_card(pilot, expiry="05/25")
        assert "✗ this card has expired" in screen_text(app)
        await click_button(pilot, "Continue")
        assert isinstance(app.screen, AddCardScreen)
        assert "card has expired" in screen_text(app)
        assert app.focused is app.screen.query_one("#expiry")


async def test_missing_name_is_an_inline_error(demo: Demo) -> None:
    """No name: the error sits under the name field."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Add card")
        await fill_card(pilot, holder="   ")
        await click_button(pilot, "Continue")
        assert isinstance(app.screen, AddCardScreen)
        assert app.screen.query_one("#holder-hint", ErrorLine).is_error


async def test_only_digits_and_spaces_go_into_the_number(demo: Demo) -> None:
    """The number field refuses letters as they are typed."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Add card")
        await type_into(pilot, "#pan", "4111-abcd 1111", keys=True)
        assert app.screen.query_one("#pan", Input).value == "4111 1111"


async def test_a_valid_card_moves_on_to_the_phrase(demo: Demo) -> None:
    """A valid card goes on to the security phrase, dated by the injected clock."""
    app = demo(today=lambda: TODAY)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Add card")
        await fill_card(pilot, expiry="06/25")
        await click_button(pilot, "Continue")
        assert isinstance(app.screen, PhraseScreen)
