"""Where the digits go: the random layout and the fixed keyboard map of positions.

The keypad has :data:`POSITIONS` = 12 digit positions in 3 rows of 4. Ten of them hold
the digits 0-9 and two are blank dummy keys; all twelve are permuted together, so each
digit is at each position with probability exactly 1/12 and a blank with 2/12. (With
only ten positions the blanks would be pointless; with eleven, one blank, the layout is
still uniform, but two blanks fill the 3 x 4 block that matches the keyboard map below.)

Positions are numbered row by row from the top left::

     0  1  2  3        U I O P
     4  5  6  7        J K L ;
     8  9 10 11        M , . /
"""

from __future__ import annotations

import random
from typing import Final

__all__ = [
    "BLANKS",
    "COLUMNS",
    "POSITIONS",
    "POSITION_HINTS",
    "POSITION_KEYS",
    "ROWS",
    "Layout",
    "new_layout",
]

ROWS: Final = 3
"""Rows of digit positions: one per letter row of a keyboard, so the map below is a block."""
COLUMNS: Final = 4
"""Columns of digit positions: 3 x 4 = 12 leaves room for 10 digits and 2 blanks."""
POSITIONS: Final = ROWS * COLUMNS
"""Number of digit positions on the keypad."""
BLANKS: Final = POSITIONS - 10
"""Blank dummy keys: they move with the digits, so where a digit can be is not given away."""

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

Layout = tuple[int | None, ...]
"""The digit at each position, ``None`` for a blank key."""


def new_layout(rng: random.Random) -> Layout:
    """A uniformly random layout: the 10 digits and the blanks permuted together.

    ``rng.shuffle`` is Fisher-Yates driven by ``randbelow``, which has no modulo bias,
    so each of the 12!/2! distinct layouts is equally likely given a uniform ``rng``
    (``secrets.SystemRandom()`` in production, a seeded ``random.Random`` in tests).
    """
    cells: list[int | None] = [*range(10), *([None] * BLANKS)]
    rng.shuffle(cells)
    return tuple(cells)
