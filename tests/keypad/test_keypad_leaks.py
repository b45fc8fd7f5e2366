"""Nothing gives the PIN away: display, memory, clipboard, screenshots, press effects."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult, SystemCommand
from textual.screen import Screen
from textual.widgets import Button, Static

from splitvault.keypad import KeypadKey, SecureKeypad, keypad_is_open, without_screenshot
from splitvault.keypad._display import PinDisplay

from .helpers import KeypadHost, button_labelled, pin_digits, position_key_for

PIN = "8642"
DIGITS = frozenset("0123456789")


def _display_text(app: KeypadHost) -> str:
    return str(app.query_one(PinDisplay).render())


async def test_display_shows_masks_and_never_a_digit() -> None:
    """After every press the PIN display holds one mask per digit and no digit at all."""
    app = KeypadHost(length=4, max_length=6)
    async with app.run_test() as pilot:
        keypad = app.keypad
        assert _display_text(app) == "○ ○ ○ ○ · ·"
        for entered, digit in enumerate(map(int, PIN), start=1):
            if entered % 2:
                await pilot.click(button_labelled(app, str(digit)))
                await pilot.pause()
            else:
                await pilot.press(position_key_for(keypad, digit))
            text = _display_text(app)
            assert not DIGITS & set(text)
            assert text.count("●") == entered == keypad.count
        assert _display_text(app) == "● ● ● ● · ·"
        await pilot.press("backspace")
        assert _display_text(app) == "● ● ● ○ · ·"


async def test_digits_live_only_in_the_bytearray() -> None:
    """No str, bytes or repr on the keypad or its messages holds the entered digits."""
    app = KeypadHost(length=4)
    async with app.run_test() as pilot:
        keypad = app.keypad
        for digit in map(int, PIN):
            await pilot.press(position_key_for(keypad, digit))
        entry = keypad._entry
        assert bytes(entry._buffer) == PIN.encode()
        assert isinstance(entry._buffer, bytearray)
        values = [*vars(keypad).values(), *(getattr(entry, name) for name in entry.__slots__)]
        for value in values:
            assert not isinstance(value, bytes | str) or PIN not in value
        assert PIN not in repr(keypad) and PIN not in repr(entry)
        await pilot.press("ctrl+s")
        message = app.submitted[0]
        assert PIN not in repr(message) and PIN not in repr(message.pin)
        assert pin_digits(message.pin) == PIN


async def test_buffer_is_zeroed_after_backspace_clear_and_submit() -> None:
    """Backspace zeroes the slot it frees; Clear and OK zero the whole buffer in place."""
    app = KeypadHost(length=4)
    async with app.run_test() as pilot:
        keypad = app.keypad
        buffer = keypad._entry._buffer
        for digit in (9, 9, 9):
            await pilot.press(position_key_for(keypad, digit))
        await pilot.press("backspace")
        assert bytes(buffer) == b"99\0\0"
        await pilot.press("escape")
        assert bytes(buffer) == bytes(4)
        for digit in map(int, PIN):
            await pilot.press(position_key_for(keypad, digit))
        await pilot.press("enter")
        assert keypad._entry._buffer is buffer and bytes(buffer) == bytes(4)
        assert pin_digits(app.submitted[0].pin) == PIN


async def test_buffer_is_zeroed_on_unmount() -> None:
    """Removing the keypad mid-entry zeroes its buffer."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        keypad = app.keypad
        buffer = keypad._entry._buffer
        await pilot.press(position_key_for(keypad, 7), position_key_for(keypad, 7))
        await keypad.remove()
        assert bytes(buffer) == bytes(6)


async def test_copy_and_cut_do_nothing() -> None:
    """Ctrl+C / Ctrl+X (and a mouse drag over the keypad) put nothing on the clipboard."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        keypad = app.keypad
        await pilot.press(position_key_for(keypad, 1))
        await pilot.mouse_down(keypad, offset=(1, 1))
        await pilot.hover(keypad, offset=(30, 14))
        await pilot.mouse_up(keypad, offset=(30, 14))
        await pilot.press("ctrl+c", "ctrl+x", "super+c", "super+x")
        assert app.screen.get_selected_text() in (None, "")
        assert app.clipboard == ""
        assert keypad.count == 1  # and nothing else happened


async def test_copy_binding_is_swallowed_inside_the_keypad() -> None:
    """With the keypad focused, Ctrl+C copies nothing, even text selected elsewhere."""

    class HostWithText(KeypadHost):
        def compose(self) -> ComposeResult:
            yield Static("selectable host text", id="host-text")
            yield from super().compose()

    app = HostWithText()
    async with app.run_test() as pilot:
        app.query_one("#host-text").text_select_all()
        assert app.screen.get_selected_text() == "selectable host text"
        assert app.keypad.has_focus
        await pilot.press("ctrl+c")
        assert app.clipboard == ""
        app.set_focus(None)
        await pilot.press("ctrl+c")  # outside the keypad, Textual's copy works as usual
        assert app.clipboard == "selectable host text"


async def test_nothing_in_the_keypad_can_be_selected() -> None:
    """Every widget in the keypad refuses text selection and has no selectable text."""
    app = KeypadHost()
    async with app.run_test():
        keypad = app.keypad
        leaves = [w for w in keypad.query("*") if not w.is_container]
        assert leaves and not keypad.allow_select
        for widget in leaves:
            assert not widget.allow_select, widget
        app.screen.text_select_all()
        selected = app.screen.get_selected_text() or ""
        assert not DIGITS & set(selected)


async def test_screenshot_command_is_hidden_while_the_keypad_is_open() -> None:
    """The 'Screenshot' system command is offered only when no keypad is mounted."""
    app = KeypadHost()
    async with app.run_test():
        assert keypad_is_open(app)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Screenshot" not in titles and "Quit" in titles
        await app.keypad.remove()
        assert not keypad_is_open(app)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Screenshot" in titles


async def test_screenshot_action_saves_nothing_while_the_keypad_is_open(tmp_path: Path) -> None:
    """action_screenshot and deliver_screenshot write no file while a keypad is open."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        app.action_screenshot("blocked.svg", str(tmp_path))
        assert app.deliver_screenshot("blocked2.svg", str(tmp_path)) is None
        await pilot.pause()
        assert list(tmp_path.iterdir()) == []
        await app.keypad.remove()
        app.action_screenshot("allowed.svg", str(tmp_path))
        for _ in range(100):  # the save may finish on a worker thread
            if (tmp_path / "allowed.svg").exists():
                break
            await asyncio.sleep(0.02)
        assert (tmp_path / "allowed.svg").exists()


async def test_plain_app_still_offers_screenshots() -> None:
    """Why the host must opt in: Textual's own App offers 'Screenshot' regardless."""

    class PlainHost(App[None]):
        def compose(self) -> ComposeResult:
            yield SecureKeypad()

    app = PlainHost()
    async with app.run_test():
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Screenshot" in titles


async def test_helpers_let_any_app_hide_the_screenshot_command() -> None:
    """An app with another base can filter its commands with without_screenshot()."""

    class OwnBaseHost(App[None]):
        def compose(self) -> ComposeResult:
            yield SecureKeypad()

        def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
            yield from without_screenshot(self, super().get_system_commands(screen))

    app = OwnBaseHost()
    async with app.run_test():
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Screenshot" not in titles and "Theme" in titles


async def test_pressed_keys_never_get_the_active_effect() -> None:
    """Button's press flash is off: duration 0 and no '-active' class after a click."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        for key in app.query(KeypadKey):
            assert key.active_effect_duration == 0
        for digit in "3141":
            button = button_labelled(app, digit)
            await pilot.click(button)
            assert not button.has_class("-active")
            await pilot.pause()
            assert not any(key.has_class("-active") for key in app.query(KeypadKey))
        assert app.keypad.count == 4


async def test_hover_looks_exactly_like_rest() -> None:
    """A key under the mouse is drawn with the same colours, border and tint as at rest."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        key = app.query_one("#key-5", Button)
        await pilot.hover(Static)  # the phrase label: nowhere near the key
        at_rest = _look(key)
        await pilot.hover(key)
        await pilot.pause()
        assert key.mouse_hover
        assert _look(key) == at_rest


def _look(key: Button) -> tuple[object, ...]:
    styles = key.styles
    return (
        styles.background,
        styles.color,
        styles.border,
        styles.tint,
        styles.background_tint,
        styles.text_style,
        styles.text_opacity,
    )


async def test_keys_have_no_tooltips() -> None:
    """No key carries a tooltip (it would be one more thing to show on hover)."""
    app = KeypadHost()
    async with app.run_test():
        assert all(key.tooltip is None for key in app.query(KeypadKey))


async def test_paste_enters_nothing() -> None:
    """A bracketed paste of digits into the keypad is ignored, even with typed digits on."""
    from textual import events

    app = KeypadHost(allow_typed_digits=True)
    async with app.run_test() as pilot:
        app.keypad.post_message(events.Paste("123456"))
        await pilot.pause()
        assert app.keypad.count == 0
