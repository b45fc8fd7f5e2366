"""``KeypadKey``: a real ``Button`` that never shows which key was pressed."""

from __future__ import annotations

from typing import Self

from textual.content import Content
from textual.selection import Selection
from textual.widgets import Button

from ._keymap import KeyRole

__all__ = ["KeypadKey"]


class KeypadKey(Button, can_focus=False):
    """One key of a :class:`~splitvault.keypad.SecureKeypad`.

    A plain :class:`textual.widgets.Button` for screen readers, tests and the mouse,
    with everything that would reveal a press switched off: no "active" flash, hover
    and press look exactly like rest, no text selection, no tooltip. It cannot take
    focus: the keypad holds focus and moves its own cursor, so one Tab stop covers the
    whole keypad and every key binding reaches the keypad.
    """

    ALLOW_SELECT = False

    # Every property Button changes on :hover, :focus or .-active is pinned here with
    # !important, so whatever Button's own CSS does in any style or theme, a key under
    # the mouse or just pressed is drawn exactly like a key at rest. The cursor and the
    # confirm key's ready state are set by SecureKeypad, also with !important and a
    # more specific selector.
    DEFAULT_CSS = """
    KeypadKey {
        width: 1fr;
        height: 2;
        min-width: 0;
        margin: 0;
        padding: 0;
        content-align: center middle;
        text-align: center;
        background: $panel !important;
        color: $foreground !important;
        text-style: bold !important;
        border: none !important;
        border-bottom: blank !important;
        tint: transparent !important;
        background-tint: transparent !important;
        text-opacity: 1 !important;
        border-subtitle-align: center;
        border-subtitle-color: $foreground-muted;
        border-subtitle-style: none;
        pointer: pointer;

        &.-function {
            color: $text-primary !important;
        }
        &:disabled, &.-waiting {
            color: $foreground-disabled !important;
            text-style: none !important;
            pointer: default;
        }
    }
    """

    def __init__(self, role: KeyRole, *, hint: str, id: str, label: str = "") -> None:
        """A key.

        Args:
            role: What the key does.
            hint: The keyboard key that presses it, shown in its bottom border.
            id: A stable id by position or function (``key-0`` .. ``key-11``,
                ``key-backspace`` ...), never by digit.
            label: The label of a function key; position keys get theirs from
                :meth:`show_digit`.
        """
        super().__init__(label, id=id, classes="" if role == "position" else "-function")
        self.role: KeyRole = role
        """What the key does."""
        self.digit: int | None = None
        """The digit the key shows, ``None`` when blank or a function key."""
        self.active_effect_duration = 0
        # Button pads its label by one cell each side; keys are narrow. (Set inline:
        # Textual's CSS parser rejects "line-pad: 0".)
        self.styles.line_pad = 0
        self.border_subtitle = hint

    def show_digit(self, digit: int | None) -> None:
        """Show ``digit`` on this position key, or nothing for a blank key."""
        self.digit = digit
        self.label = Content("" if digit is None else str(digit))

    def press(self) -> Self:
        """Post :class:`KeypadKey.Pressed` with the digit shown at this moment.

        Overrides ``Button.press`` so the "active" effect is never started, and so the
        digit is taken when the key is pressed, not later when the keypad handles the
        message, by which time a reshuffle may have relabelled the key.
        """
        if not self.is_disabled and self.display:
            self.post_message(self.Pressed(self, self.digit))
        return self

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """Nothing on a key can be selected or copied."""
        return None

    class Pressed(Button.Pressed):
        """A key was pressed. The keypad handles it and stops it here."""

        def __init__(self, key: KeypadKey, digit: int | None) -> None:
            super().__init__(key)
            self.key = key
            """The key that was pressed."""
            self.digit = digit
            """The digit the key showed when pressed (``None`` if blank). Not in repr."""
