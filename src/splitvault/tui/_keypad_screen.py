"""``KeypadScreen``: a prompt, the SecureKeypad centred under it, and the busy bar.

Used to choose a PIN and to pay. The keypad holds focus, so it swallows letters (they
are its blind-entry keys) and ``q`` does not quit here; Escape on an empty keypad
cancels and goes back.
"""

from __future__ import annotations

from typing import TypeVar

from textual.app import ComposeResult
from textual.containers import Center
from textual.content import Content
from textual.widgets import Static

from ..keypad import SecureKeypad
from ._base import DemoScreen
from ._widgets import ErrorLine, Working

__all__ = ["KeypadScreen"]

ResultT = TypeVar("ResultT")


class KeypadScreen(DemoScreen[ResultT]):
    """Base of the screens that ask for a PIN."""

    DEFAULT_CSS = """
    KeypadScreen {
        #prompt { width: 100%; height: 1; text-align: center; text-style: bold;
                  color: $text-primary; }
        #hint { text-align: center; }
        SecureKeypad { margin: 0; }
        Working { margin-top: 0; }
    }
    """

    def compose(self) -> ComposeResult:
        yield from self.frame()
        yield Static(id="prompt")
        yield ErrorLine(id="hint")
        low, high = self.vault.pin_length
        # Screen alignment moves all children as one block, and the lines above are full
        # width: the keypad needs its own centring container.
        with Center():
            yield SecureKeypad(length=low, max_length=high, security_phrase=self.phrase(),
                               rng=self.rng)
        yield Working()

    def phrase(self) -> str | None:
        """The phrase shown on the keypad; subclasses know which card it belongs to."""
        return None

    @property
    def keypad(self) -> SecureKeypad:
        return self.query_one(SecureKeypad)

    def on_mount(self) -> None:
        self.keypad.focus()

    def prompt(self, text: str, hint: str = "", kind: str = "hint") -> None:
        """The line above the keypad, and a hint (or error) under it."""
        self.query_one("#prompt", Static).update(Content(text))
        self.query_one("#hint", ErrorLine).show(
            hint or "Click the digits or type the letters under them, then OK; digit keys are off",
            kind)

    def begin_work(self, text: str) -> None:
        """Freeze the keypad (not the UI) while a worker runs."""
        self.keypad.disabled = True
        self.query_one(Working).start(text)

    def end_work(self) -> None:
        self.query_one(Working).stop()
        self.keypad.disabled = False
        self.keypad.focus()

    def on_secure_keypad_cancelled(self, event: SecureKeypad.Cancelled) -> None:
        event.stop()
        self.action_back()
