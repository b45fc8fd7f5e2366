"""The whole demo through the UI: enroll a card, pay, and the PIN's failure modes."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Input

from splitvault.tui import DemoApp
from splitvault.tui._add_card import AddCardScreen
from splitvault.tui._locked import LockedScreen
from splitvault.tui._pay import PayPinScreen, PayScreen
from splitvault.tui._result import ResultScreen
from splitvault.tui._set_pin import SetPinScreen
from splitvault.tui._wallet import WalletScreen

from .helpers import (
    APPROVAL_CODE,
    PAN_DIGITS,
    PIN,
    SIZE,
    WRONG_PIN,
    add_card,
    click_button,
    enroll_directly,
    fill_card,
    keypad,
    pay,
    screen_text,
    settle,
    tap_pin,
    type_into,
)

Demo = Callable[..., DemoApp]


async def test_enroll_then_pay_by_mouse(demo: Demo) -> None:
    """Type the card, set the PIN twice by clicking keys, choose a phrase, pay: approved."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await add_card(pilot)
        assert isinstance(app.screen, WalletScreen)
        for screen in app.screen_stack:  # the number left every field with the form
            assert all(PAN_DIGITS[:8] not in field.value for field in screen.query(Input))
        text = screen_text(app)
        assert "Visa •••• 1111" in text and "12/30" in text
        assert PAN_DIGITS not in text and "4111 1111" not in text
        [card] = app.vault.cards()
        assert app.vault.security_phrase(card.card_id) == "blue otter"

        await pay(pilot, amount="12000")
        assert isinstance(app.screen, ResultScreen)
        assert app.screen.view.kind == "approved"
        text = screen_text(app)
        assert "Approved" in text and APPROVAL_CODE in text
        assert "12,000 KRW" in text and "•••• 1111" in text

        await click_button(pilot, "Done")
        assert isinstance(app.screen, WalletScreen)


async def test_set_pin_refuses_weak_then_mismatched_pins(demo: Demo) -> None:
    """A weak PIN is refused after its first entry; two different PINs start over; then
    the same good PIN twice enrolls the card."""
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Add card")
        await fill_card(pilot)
        await click_button(pilot, "Continue")
        await click_button(pilot, "Continue to PIN")
        await pilot.press("ctrl+s")  # no phrase: asked once, then skipped
        await settle(pilot)
        await tap_pin(pilot, "123456")
        assert keypad(app).status == "Too easy to guess: try another"
        assert "too easy to guess" in screen_text(app)
        assert "Choose a 6-digit PIN" in screen_text(app)

        await tap_pin(pilot, PIN)
        assert "Enter the same PIN again" in screen_text(app)
        await tap_pin(pilot, WRONG_PIN)
        assert isinstance(app.screen, SetPinScreen)
        assert keypad(app).status == "PINs did not match"
        assert "The two PINs were different" in screen_text(app)
        assert "Choose a 6-digit PIN" in screen_text(app)
        assert app.vault.cards() == []

        await tap_pin(pilot, PIN)
        await tap_pin(pilot, PIN)
        assert isinstance(app.screen, WalletScreen) and len(app.vault.cards()) == 1


async def test_wrong_pin_until_locked(demo: Demo) -> None:
    """Four wrong PINs count down 4, 3, 2, 1 on the result and on the keypad; the fifth
    locks the card, and then no PIN is asked for at all."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await pay(pilot, pin=WRONG_PIN, fast=True)
        for left in (4, 3, 2, 1):
            assert isinstance(app.screen, ResultScreen)
            assert app.screen.view.kind == "wrong_pin"
            assert f"{left} more wrong PIN" in screen_text(app)
            await click_button(pilot, "Try the PIN again")
            assert isinstance(app.screen, PayPinScreen)
            plural = "s" if left > 1 else ""
            assert keypad(app).status == f"Wrong PIN: {left} attempt{plural} left"
            await tap_pin(pilot, WRONG_PIN)
        assert isinstance(app.screen, ResultScreen)
        assert app.screen.view.kind == "locked"
        assert "stays locked" in screen_text(app)
        await click_button(pilot, "Done")
        assert "locked" in screen_text(app)
        # Paying again goes straight to "locked": not even the payment form is shown,
        # and the message says what to do next.
        await click_button(pilot, "Pay")
        assert isinstance(app.screen, LockedScreen)
        assert "re-enroll it on this device" in screen_text(app)


async def test_right_pin_after_a_wrong_one_pays_once(demo: Demo) -> None:
    """The retry reuses the payment's idempotency key; the acquirer is called once."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await pay(pilot, pin=WRONG_PIN, fast=True)
        await click_button(pilot, "Try the PIN again")
        await tap_pin(pilot, PIN)
        assert isinstance(app.screen, ResultScreen)
        assert app.screen.view.kind == "approved"
        assert app.vault.server is not None
        assert app.vault.server.acquirer.calls == 1  # type: ignore[attr-defined]


async def test_declined_over_the_limit(demo: Demo) -> None:
    """The acquirer's decline is shown with its reason."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await pay(pilot, amount="2000000", fast=True)
        assert isinstance(app.screen, ResultScreen)
        assert app.screen.view.kind == "declined"
        assert "amount over limit" in screen_text(app)
        assert "2,000,000 KRW" in screen_text(app)


async def test_keyboard_alone(demo: Demo) -> None:
    """The whole flow without the mouse: keys, Tab, Enter, and the keypad's blind keys."""
    from splitvault.keypad import POSITION_KEYS

    app = demo()
    async with app.run_test(size=SIZE) as pilot:

        async def blind(digits: str) -> None:
            for digit in map(int, digits):
                await pilot.press(POSITION_KEYS[keypad(app).digit_layout.index(digit)])
            await pilot.press("enter")  # the cursor sits on OK once the entry is full
            await settle(pilot)

        await pilot.press("a")
        assert isinstance(app.screen, AddCardScreen)
        await pilot.press(*"4111111111111111", "enter", *"12/30", "enter", *"KIM", "enter")
        await pilot.press(*"otter", "enter")
        await blind(PIN)
        await blind(PIN)
        assert isinstance(app.screen, WalletScreen) and len(app.vault.cards()) == 1
        await pilot.press("p")
        assert isinstance(app.screen, PayScreen)
        await pilot.press("enter")
        await blind(PIN)
        assert isinstance(app.screen, ResultScreen)
        assert app.screen.view.kind == "approved"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, WalletScreen)


async def test_amount_is_shown_with_separators(demo: Demo) -> None:
    """The pay form shows the amount as people read it, right under the field."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Pay")
        await type_into(pilot, "#amount", "1234567")
        await pilot.pause()
        assert "1,234,567 KRW" in screen_text(app)
