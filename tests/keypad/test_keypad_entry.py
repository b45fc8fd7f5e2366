"""Entering a PIN: by mouse, blind by position keys, by cursor, and the edits."""

from __future__ import annotations

import random

import pytest
from textual.pilot import Pilot
from textual.widgets import Button

from splitvault import Pin
from splitvault.keypad import POSITION_KEYS, SecureKeypad, new_layout
from splitvault.keypad._keypad import DIGITS_OFF

from .helpers import (
    SEED,
    KeypadHost,
    button_labelled,
    enter_blind,
    pin_digits,
)

PIN = "135790"


async def click_digits(pilot: Pilot[None], app: KeypadHost, digits: str) -> None:
    for digit in digits:
        await pilot.click(button_labelled(app, digit))
        await pilot.pause()


async def test_clicking_digit_buttons_by_label_submits_a_pin() -> None:
    """Clicking the buttons labelled with the PIN's digits, then OK, posts that Pin."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        await click_digits(pilot, app, PIN)
        await pilot.click("#key-confirm")
        await pilot.pause()
        assert len(app.submitted) == 1
        message = app.submitted[0]
        assert isinstance(message.pin, Pin)
        assert pin_digits(message.pin) == PIN
        assert message.control is app.keypad
        assert app.keypad.count == 0


async def test_digit_buttons_are_real_buttons_labelled_with_their_digit() -> None:
    """Each digit 0-9 is on exactly one Button, labelled with just that digit."""
    app = KeypadHost()
    async with app.run_test():
        keypad = app.keypad
        for digit in range(10):
            button = keypad.key_for_digit(digit)
            assert isinstance(button, Button)
            assert str(button.label) == str(digit)
            assert button is button_labelled(app, str(digit))
            assert button.id == f"key-{keypad.digit_layout.index(digit)}"


async def test_blank_keys_do_nothing() -> None:
    """Clicking a blank dummy key enters nothing and does not even reshuffle."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        keypad = app.keypad
        blank = keypad.digit_layout.index(None)
        before = keypad.digit_layout
        await pilot.click(f"#key-{blank}")
        await pilot.press(POSITION_KEYS[blank])
        await pilot.pause()
        assert keypad.count == 0
        assert keypad.digit_layout == before
        assert app.changes == []


async def test_blind_entry_by_position_keys() -> None:
    """Pressing the position keys of the PIN's digits (read off each layout) enters it."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        keypad = app.keypad
        await enter_blind(pilot, keypad, PIN)
        await pilot.press("enter")  # the cursor is parked on OK
        assert [pin_digits(m.pin) for m in app.submitted] == [PIN]


async def test_fixed_position_presses_give_the_digits_of_the_seeded_layouts() -> None:
    """A fixed run of position keys yields the digits a replay of the seeded rng predicts."""
    presses = ["u", "k", "full_stop", "semicolon", "m", "p", "i", "slash", "j", "o"]
    replay = random.Random(SEED)
    layout = new_layout(replay)  # drawn when the keypad opens
    expected = ""
    for key in presses:
        digit = layout[POSITION_KEYS.index(key)]
        if digit is not None:  # a blank enters nothing and keeps the layout
            expected += str(digit)
            layout = new_layout(replay)
    app = KeypadHost(length=4, max_length=12)
    async with app.run_test() as pilot:
        await pilot.press(*presses, "ctrl+s")
        assert [pin_digits(m.pin) for m in app.submitted] == [expected]
        assert 4 <= len(expected) <= 10


async def test_position_letters_work_with_shift_or_caps_lock() -> None:
    """Upper-case and shifted position letters press the same positions as lower case."""
    letter_positions = [p for p, key in enumerate(POSITION_KEYS) if len(key) == 1]
    app = KeypadHost(length=4)
    async with app.run_test() as pilot:
        keypad = app.keypad
        for variant in (str.upper, "shift+{}".format, str.upper, str.lower):
            position = next(p for p in letter_positions if keypad.digit_layout[p] is not None)
            await pilot.press(variant(POSITION_KEYS[position]))
        assert keypad.count == 4


async def test_typed_digits_do_nothing_by_default() -> None:
    """Typed digit keys enter nothing, reshuffle nothing and reach no host binding."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        before = app.keypad.digit_layout
        await pilot.press(*"1234567890")
        assert app.keypad.count == 0
        assert app.keypad.digit_layout == before
        assert app.changes == []
        assert app.host_digit_actions == 0


async def test_typed_digits_are_accepted_when_allowed() -> None:
    """With allow_typed_digits=True the digit keys enter those digits."""
    app = KeypadHost(allow_typed_digits=True)
    async with app.run_test() as pilot:
        await pilot.press(*PIN, "ctrl+s")
        assert [pin_digits(m.pin) for m in app.submitted] == [PIN]
        assert app.host_digit_actions == 0


async def test_arrow_keys_and_enter_press_the_key_under_the_cursor() -> None:
    """The cursor starts on OK; arrows move it; Enter presses what is under it."""
    app = KeypadHost(length=4)
    async with app.run_test() as pilot:
        keypad = app.keypad
        assert keypad.has_focus
        assert keypad.cursor == 15
        assert app.query_one("#key-confirm").has_class("-cursor")
        for digit in map(int, PIN[:4]):
            target = keypad.digit_layout.index(digit)
            await _move_cursor(pilot, keypad, target)
            assert app.query_one(f"#key-{target}").has_class("-cursor")
            await pilot.press("enter")
        # Entry full: the cursor went back to OK, so Enter confirms.
        assert keypad.cursor == 15
        await pilot.press("enter")
        assert [pin_digits(m.pin) for m in app.submitted] == [PIN[:4]]


async def _move_cursor(pilot: Pilot[None], keypad: SecureKeypad, target: int) -> None:
    row, column = divmod(keypad.cursor, 4)
    goal_row, goal_column = divmod(target, 4)
    keys = ["up"] * (row - goal_row) + ["down"] * (goal_row - row)
    keys += ["left"] * (column - goal_column) + ["right"] * (goal_column - column)
    await pilot.press(*keys)
    assert keypad.cursor == target


async def test_cursor_stays_inside_the_grid() -> None:
    """Arrow keys past an edge leave the cursor at the edge."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        await pilot.press("down", "right", "right")
        assert app.keypad.cursor == 15
        await pilot.press(*["up"] * 5, *["left"] * 5)
        assert app.keypad.cursor == 0


async def test_confirm_before_length_digits_says_how_many_are_needed() -> None:
    """OK (button, Ctrl+S or Enter) submits nothing before `length` digits are in; it
    says how many more are needed, and looks ready only once they are."""
    app = KeypadHost(length=4)
    async with app.run_test() as pilot:
        keypad = app.keypad
        confirm = app.query_one("#key-confirm", Button)
        await pilot.press("ctrl+s")
        assert keypad.status == "Enter 4 digits, then OK"
        await click_digits(pilot, app, "123")
        assert confirm.has_class("-waiting") and not confirm.has_class("-ready")
        await pilot.click(confirm)
        assert keypad.status == "1 more digit needed (4 in all)"
        await pilot.press("ctrl+s", "enter")
        assert app.submitted == []
        assert keypad.count == 3
        await click_digits(pilot, app, "4")
        assert confirm.has_class("-ready") and keypad.status == ""


async def test_too_few_with_a_range_says_at_least() -> None:
    app = KeypadHost(length=4, max_length=8)
    async with app.run_test() as pilot:
        await click_digits(pilot, app, "12")
        await pilot.press("ctrl+s")
        assert app.keypad.status == "2 more digits needed (at least 4)"


async def test_a_digit_key_says_the_letters_are_the_keys() -> None:
    """Typed digits stay off, and the status line says why nothing was entered."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        await pilot.press("7")
        assert app.keypad.count == 0
        assert app.keypad.status == DIGITS_OFF
        assert len(DIGITS_OFF) <= 35  # the status line's width


async def test_entry_stops_at_max_length() -> None:
    """Digits past max_length are ignored; length..max_length digits can be confirmed."""
    app = KeypadHost(length=4, max_length=5)
    async with app.run_test() as pilot:
        await enter_blind(pilot, app.keypad, "1234567")
        assert app.keypad.count == 5
        await pilot.press("ctrl+s")
        assert [pin_digits(m.pin) for m in app.submitted] == ["12345"]


async def test_backspace_key_and_button_delete_the_last_digit() -> None:
    """Backspace (key or button) removes one digit."""
    app = KeypadHost(length=4)
    async with app.run_test() as pilot:
        await enter_blind(pilot, app.keypad, "9876")
        await pilot.press("backspace")
        await pilot.click("#key-backspace")
        await pilot.pause()
        assert app.keypad.count == 2
        await enter_blind(pilot, app.keypad, "11")
        await pilot.press("ctrl+s")
        assert [pin_digits(m.pin) for m in app.submitted] == ["9811"]


async def test_escape_clears_then_cancels() -> None:
    """Escape wipes a partial entry; a second Escape, on an empty entry, cancels."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        await enter_blind(pilot, app.keypad, "12")
        await pilot.press("escape")
        assert app.keypad.count == 0
        assert app.cancelled == []
        await pilot.press("escape")
        assert len(app.cancelled) == 1
        assert app.cancelled[0].control is app.keypad


async def test_clear_button_reads_cancel_when_empty_and_cancels() -> None:
    """With the mouse alone: Clear wipes the entry, then the same key (now Cancel) cancels."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        clear = app.query_one("#key-clear", Button)
        assert str(clear.label) == "Cancel"
        await click_digits(pilot, app, "5")
        assert str(clear.label) == "Clear"
        await pilot.click(clear)
        await pilot.pause()
        assert app.keypad.count == 0 and app.cancelled == []
        await pilot.click(clear)
        await pilot.pause()
        assert len(app.cancelled) == 1


async def test_delete_key_clears_without_cancelling() -> None:
    """The Delete key wipes the entry and never cancels."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        await enter_blind(pilot, app.keypad, "55")
        await pilot.press("delete", "delete")
        assert app.keypad.count == 0
        assert app.cancelled == []


async def test_changed_messages_carry_only_the_count() -> None:
    """Changed is posted on each count change with the count and nothing else."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        await enter_blind(pilot, app.keypad, "314")
        await pilot.press("backspace", "escape")
        assert app.changes == [1, 2, 3, 2, 0]


async def test_keypad_works_again_after_a_submit() -> None:
    """After OK the keypad is empty and ready for the next PIN."""
    app = KeypadHost(length=4)
    async with app.run_test() as pilot:
        await enter_blind(pilot, app.keypad, "2468")
        await pilot.press("enter")
        await enter_blind(pilot, app.keypad, "1357")
        await pilot.press("enter")
        assert [pin_digits(m.pin) for m in app.submitted] == ["2468", "1357"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"length": 3}, "length must be 4 to 12"),
        ({"length": 13}, "length must be 4 to 12"),
        ({"length": 6, "max_length": 5}, "max_length must be 6 to 12"),
        ({"length": 6, "max_length": 13}, "max_length must be 6 to 12"),
        ({"timeout": 0}, "timeout must be a positive"),
    ],
)
def test_bad_options_raise_value_error(options: dict[str, int], message: str) -> None:
    """Lengths outside 4..12 and a non-positive timeout are caller mistakes."""
    with pytest.raises(ValueError, match=message):
        SecureKeypad(**options)  # type: ignore[arg-type]


async def test_disabled_keypad_ignores_clicks_and_keys() -> None:
    """With disabled=True neither the mouse nor the keyboard enters anything."""
    app = KeypadHost(disabled=True)
    async with app.run_test() as pilot:
        await pilot.click("#key-0")
        await pilot.press(*POSITION_KEYS[:4], "ctrl+s")
        assert app.keypad.count == 0 and app.changes == []
