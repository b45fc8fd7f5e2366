"""A locked card: why it cannot pay, and what its owner can do next.

The server locked it after five wrong PINs and answers no more guesses, so the demo
does not even open the keypad. The way back is to enroll the card again on this
device with the card itself and a new PIN (``Device.reenroll``). ``LockedScreen``
dismisses with ``"reenroll"`` when the owner picks that, and the wallet takes it
from there (``WalletScreen.reenroll``: the screens in ``_reenroll.py``).
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from .._authorization import CardSummary
from ._wallet import card_label

__all__ = ["CLONED_WHY", "LOCKED_NEXT", "LockedScreen"]

LOCKED_NEXT = ("To use it again, re-enroll it on this device: you need the card "
               "itself (number, expiry, name) and you choose a new PIN. Nobody else "
               "can unlock it: not this app, not a thief with a copy of this phone.")
CLONED_WHY = ("A copy of this device tried to pay with shares the server had already "
              "re-split. The server cannot tell the real device from a copy, so it "
              "refuses this card to both, this device too, until its owner proves it "
              "is theirs with the card itself.")


class LockedScreen(ModalScreen[str | None]):
    """The card is locked: the message, and the way on if the app offers it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "OK"),
        Binding("r", "reenroll", "Re-enroll"),
    ]

    DEFAULT_CSS = """
    LockedScreen {
        align: center middle;
        #dialog { width: 60; height: auto; padding: 1 2; border: thick $error;
                  background: $surface; }
        #title { text-style: bold; color: $text-error; margin-bottom: 1; }
        #buttons { height: 3; align-horizontal: right; margin-top: 1; }
        #buttons Button { margin-left: 1; }
    }
    """

    def __init__(self, card: CardSummary, *, can_reenroll: bool, cloned: bool = False) -> None:
        """``cloned``: refused because a copy of the device was caught (not five wrong
        PINs); the way back is the same."""
        super().__init__()
        self._card = card
        self._can_reenroll = can_reenroll
        self._cloned = cloned

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            if self._cloned:
                yield Static(f"{card_label(self._card)} is refused: a copy was caught",
                             id="title", markup=False)
                yield Static(f"{CLONED_WHY}\n\n{LOCKED_NEXT}", id="why", markup=False)
            else:
                yield Static(f"{card_label(self._card)} is locked", id="title", markup=False)
                yield Static("Five wrong PINs: the server has locked it and answers no "
                             f"more guesses, so it cannot pay.\n\n{LOCKED_NEXT}", id="why",
                             markup=False)
            with Horizontal(id="buttons"):
                if self._can_reenroll:
                    yield Button("Re-enroll (r)", id="reenroll", variant="warning")
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#ok").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self._can_reenroll if action == "reenroll" else True

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reenroll(self) -> None:
        if self._can_reenroll:
            self.dismiss("reenroll")

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        if event.button.id == "reenroll":
            self.action_reenroll()
        else:
            self.action_close()
