"""Where the digits go: a uniformly random layout of the 12 digit positions.

The keypad has :data:`POSITIONS` = 12 digit positions in 3 rows of 4: a block that
matches three letter rows of a keyboard. Ten hold the digits 0-9 and two are blank dummy
keys; all twelve are permuted together, so each digit is at each position with
probability exactly 1/12 (and a blank with 2/12), and a blank says nothing about where
any digit is.

Positions are numbered row by row from the top left (``_keymap`` gives each a key)::

     0  1  2  3
     4  5  6  7
     8  9 10 11
"""

from __future__ import annotations

import random
from typing import Final

__all__ = [
    "BLANKS",
    "COLUMNS",
    "POSITIONS",
    "ROWS",
    "Layout",
    "new_layout",
]

ROWS: Final = 3
"""Rows of digit positions: one per letter row of a keyboard (see ``_keymap``)."""
COLUMNS: Final = 4
"""Columns of digit positions: 3 x 4 = 12 leaves room for 10 digits and 2 blanks."""
POSITIONS: Final = ROWS * COLUMNS
"""Number of digit positions on the keypad."""
BLANKS: Final = POSITIONS - 10
"""Blank dummy keys: they move with the digits, so where a digit can be is not given away."""

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
