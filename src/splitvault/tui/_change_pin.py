"""Change PIN: the current PIN, then the new one twice, all on the keypad.

Proving the current PIN spends a guess like a payment does (a right PIN resets the
count), so a wrong one says how many are left, and a locked card stops here. The
new PIN is checked for weakness before it is asked for again, and the two entries
are compared as buffers (``hmac.compare_digest``), as when the card was added. Every
``Pin`` is wiped on every path.
"""

from __future__ import annotations

import hmac

from textual.worker import Worker

from .._authorization import CardSummary
from .._errors import CardLocked, InvalidPin, WrongPin
from .._pin import Pin
from ..keypad import SecureKeypad
from ._keypad_screen import KeypadScreen
from ._wallet import card_label
from ._work import finished, start

__all__ = ["ChangePinScreen"]

OLD = "Current PIN of {card}"
NEW = "Choose a new {n}-digit PIN"
AGAIN = "Enter the new PIN again"
CHANGING = "Proving the current PIN, then setting the new one: OPRF and Argon2id…"


class ChangePinScreen(KeypadScreen[str | None]):
    """Dismisses with ``"changed"``, ``"locked"`` or ``None`` (cancelled)."""

    SCREEN_TITLE = "Change PIN"

    def __init__(self, card: CardSummary) -> None:
        super().__init__()
        self._card = card
        self._old: Pin | None = None
        self._new: Pin | None = None

    def phrase(self) -> str | None:
        return self.vault.security_phrase(self._card.card_id)

    def on_mount(self) -> None:
        super().on_mount()
        self._ask_old()

    def on_unmount(self) -> None:
        self._forget()

    def _forget(self) -> None:
        for pin in (self._old, self._new):
            if pin is not None:
                pin.wipe()
        self._old = self._new = None

    def _ask_old(self, hint: str = "", kind: str = "hint") -> None:
        self._forget()
        self.keypad.border_title = "Current PIN"
        self.prompt(OLD.format(card=card_label(self._card)), hint, kind)

    def _ask_new(self, hint: str = "", kind: str = "hint") -> None:
        if self._new is not None:
            self._new.wipe()
            self._new = None
        self.keypad.border_title = "New PIN"
        self.prompt(NEW.format(n=self.keypad.length), hint, kind)

    def on_secure_keypad_submitted(self, event: SecureKeypad.Submitted) -> None:
        event.stop()
        pin: Pin = event.pin
        if self._old is None:
            self._old = pin
            self._ask_new()
        elif self._new is None:
            self._take_new(pin)
        else:
            self._take_again(pin)

    def _take_new(self, pin: Pin) -> None:
        try:
            self.vault.check_new_pin(pin)
        except InvalidPin as exc:
            pin.wipe()
            self.keypad.status = "Too easy to guess: try another"
            self.prompt(NEW.format(n=self.keypad.length), str(exc), "error")
            return
        self._new = pin
        self.keypad.border_title = "Confirm new PIN"
        self.prompt(AGAIN)

    def _take_again(self, pin: Pin) -> None:
        new = self._new
        with pin:
            same = new is not None and hmac.compare_digest(new._digits(), pin._digits())
        if not same:
            self._ask_new("The two new PINs were different: choose the new PIN again",
                          "error")
            self.keypad.status = "PINs did not match"
            return
        self._change()

    def _change(self) -> None:
        old, new = self._old, self._new
        self._old = self._new = None  # the job owns them now, and wipes them
        if old is None or new is None:
            return
        vault, card_id = self.vault, self._card.card_id

        def job() -> None:
            try:
                vault.change_pin(card_id, old, new)
            finally:
                old.wipe()
                new.wipe()

        self.begin_work(CHANGING)
        start(self, "change_pin", job)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = finished(event)
        if done is None:
            return
        error = done[1].error
        self.end_work()
        if error is None:
            self.dismiss("changed")
        elif isinstance(error, CardLocked):
            self.dismiss("locked")
        elif isinstance(error, WrongPin):
            left = error.attempts_left
            self._ask_old(f"Wrong current PIN: the server counted it; {left} "
                          f"attempt{'' if left == 1 else 's'} left", "error")
            self.keypad.status = f"Wrong PIN: {left} left"
        else:
            self._ask_old(f"PIN not changed: {error}", "error")

    def action_back(self) -> None:
        if self.demo.busy:
            return
        if self._new is not None:
            self._ask_new()  # back on "confirm" goes to choosing the new PIN again
        elif self._old is not None:
            self._ask_old()
        else:
            self.dismiss(None)
