"""When the digits move: on open, after each press, on demand."""

from __future__ import annotations

import random

from textual.widgets import Button

from splitvault.keypad import new_layout

from .helpers import SEED, KeypadHost, button_labelled, position_key_for


def _labels(app: KeypadHost) -> tuple[str, ...]:
    return tuple(str(app.query_one(f"#key-{p}", Button).label) for p in range(12))


async def test_layout_is_drawn_when_the_keypad_opens() -> None:
    """On mount the keypad shows the first layout of its rng, on the buttons by position."""
    app = KeypadHost()
    async with app.run_test():
        expected = new_layout(random.Random(SEED))
        assert app.keypad.digit_layout == expected
        assert _labels(app) == tuple("" if d is None else str(d) for d in expected)


async def test_each_press_reshuffles() -> None:
    """Every digit press, by mouse or by key, draws a new layout (seeded, so predictable)."""
    app = KeypadHost()
    replay = random.Random(SEED)
    async with app.run_test() as pilot:
        keypad = app.keypad
        assert keypad.digit_layout == new_layout(replay)
        await pilot.click(button_labelled(app, "4"))
        await pilot.pause()
        assert keypad.digit_layout == new_layout(replay)
        await pilot.press(position_key_for(keypad, 2))
        assert keypad.digit_layout == new_layout(replay)
        await pilot.press("backspace")
        assert keypad.digit_layout == new_layout(replay)
        assert _labels(app) == tuple("" if d is None else str(d) for d in keypad.digit_layout)


async def test_no_reshuffle_per_press_when_turned_off() -> None:
    """With reshuffle_each_press=False the layout stays put while digits are entered."""
    app = KeypadHost(reshuffle_each_press=False)
    async with app.run_test() as pilot:
        keypad = app.keypad
        before = keypad.digit_layout
        await pilot.press(position_key_for(keypad, 1), position_key_for(keypad, 2), "backspace")
        assert keypad.count == 1
        assert keypad.digit_layout == before


async def test_shuffle_key_and_button_reshuffle_on_demand() -> None:
    """Ctrl+R and the Shuffle button draw a new layout and keep the entry."""
    app = KeypadHost(reshuffle_each_press=False)
    async with app.run_test() as pilot:
        keypad = app.keypad
        await pilot.press(position_key_for(keypad, 8))
        first = keypad.digit_layout
        await pilot.press("ctrl+r")
        second = keypad.digit_layout
        await pilot.click("#key-shuffle")
        await pilot.pause()
        third = keypad.digit_layout
        assert len({first, second, third}) == 3
        assert keypad.count == 1


async def test_hiding_and_showing_reopens_with_a_new_layout() -> None:
    """Hidden, the keypad wipes its entry; shown again, it has a new layout."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        keypad = app.keypad
        await pilot.press(position_key_for(keypad, 3))
        before = keypad.digit_layout
        keypad.display = False
        await pilot.pause()
        assert keypad.count == 0
        assert not any(keypad._entry._buffer)
        keypad.display = True
        await pilot.pause()
        assert keypad.digit_layout != before


async def test_reset_reshuffles_and_empties() -> None:
    """reset() wipes the entry, clears the status and draws a new layout."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        keypad = app.keypad
        await pilot.press(position_key_for(keypad, 3))
        keypad.status = "Wrong PIN: 4 attempts left"
        before = keypad.digit_layout
        keypad.reset()
        await pilot.pause()
        assert keypad.count == 0
        assert keypad.status == ""
        assert keypad.digit_layout != before
