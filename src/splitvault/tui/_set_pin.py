"""Set the PIN: twice on the keypad, then enroll the card in a thread worker.

The first PIN waits in its ``Pin`` (a wipeable bytearray) while the second is typed;
they are compared with ``hmac.compare_digest`` on the buffers, so neither ever becomes
a ``str``. Every ``Pin`` is wiped on every path: mismatch, weak, cancel, done.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from textual.worker import Worker

from .._card import Card
from .._errors import InvalidPin
from .._pin import Pin
from ..keypad import SecureKeypad
from ._keypad_screen import KeypadScreen
from ._work import finished, start

__all__ = ["SetPinScreen"]

CHOOSE = "Choose a {n}-digit PIN for this card"
CONFIRM = "Enter the same PIN again"
ENROLLING = "Splitting the card: Argon2id on this device, OPRF on the server…"


class SetPinScreen(KeypadScreen[str | None]):
    """Step 3 of adding a card. Dismisses with the new card id."""

    SCREEN_TITLE = "Add a card · PIN"

    WORKING: str = ENROLLING
    """What the screen says while the worker runs."""
    FAILED: str = "Not enrolled"
    """The start of the line that shows a vault error."""

    def __init__(self, card: Card, phrase: str | None) -> None:
        super().__init__()
        self._card = card
        self._phrase = phrase
        self._first: Pin | None = None

    def phrase(self) -> str | None:
        return self._phrase

    def on_mount(self) -> None:
        super().on_mount()
        self._ask_first()

    def on_unmount(self) -> None:
        self._forget_first()

    def _ask_first(self, hint: str = "", kind: str = "hint") -> None:
        self._forget_first()
        self.keypad.border_title = "New PIN"
        self.prompt(CHOOSE.format(n=self.keypad.length), hint, kind)

    def _forget_first(self) -> None:
        if self._first is not None:
            self._first.wipe()
            self._first = None

    def on_secure_keypad_submitted(self, event: SecureKeypad.Submitted) -> None:
        event.stop()
        if self._first is None:
            self._take_first(event.pin)
        else:
            self._take_second(event.pin)

    def _take_first(self, pin: Pin) -> None:
        try:
            self.vault.check_new_pin(pin)
        except InvalidPin as exc:
            pin.wipe()
            # The keypad's status line is narrow: the short form there, the reason below.
            self.keypad.status = "Too easy to guess: try another"
            self.prompt(CHOOSE.format(n=self.keypad.length), str(exc), "error")
            return
        self._first = pin
        self.keypad.border_title = "Confirm PIN"
        self.prompt(CONFIRM)

    def _take_second(self, pin: Pin) -> None:
        first, self._first = self._first, None
        if first is None:  # cannot happen: only called with a first PIN held
            pin.wipe()
            return
        with pin:
            same = hmac.compare_digest(first._digits(), pin._digits())
        if not same:
            first.wipe()
            self._ask_first("The two PINs were different: choose your PIN again", "error")
            self.keypad.status = "PINs did not match"
            return
        self._enroll(first)

    def _enroll(self, pin: Pin) -> None:
        self.begin_work(self.WORKING)
        start(self, "enroll", self.job(pin))

    def job(self, pin: Pin) -> Callable[[], str]:
        """The vault call for the chosen PIN, run in a thread; it wipes ``pin``."""
        card, phrase, vault = self._card, self._phrase, self.vault

        def job() -> str:
            try:
                return vault.enroll(card, pin, phrase)
            finally:
                pin.wipe()

        return job

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = finished(event)
        if done is None:
            return
        _, outcome = done
        self.end_work()
        if outcome.error is None and isinstance(outcome.value, str):
            self.dismiss(outcome.value)
            return
        self._ask_first(f"{self.FAILED}: {outcome.error}", "error")

    def action_back(self) -> None:
        if self.demo.busy:
            return
        if self._first is not None:
            self._ask_first()  # cancel on "confirm" goes back to choosing the PIN
            return
        self.dismiss(None)
