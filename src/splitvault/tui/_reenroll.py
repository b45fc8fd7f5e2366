"""Re-enroll a locked card: the card's details again, then a new PIN twice.

The add-card form and the set-PIN keypad, each with one thing changed. The form
accepts only the card that is locked: the device keeps its brand and last four
digits (``CardSummary``), so a different card, or a mistyped number that still passes
the Luhn check, is refused before any PIN is asked. The new PIN then goes to
``Device.reenroll``, which keeps the card id, the device key and the security phrase,
and replaces the server's share and the sealed card: the guess count and the lock are
gone.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Input, Static

from .._authorization import CardSummary
from .._card import Card
from .._pin import Pin
from ._add_card import AddCardScreen
from ._set_pin import SetPinScreen
from ._wallet import card_label

__all__ = ["ReenrollCardScreen", "ReenrollPinScreen", "not_this_card"]

REENROLLING = "Splitting the card again: Argon2id on this device, OPRF on the server…"


def not_this_card(card: Card, locked: CardSummary) -> str | None:
    """Why ``card`` is not the locked card, or ``None`` when its brand and last four
    digits are the ones this device keeps. The whole number cannot be checked: the
    device never stores it in the clear."""
    if card.brand != locked.brand or card.last4 != locked.last4:
        return f"not the locked card: re-enter {card_label(locked)}"
    return None


class ReenrollCardScreen(AddCardScreen):
    """The card form for the locked card. Dismisses with its id once re-enrolled."""

    SCREEN_TITLE = "Re-enroll a card"

    def __init__(self, locked: CardSummary) -> None:
        super().__init__()
        self._locked = locked

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#form").mount(
            Static(f"Type {card_label(self._locked)} in again as printed on it; "
                   "then choose a new PIN.", id="why", markup=False),
            before=0)

    def action_next(self) -> None:
        card = self._parse()
        if card is None:
            return
        problem = not_this_card(card, self._locked)
        if problem is not None:
            self._show("pan", f"✗ {problem}", "error")
            self.query_one("#pan", Input).focus()
            return
        self.app.push_screen(ReenrollPinScreen(card, self._locked.card_id), self._enrolled)


class ReenrollPinScreen(SetPinScreen):
    """The new PIN, twice, then ``Device.reenroll`` in a thread worker. Dismisses with
    the card id."""

    SCREEN_TITLE = "Re-enroll · new PIN"
    WORKING = REENROLLING
    FAILED = "Not re-enrolled"

    def __init__(self, card: Card, card_id: str) -> None:
        super().__init__(card, None)
        self._card_id = card_id

    def phrase(self) -> str | None:
        return self.vault.security_phrase(self._card_id)  # the card keeps its phrase

    def job(self, pin: Pin) -> Callable[[], str]:
        card, card_id, vault = self._card, self._card_id, self.vault

        def job() -> str:
            try:
                return vault.reenroll(card_id, card, pin)
            finally:
                pin.wipe()

        return job
