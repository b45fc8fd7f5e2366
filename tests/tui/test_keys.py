"""Keys: q quits except on the keypad, Escape goes back, no screenshot of a keypad,
and every screen fits an 80x24 terminal."""

from __future__ import annotations

from collections.abc import Callable

from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input

from splitvault.keypad import SecureKeypad
from splitvault.tui import DemoApp
from splitvault.tui._phrase import PhraseScreen
from splitvault.tui._set_pin import SetPinScreen
from splitvault.tui._wallet import WalletScreen

from .helpers import (
    SIZE,
    click_button,
    enroll_directly,
    fill_card,
    keypad,
    settle,
    tap_pin,
)

Demo = Callable[..., DemoApp]


async def _to_set_pin(pilot: object) -> None:
    await click_button(pilot, "Add card")  # type: ignore[arg-type]
    await fill_card(pilot)  # type: ignore[arg-type]
    await click_button(pilot, "Continue")  # type: ignore[arg-type]
    await click_button(pilot, "Continue to PIN")  # type: ignore[arg-type]
    if isinstance(pilot.app.screen, PhraseScreen):  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")  # type: ignore[attr-defined]  # no phrase: skipped
        await settle(pilot)  # type: ignore[arg-type]


async def test_q_quits_from_the_wallet(demo: Demo) -> None:
    """q on the wallet ends the app."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_while_the_keypad_is_open(demo: Demo) -> None:
    """On the keypad, q is swallowed (the keypad keeps focus, nothing is entered, and the
    footer offers no Quit), and the palette offers no Screenshot, as it does elsewhere."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:

        def screenshot_offered() -> bool:
            return any("screenshot" in c.title.lower()
                       for c in app.get_system_commands(app.screen))

        assert screenshot_offered()
        await _to_set_pin(pilot)
        assert isinstance(app.focused, SecureKeypad)
        assert not screenshot_offered()
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, SetPinScreen)
        assert keypad(app).count == 0
        quit_binding = app.screen.active_bindings.get("q")
        assert quit_binding is None or not quit_binding.enabled


def _fits(app: DemoApp) -> None:
    """Every control on the screen is fully visible at 80x24; nothing needs scrolling."""
    screen = app.screen.region
    for widget in app.screen.query(Widget):
        if not isinstance(widget, Button | Input | SecureKeypad) or not widget.display:
            continue
        if widget.region.area == 0 and isinstance(widget, Button):
            continue  # a button inside the keypad area that is hidden by its parent
        assert screen.contains_region(widget.region), f"{widget!r} is off screen"
        assert widget.region.size == widget.outer_size, f"{widget!r} is clipped"
    for scroller in app.screen.query(VerticalScroll):
        assert scroller.max_scroll_y == 0, f"{scroller!r} needs scrolling"


async def test_every_screen_fits_80_by_24(demo: Demo) -> None:
    """Wallet, form, keypad, pay, result and lab, each at 80x24; on the way, Escape
    steps back from the PIN to the phrase to the form to the wallet."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        _fits(app)
        await _to_set_pin(pilot)
        _fits(app)
        for _ in range(3):  # Escape: PIN -> phrase -> card form -> wallet
            await pilot.press("escape")
            await pilot.pause()
        assert isinstance(app.screen, WalletScreen) and len(app.vault.cards()) == 1
        await click_button(pilot, "Pay")
        _fits(app)
        await click_button(pilot, "Pay with PIN")
        _fits(app)
        await tap_pin(pilot, "739184")
        _fits(app)
        await click_button(pilot, "Done")
        await click_button(pilot, "Lab")
        _fits(app)


async def test_escape_leaves_the_lab_and_the_pay_form(demo: Demo) -> None:
    """Escape is "back" everywhere but the wallet, where it does nothing."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        start = app.screen
        for label in ("Lab", "Pay"):
            await click_button(pilot, label)
            assert app.screen is not start
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is start
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is start and app.is_running
