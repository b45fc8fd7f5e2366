"""Which keyboard key does what: the fixed position keys and the keypad's bindings.

The 16 keys form a 4 x 4 grid for the cursor: the 12 digit positions row by row, then
the function row (Delete, Clear, Shuffle, OK)::

     0  1  2  3        U I O P
     4  5  6  7        J K L ;
     8  9 10 11        M , . /
    12 13 14 15        Bksp Esc ^R ^S
"""

from __future__ import annotations

from typing import Final, Literal

from textual.binding import Binding, BindingType

from ._layout import POSITIONS

__all__ = [
    "CELLS",
    "CONFIRM_CELL",
    "FUNCTION_KEYS",
    "POSITION_HINTS",
    "POSITION_KEYS",
    "KeyRole",
    "digit_bindings",
    "position_bindings",
]

KeyRole = Literal["position", "backspace", "clear", "shuffle", "confirm"]
"""What a key does: a digit position (digit or blank) or one of the function keys."""

POSITION_KEYS: Final[tuple[str, ...]] = (
    "u", "i", "o", "p",
    "j", "k", "l", "semicolon",
    "m", "comma", "full_stop", "slash",
)  # fmt: skip
"""Textual key names that press each position, in position order.

A block under the right hand of a QWERTY keyboard, laid out like the grid on screen,
so a keylogger records which *position* was pressed; the digit there changes with
every layout. The digit keys are deliberately not used: a terminal sends the numeric
keypad's 7 exactly like the 7 above the letters, so a numpad map could not be told
apart from a user typing the PIN itself out of habit.
"""

POSITION_HINTS: Final[tuple[str, ...]] = (
    "U", "I", "O", "P",
    "J", "K", "L", ";",
    "M", ",", ".", "/",
)  # fmt: skip
"""What each position key looks like on a keycap, shown on the grid."""

FUNCTION_KEYS: Final[tuple[tuple[KeyRole, str, str], ...]] = (
    ("backspace", "Delete", "Bksp"),
    ("clear", "Cancel", "Esc"),
    ("shuffle", "Shuffle", "^R"),
    ("confirm", "OK", "^S"),
)
"""The function row: role, label and the keyboard key shown as a hint. The clear key
reads "Cancel" while the entry is empty, because pressing it then cancels."""

CELLS: Final = POSITIONS + len(FUNCTION_KEYS)
"""Keys the cursor can be on."""
CONFIRM_CELL: Final = CELLS - 1
"""Where the cursor starts, and goes back to when the entry is full, so Enter confirms."""


def position_bindings() -> list[BindingType]:
    """A binding per position key; letters also with Shift or Caps Lock on."""
    return [
        Binding(
            f"{key},{hint},shift+{key}" if hint.isalpha() else key,
            f"press_position({position})",
            f"Press the key at position {hint}",
            show=False,
        )
        for position, (key, hint) in enumerate(zip(POSITION_KEYS, POSITION_HINTS, strict=True))
    ]


def digit_bindings() -> list[BindingType]:
    """A binding per digit key, to ``type_digit`` (which ignores it unless allowed)."""
    # Bound even when typed digits are off, so the keypad swallows them and no binding
    # of the host app ever sees a digit key. (Textual's check_action would instead let
    # the key fall through to the app.)
    return [
        Binding(str(digit), f"type_digit({digit})", f"Type {digit} (if allowed)", show=False)
        for digit in range(10)
    ]
