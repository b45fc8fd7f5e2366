"""The way back for a locked card (issue 9 item 1, issue 10): re-enter the card, choose
a new PIN twice on the keypad, and pay with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from splitvault import Card, CardSummary
from splitvault.tui import DemoApp
from splitvault.tui._locked import LockedScreen
from splitvault.tui._reenroll import ReenrollCardScreen, ReenrollPinScreen, not_this_card
from splitvault.tui._result import ResultScreen
from splitvault.tui._wallet import WalletScreen

from .helpers import (
    PAN,
    PIN,
    SIZE,
    TODAY,
    WRONG_PIN,
    click_button,
    enroll_directly,
    fill_card,
    pay,
    screen_text,
    tap_pin,
)

Demo = Callable[..., DemoApp]
NEW_PIN = "280416"
OTHER_VISA = "4000 0000 0000 0002"


async def lock_through_the_wallet(pilot: Pilot[Any], app: DemoApp) -> None:
    """Five wrong PINs through the payment screens, back to the wallet."""
    await pay(pilot, pin=WRONG_PIN, fast=True)
    for _ in range(4):
        await click_button(pilot, "Try the PIN again")
        await tap_pin(pilot, WRONG_PIN)
    assert isinstance(app.screen, ResultScreen) and app.screen.view.kind == "locked"
    await click_button(pilot, "Done")


async def test_a_locked_card_is_reenrolled_through_the_screens_and_pays(
        demo: Demo) -> None:
    """Locked by wrong PINs; the locked message offers re-enrolling; another card's
    number is refused under its field; the right card and a new PIN twice unlock it,
    and the new PIN pays."""
    app = demo()
    card_id = enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await lock_through_the_wallet(pilot, app)
        await click_button(pilot, "Pay")
        assert isinstance(app.screen, LockedScreen)
        await click_button(pilot, "Re-enroll (r)")
        assert isinstance(app.screen, ReenrollCardScreen)
        assert "Visa •••• 1111 in again" in screen_text(app)

        await fill_card(pilot, pan=OTHER_VISA)
        await click_button(pilot, "Continue")
        assert isinstance(app.screen, ReenrollCardScreen)  # no PIN for another card
        assert "not the locked card: re-enter Visa •••• 1111" in screen_text(app)

        await fill_card(pilot, pan=PAN)
        await click_button(pilot, "Continue")
        assert isinstance(app.screen, ReenrollPinScreen)
        await tap_pin(pilot, NEW_PIN)
        await tap_pin(pilot, NEW_PIN)
        assert isinstance(app.screen, WalletScreen)
        state = app.vault.card_state(card_id)
        assert state is not None and not state.locked and state.guesses_used == 0
        status = app.screen.query_one(DataTable).get_cell(card_id, "status")
        assert str(status) == "active"

        await pay(pilot, pin=NEW_PIN, amount="12000", fast=True)
        assert isinstance(app.screen, ResultScreen)
        assert app.screen.view.kind == "approved"
        await click_button(pilot, "Done")
        await pay(pilot, pin=PIN, fast=True)  # the old PIN is gone with the old share
        assert isinstance(app.screen, ResultScreen)
        assert app.screen.view.kind == "wrong_pin"


async def test_a_failed_reenrollment_says_so_and_asks_again(demo: Demo) -> None:
    """The server gone between the form and the PIN: a plain error on the keypad
    screen, and the new PIN is asked for again."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await lock_through_the_wallet(pilot, app)
        await click_button(pilot, "Pay")
        await pilot.press("r")
        await fill_card(pilot)
        await click_button(pilot, "Continue")
        assert app.vault.server is not None
        app.vault.server.close()  # the server goes away between the form and the PIN
        await tap_pin(pilot, NEW_PIN)
        await tap_pin(pilot, NEW_PIN)
        assert isinstance(app.screen, ReenrollPinScreen)
        assert "Not re-enrolled:" in screen_text(app)


def test_only_the_locked_cards_brand_and_last_four_are_accepted() -> None:
    locked = Card.parse(PAN, "12/30", "KIM", today=TODAY)
    summary = CardSummary("c1", locked.brand, locked.last4, "12/30")
    assert not_this_card(locked, summary) is None
    other = Card.parse(OTHER_VISA, "12/30", "KIM", today=TODAY)
    assert not_this_card(other, summary) == "not the locked card: re-enter Visa •••• 1111"
