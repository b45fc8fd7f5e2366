"""Inactivity timeout, the status line, the security phrase and the siren."""

from __future__ import annotations

from textual.content import Content

from splitvault.keypad import INACTIVITY_TIMEOUT, SecureKeypad
from splitvault.keypad._display import QuietLabel
from splitvault.keypad._siren import Siren

from .helpers import KeypadHost, position_key_for


def _status(app: KeypadHost) -> str:
    return str(app.query_one("#status", QuietLabel).render())


async def test_timeout_clears_the_entry_and_says_so() -> None:
    """After `timeout` seconds without a press the entry is wiped and the keypad says why."""
    # 1.5 s, not less: on a loaded 2-core CI machine one pilot press can take several
    # hundred ms, and the notice must not be re-raised by a second timeout mid-test.
    app = KeypadHost(timeout=1.5)
    async with app.run_test() as pilot:
        keypad = app.keypad
        await pilot.press(position_key_for(keypad, 4), position_key_for(keypad, 2))
        assert keypad.count == 2
        await pilot.pause(2.0)
        assert keypad.count == 0
        assert not any(keypad._entry._buffer)
        assert _status(app) == "Entry cleared after 1.5 s of inactivity"
        assert app.changes[-1] == 0
        await pilot.press(position_key_for(keypad, 4))
        assert _status(app) == ""  # the next press clears the notice


async def test_each_press_restarts_the_timeout() -> None:
    """The timeout counts from the last press, not the first."""
    app = KeypadHost(timeout=1.6)  # wide margins: CI machines are loaded
    async with app.run_test() as pilot:
        keypad = app.keypad
        await pilot.press(position_key_for(keypad, 1))
        await pilot.pause(0.9)
        await pilot.press(position_key_for(keypad, 1))
        await pilot.pause(0.9)  # 1.8 s after the first press, 0.9 s after the last
        assert keypad.count == 2
        await pilot.pause(1.6)
        assert keypad.count == 0


async def test_no_timeout_notice_when_nothing_was_entered() -> None:
    """An idle, empty keypad stays quiet."""
    app = KeypadHost(timeout=0.1)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        assert _status(app) == ""


def test_default_timeout_is_a_minute() -> None:
    """By default a partial entry lives 60 s without a press."""
    assert SecureKeypad().timeout == INACTIVITY_TIMEOUT == 60.0


async def test_host_status_is_plain_text() -> None:
    """The host can put a line under the keys; markup in it is shown, not interpreted."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        app.keypad.status = "[b]Wrong PIN[/b]: 4 attempts left"
        await pilot.pause()
        assert _status(app) == "[b]Wrong PIN[/b]: 4 attempts left"


async def test_security_phrase_is_shown_as_plain_text() -> None:
    """The personal phrase appears on the keypad verbatim and can be changed later."""
    app = KeypadHost(security_phrase="blue [i]otter[/i]")
    async with app.run_test() as pilot:
        phrase = app.query_one("#phrase", QuietLabel)
        assert str(phrase.render()) == "blue [i]otter[/i]"
        app.keypad.security_phrase = "red fox"
        await pilot.pause()
        assert str(phrase.render()) == "red fox"


async def test_siren_is_static_without_animations() -> None:
    """With TEXTUAL_ANIMATIONS=none the siren draws the same frame every time."""
    app = KeypadHost()
    async with app.run_test() as pilot:
        siren = app.query_one("#siren-left", Siren)
        assert not siren.animated and not siren.auto_refresh
        first = siren.render()
        await pilot.pause(0.3)
        assert _spans(siren.render()) == _spans(first)


async def test_siren_moves_with_animations() -> None:
    """With animations on, the siren redraws itself and its lit lamp moves."""
    app = KeypadHost()
    app.animation_level = "full"
    async with app.run_test() as pilot:
        siren = app.query_one("#siren-left", Siren)
        assert siren.animated and siren.auto_refresh
        frames = set()
        for _ in range(6):
            frames.add(_spans(siren.render()))
            await pilot.pause(0.13)
        assert len(frames) > 1


def _spans(content: object) -> tuple[object, ...]:
    assert isinstance(content, Content)
    return tuple((span.start, span.end, str(span.style)) for span in content.spans)
