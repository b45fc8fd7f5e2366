"""``SecureKeypad``: PIN entry on a randomly laid out grid of real buttons."""

from __future__ import annotations

import random
import secrets
from typing import ClassVar, Final

from rich.repr import Result
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive, var
from textual.timer import Timer
from textual.widget import Widget

from .._pin import Pin
from ._display import PinDisplay, QuietLabel
from ._entry import PinEntry
from ._keymap import (
    CELLS,
    CONFIRM_CELL,
    FUNCTION_KEYS,
    POSITION_HINTS,
    KeyRole,
    digit_bindings,
    position_bindings,
)
from ._keys import KeypadKey
from ._layout import COLUMNS, POSITIONS, Layout, new_layout
from ._siren import Siren
from ._styles import KEYPAD_CSS

__all__ = ["DIGITS_OFF", "INACTIVITY_TIMEOUT", "SecureKeypad"]

INACTIVITY_TIMEOUT: Final = 60.0
"""Seconds without a key press before a half-entered PIN is wiped: time enough to read a
card or think, short enough that an abandoned keypad does not keep digits for long."""
DIGITS_OFF: Final = "Digit keys are off: use the letters"
"""The status after a digit key, so a user typing the PIN out of habit learns why
nothing happened (the letters are in each key's bottom border). 35 cells: the line."""


class SecureKeypad(Widget, can_focus=True):
    """A PIN keypad whose digits move: a new random layout every time it opens and, by
    default, after every key press.

    **Mouse**: click the digits, then *OK*. **Keyboard, blind**: each of the 12 digit
    positions has a fixed key, shown in the key's bottom border (``U I O P / J K L ; /
    M , . /``), so a keylogger records positions, never digits. **Keyboard, cursor**: the
    arrow keys move a cursor over all 16 keys and Enter presses the key under it. The
    cursor starts on *OK* and goes back there when the entry is full, so typing the
    position keys and then Enter confirms. Other keys: Backspace deletes a digit, Escape
    clears the entry (or, when it is empty, cancels), Delete clears, Ctrl+R reshuffles,
    Ctrl+S confirms wherever the cursor is.

    Typing digits is off unless ``allow_typed_digits=True``; the digit keys then enter
    nothing, because a keylogger (or a terminal recording) would capture the PIN
    itself, and the status line says to use the letters. Pasting never enters anything,
    nor does a blank key. *OK* before enough digits says how many more are needed.

    Nothing shows which key was pressed: keys do not flash, light up under the mouse or
    carry tooltips; no text in the keypad can be selected, copied or cut. The digits are
    kept in one ``bytearray``, never in a ``str``, and are wiped on Backspace, clear,
    timeout, hide and unmount. On *OK* the keypad posts :class:`SecureKeypad.Submitted`
    with a :class:`~splitvault.Pin`; the handler owns it and should wipe it
    (``with event.pin: ...``).

    The host app should derive from :class:`~splitvault.keypad.KeypadSafeApp` (or use its
    helpers), which drops Textual's "Screenshot" command while a keypad is open.
    """

    ALLOW_SELECT = False

    DEFAULT_CSS = KEYPAD_CSS

    BINDINGS: ClassVar[list[BindingType]] = [
        *position_bindings(),
        *digit_bindings(),
        Binding("up", "move_cursor(-1, 0)", "Cursor up", show=False),
        Binding("down", "move_cursor(1, 0)", "Cursor down", show=False),
        Binding("left", "move_cursor(0, -1)", "Cursor left", show=False),
        Binding("right", "move_cursor(0, 1)", "Cursor right", show=False),
        Binding("enter", "press_cursor", "Press the key under the cursor", show=False),
        Binding("backspace", "backspace", "Delete digit"),
        Binding("escape", "clear_or_cancel", "Clear / cancel"),
        Binding("delete", "clear", "Clear", show=False),
        Binding("ctrl+r", "shuffle", "Shuffle"),
        Binding("ctrl+s", "submit", "Confirm"),
        Binding("ctrl+c,super+c", "copy_text", "Copy (disabled in the keypad)", show=False),
        Binding("ctrl+x,super+x", "cut_text", "Cut (disabled in the keypad)", show=False),
    ]
    """Keys of the keypad (see the class docstring for the design)."""

    cursor: reactive[int] = reactive(CONFIRM_CELL, init=False)
    """Key under the keyboard cursor: 0-11 the digit positions row by row, then
    Backspace, Clear, Shuffle and OK (12-15)."""
    security_phrase: reactive[str | None] = reactive[str | None](None, init=False)
    """The user's personal phrase, shown so they can tell this keypad from a fake."""
    status: reactive[str] = reactive("", init=False)
    """One line under the keys, e.g. "Wrong PIN: 4 attempts left". The keypad sets it on
    timeout and clears it on the next key press. Shown as plain text, not markup."""
    allow_typed_digits: var[bool] = var(False)
    """Accept the keyboard's digit keys as digits (off: they would hand a keylogger the PIN)."""
    reshuffle_each_press: var[bool] = var(True)
    """Draw a new layout after every key press, not only when the keypad opens."""

    class _Message(Message):
        """Base of the keypad's messages: each carries the keypad that posted it."""

        def __init__(self, keypad: SecureKeypad) -> None:
            super().__init__()
            self.keypad = keypad
            """The keypad that posted the message."""

        @property
        def control(self) -> SecureKeypad:
            """Alias for :attr:`keypad`."""
            return self.keypad

    class Submitted(_Message):
        """The user confirmed a PIN of an accepted length."""

        def __init__(self, keypad: SecureKeypad, pin: Pin) -> None:
            super().__init__(keypad)
            self.pin = pin
            """The PIN. The handler owns it: wipe it when done (``with event.pin: ...``)."""

    class Cancelled(_Message):
        """The user cancelled: Escape (or the *Cancel* key) with nothing entered."""

    class Changed(_Message):
        """The number of digits entered changed. Carries the count only, never a digit."""

        def __init__(self, keypad: SecureKeypad, count: int) -> None:
            super().__init__(keypad)
            self.count = count
            """How many digits are entered now."""

    def __init__(
        self,
        *,
        length: int = 6,
        max_length: int | None = None,
        security_phrase: str | None = None,
        timeout: float = INACTIVITY_TIMEOUT,
        reshuffle_each_press: bool = True,
        allow_typed_digits: bool = False,
        rng: random.Random | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        """A secure PIN keypad.

        Args:
            length: Digits needed before *OK* confirms (4 to 12).
            max_length: Most digits accepted (``length`` to 12); defaults to ``length``.
            security_phrase: The user's personal phrase, shown on the keypad.
            timeout: Seconds without a key press before a partial entry is wiped.
            reshuffle_each_press: New layout after every key press.
            allow_typed_digits: Let the keyboard's digit keys enter digits. Unsafe.
            rng: Randomness for layouts; ``secrets.SystemRandom()`` unless a test
                passes a seeded ``random.Random``.
            name: The name of the widget.
            id: The ID of the widget in the DOM.
            classes: The CSS classes of the widget.
            disabled: Whether the keypad is disabled.

        Raises:
            ValueError: ``length``, ``max_length`` or ``timeout`` is out of range.
        """
        entry = PinEntry(length, length if max_length is None else max_length)
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.length: Final = entry.length
        """Digits needed before the PIN can be confirmed."""
        self.max_length: Final = entry.max_length
        """Most digits the entry accepts."""
        self.timeout: Final = timeout
        """Seconds of inactivity after which a partial entry is wiped."""
        self._entry = entry
        self._rng = secrets.SystemRandom() if rng is None else rng
        self._digit_layout: Layout = (None,) * POSITIONS
        self._keys: list[KeypadKey] = []
        self._idle_timer: Timer | None = None
        self._display: PinDisplay | None = None
        self._phrase = QuietLabel(id="phrase")
        self._status = QuietLabel(id="status")
        self._reshuffle_on_show = False
        self.border_title = "Enter PIN"
        self.set_reactive(SecureKeypad.security_phrase, security_phrase)
        self.set_reactive(SecureKeypad.allow_typed_digits, allow_typed_digits)
        self.set_reactive(SecureKeypad.reshuffle_each_press, reshuffle_each_press)

    def __rich_repr__(self) -> Result:
        yield from super().__rich_repr__()
        yield "count", self._entry.count

    # -- read-only views -------------------------------------------------------------

    @property
    def count(self) -> int:
        """How many digits are entered (never which)."""
        return self._entry.count

    @property
    def digit_layout(self) -> Layout:
        """The digit at each of the 12 positions (``None`` for blanks), as on screen."""
        return self._digit_layout

    def key_for_digit(self, digit: int) -> KeypadKey:
        """The button showing ``digit`` right now (for tests and accessibility tools)."""
        return self._keys[self._digit_layout.index(digit)]

    # -- composition and life cycle --------------------------------------------------

    def compose(self) -> ComposeResult:
        self._keys = [
            KeypadKey("position", hint=POSITION_HINTS[position], id=f"key-{position}")
            for position in range(POSITIONS)
        ]
        self._keys += [
            KeypadKey(role, hint=hint, id=f"key-{role}", label=label)
            for role, label, hint in FUNCTION_KEYS
        ]
        self._display = PinDisplay(self.length, self.max_length, id="display")
        self._phrase.update(self._phrase_content())
        with Horizontal(id="header"):
            yield Siren(id="siren-left")
            yield self._phrase
            yield Siren(mirror=True, id="siren-right")
        yield self._display
        with Grid(id="keys"):
            yield from self._keys
        yield self._status

    def on_mount(self) -> None:
        self._keys[self.cursor].add_class("-cursor")
        self._show_entry()
        self.shuffle()
        if not getattr(self.app, "KEYPAD_SAFE", False):
            self.log.warning(
                "SecureKeypad: the app does not derive from KeypadSafeApp, so Textual's "
                "'Screenshot' command stays available while the keypad is open"
            )

    def on_show(self) -> None:
        if self._reshuffle_on_show:
            self._reshuffle_on_show = False
            self.shuffle()

    def on_hide(self) -> None:
        # Hidden (or removed, or scrolled away): forget the entry; show a new layout on return.
        self._clear_entry()
        self._reshuffle_on_show = True

    def on_unmount(self) -> None:
        self._stop_idle_timer()
        self._entry.clear()
        self._display = None

    # -- watchers --------------------------------------------------------------------

    def validate_cursor(self, cursor: int) -> int:
        return max(0, min(cursor, CELLS - 1))

    def watch_cursor(self, old: int, new: int) -> None:
        self._keys[old].remove_class("-cursor")
        self._keys[new].add_class("-cursor")

    def watch_security_phrase(self) -> None:
        self._phrase.update(self._phrase_content())

    def watch_status(self, status: str) -> None:
        self._status.update(Content(status))

    def _phrase_content(self) -> Content:
        if self.security_phrase is None:
            return Content.styled("no security phrase set", "$foreground-muted")
        return Content(self.security_phrase)

    # -- public operations -----------------------------------------------------------

    def shuffle(self) -> None:
        """Draw a new random layout and show it."""
        self._digit_layout = new_layout(self._rng)
        for key, digit in zip(self._keys, self._digit_layout, strict=False):
            key.show_digit(digit)

    def reset(self) -> None:
        """Open afresh: wipe the entry, clear the status, cursor on *OK*, new layout."""
        self._clear_entry()
        self.status = ""
        self.cursor = CONFIRM_CELL
        self.shuffle()

    # -- input -----------------------------------------------------------------------

    def on_paste(self, event: events.Paste) -> None:
        # A PIN in the clipboard is already leaked; never accept one.
        event.stop()
        event.prevent_default()

    def on_keypad_key_pressed(self, event: KeypadKey.Pressed) -> None:
        event.stop()
        self._press(event.key.role, event.digit)

    def action_type_digit(self, digit: int) -> None:
        """Enter a typed digit if ``allow_typed_digits``; otherwise enter nothing and
        say, on the status line, that the letters are the keys to use."""
        if self.allow_typed_digits and 0 <= digit <= 9:
            self._press("position", digit)
        elif not self.allow_typed_digits:
            self.status = DIGITS_OFF

    def action_press_position(self, position: int) -> None:
        """Press the key at a digit position (0-11), whatever it shows now."""
        if 0 <= position < POSITIONS:
            self._press("position", self._digit_layout[position])

    def action_press_cursor(self) -> None:
        """Press the key under the cursor."""
        key = self._keys[self.cursor]
        if not key.disabled:
            self._press(key.role, key.digit)

    def action_move_cursor(self, rows: int, columns: int) -> None:
        """Move the cursor by rows and columns, stopping at the edges of the grid."""
        row, column = divmod(self.cursor, COLUMNS)
        row = max(0, min(row + rows, CELLS // COLUMNS - 1))
        column = max(0, min(column + columns, COLUMNS - 1))
        self.cursor = row * COLUMNS + column

    def action_backspace(self) -> None:
        """Delete the last digit."""
        self._press("backspace", None)

    def action_clear(self) -> None:
        """Wipe the whole entry (never cancels)."""
        self._clear_entry()
        self._after_press()

    def action_clear_or_cancel(self) -> None:
        """Wipe the entry; with nothing entered, cancel."""
        self._press("clear", None)

    def action_shuffle(self) -> None:
        """Draw a new layout now."""
        self._press("shuffle", None)

    def action_submit(self) -> None:
        """Confirm the PIN, if enough digits are entered."""
        self._press("confirm", None)

    def action_copy_text(self) -> None:
        """Copy is disabled in the keypad: this binding does nothing, on purpose."""

    def action_cut_text(self) -> None:
        """Cut is disabled in the keypad: this binding does nothing, on purpose."""

    # -- the entry -------------------------------------------------------------------

    def _press(self, role: KeyRole, digit: int | None) -> None:
        entry = self._entry
        if role == "confirm":
            if entry.ready:
                self._submit()
            else:
                self.status = self._too_few()
            return
        if role == "position":
            if digit is None:
                return  # a blank key does nothing at all
            changed = entry.append(digit)
        elif role == "backspace":
            changed = entry.backspace()
        elif role == "clear":
            changed = bool(entry.count)
            if not changed:
                self.post_message(self.Cancelled(self))
            entry.clear()
        else:
            changed = False
        if changed:
            self._show_entry(changed=True)
        self._after_press(shuffle=role == "shuffle")

    def _after_press(self, *, shuffle: bool = False) -> None:
        self.status = ""
        if shuffle or self.reshuffle_each_press:
            self.shuffle()
        self._restart_idle_timer()

    def _too_few(self) -> str:
        """What OK says before enough digits are in: how many more, never which."""
        if not self._entry.count:
            return f"Enter {self.length} digits, then OK"
        need = self.length - self._entry.count
        total = (f"{self.length} in all" if self.length == self.max_length
                 else f"at least {self.length}")
        return f"{need} more digit{'s' if need != 1 else ''} needed ({total})"

    def _submit(self) -> None:
        pin = self._entry.take_pin()  # wipes the entry
        self._show_entry(changed=True)
        self.post_message(self.Submitted(self, pin))
        self.reset()

    def _clear_entry(self) -> None:
        had_digits = bool(self._entry.count)
        self._entry.clear()
        self._stop_idle_timer()
        if had_digits:
            self._show_entry(changed=True)

    def _show_entry(self, *, changed: bool = False) -> None:
        # Attributes down: the display gets the count, the function keys their state.
        if self._display is None:
            return  # not composed yet, or already gone
        count = self._entry.count
        self._display.count = count
        # Never disabled: pressed too early, OK says how many digits are missing.
        self._keys[-1].set_class(self._entry.ready, "-ready")
        self._keys[-1].set_class(not self._entry.ready, "-waiting")
        self._keys[POSITIONS + 1].label = "Clear" if count else "Cancel"
        if count == self.max_length:
            self.cursor = CONFIRM_CELL
        if changed:
            self.post_message(self.Changed(self, count))

    # -- inactivity ------------------------------------------------------------------

    def _restart_idle_timer(self) -> None:
        self._stop_idle_timer()
        if self._entry.count and self.is_mounted:
            self._idle_timer = self.set_timer(
                self.timeout, self._idle_timeout, name="SecureKeypad inactivity"
            )

    def _stop_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.stop()
            self._idle_timer = None

    def _idle_timeout(self) -> None:
        self._idle_timer = None
        if self._entry.count:
            self._clear_entry()
            self.shuffle()
            self.status = f"Entry cleared after {self.timeout:g} s of inactivity"
