"""A tiny host app for the SecureKeypad tests, and helpers to drive it."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.pilot import Pilot
from textual.widgets import Button

from splitvault import Pin
from splitvault.keypad import POSITION_KEYS, KeypadSafeApp, SecureKeypad

SEED = 42


class KeypadHost(KeypadSafeApp[None]):
    """Mounts one SecureKeypad and records every message it posts."""

    CSS = "Screen { align: center middle; }"
    # A host binding on a digit key: the keypad must not let digits reach it.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("5", "host_saw_digit", "Host digit binding")]

    def __init__(self, **keypad_options: Any) -> None:
        super().__init__()
        keypad_options.setdefault("rng", random.Random(SEED))
        self.keypad_options = keypad_options
        self.submitted: list[SecureKeypad.Submitted] = []
        self.cancelled: list[SecureKeypad.Cancelled] = []
        self.changes: list[int] = []
        self.host_digit_actions = 0

    def compose(self) -> ComposeResult:
        yield SecureKeypad(**self.keypad_options)

    @property
    def keypad(self) -> SecureKeypad:
        return self.query_one(SecureKeypad)

    def on_secure_keypad_submitted(self, event: SecureKeypad.Submitted) -> None:
        self.submitted.append(event)

    def on_secure_keypad_cancelled(self, event: SecureKeypad.Cancelled) -> None:
        self.cancelled.append(event)

    def on_secure_keypad_changed(self, event: SecureKeypad.Changed) -> None:
        self.changes.append(event.count)

    def action_host_saw_digit(self) -> None:
        self.host_digit_actions += 1


def button_labelled(app: KeypadHost, label: str) -> Button:
    """The one button in the app whose label reads ``label``."""
    matches = [button for button in app.query(Button) if str(button.label) == label]
    assert len(matches) == 1, f"{len(matches)} buttons labelled {label!r}"
    return matches[0]


def position_key_for(keypad: SecureKeypad, digit: int) -> str:
    """The keyboard key that enters ``digit`` with the layout on screen now."""
    return POSITION_KEYS[keypad.digit_layout.index(digit)]


def pin_digits(pin: Pin) -> str:
    """The digits of a Pin, for comparing in a test."""
    return pin._digits().decode("ascii")


async def enter_blind(pilot: Pilot[None], keypad: SecureKeypad, digits: str) -> None:
    """Enter ``digits`` with the position keys, reading each new layout off the keypad."""
    for digit in map(int, digits):
        await pilot.press(position_key_for(keypad, digit))
