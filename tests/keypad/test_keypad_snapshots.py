"""How the keypad looks at 80x24: seeded layout, animations off (the autouse
``no_animations`` fixture), so every run is identical.

Update with ``pytest tests/keypad --snapshot-update`` and look at the SVGs before committing.
"""

from __future__ import annotations

from collections.abc import Callable

from .helpers import KeypadHost

SnapCompare = Callable[..., bool]


def test_initial_state(snap_compare: SnapCompare) -> None:
    """A freshly opened 6-digit keypad: seeded layout, empty display, cursor on OK."""
    assert snap_compare(KeypadHost(), terminal_size=(80, 24))


def test_after_three_presses(snap_compare: SnapCompare) -> None:
    """Three position keys pressed: three masks, a new layout, no digit in the display."""
    assert snap_compare(KeypadHost(), press=["u", "k", "slash"], terminal_size=(80, 24))


def test_with_security_phrase(snap_compare: SnapCompare) -> None:
    """The user's security phrase sits between the two sirens."""
    app = KeypadHost(security_phrase="blue otter by the lake")
    assert snap_compare(app, terminal_size=(80, 24))


async def test_keypad_fits_in_40_by_18() -> None:
    """The whole keypad, border included, takes at most 40 columns and 18 rows."""
    app = KeypadHost(length=4, max_length=12)
    async with app.run_test(size=(80, 24)):
        width, height = app.keypad.outer_size
        assert width <= 40 and height <= 18
