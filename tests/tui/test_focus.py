"""Every focusable widget shows focus: on each screen of the demo, moving focus from one
widget to another changes what is drawn, so a keyboard user always sees where it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget

from splitvault.keypad import KeypadKey
from splitvault.tui import DemoApp

from .helpers import click_button, enroll_directly, tap_pin

Demo = Callable[..., DemoApp]
SIZE = (80, 24)


def _drawn(widget: Widget) -> list[str]:
    """The cells of the widget and of what it contains, as drawn now (a container may
    show its focus on a child, as the lab's scroll area does on its first line)."""
    out: list[str] = []
    for part in [widget, *widget.query("*")]:
        if not part.display or not part.size.area:
            continue
        lines = part.render_lines(Region(0, 0, part.size.width, part.size.height))
        out += [repr([(segment.text, segment.style) for segment in line]) for line in lines]
    return out


async def _each_focus_is_visible(pilot: Pilot[Any], where: str) -> int:
    """Every focusable widget of the current screen is drawn differently when it has
    focus than when nothing has it (its own cells, not the footer's hints)."""
    app = pilot.app
    widgets = [w for w in app.screen.focus_chain if not isinstance(w, KeypadKey)]
    assert widgets, f"{where}: nothing focusable"
    for widget in widgets:
        widget.focus()
        await pilot.pause()
        focused = _drawn(widget)
        app.set_focus(None)
        await pilot.pause()
        assert _drawn(widget) != focused, (
            f"{where}: {type(widget).__name__}#{widget.id} shows no focus")
    return len(widgets)


async def test_every_focusable_widget_shows_focus(demo: Demo) -> None:
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        checked = await _each_focus_is_visible(pilot, "wallet")
        await click_button(pilot, "Pay")
        checked += await _each_focus_is_visible(pilot, "pay form")
        await pilot.press("escape")
        await pilot.pause()
        await click_button(pilot, "Add card")
        checked += await _each_focus_is_visible(pilot, "add card")
        await pilot.press("escape")
        await pilot.pause()
        await click_button(pilot, "Lab")
        checked += await _each_focus_is_visible(pilot, "lab")
        await pilot.press("escape")
        await pilot.pause()
        await click_button(pilot, "Pay")
        await click_button(pilot, "Pay with PIN")
        await tap_pin(pilot, "739184")
        checked += await _each_focus_is_visible(pilot, "result")
        await click_button(pilot, "Done")
        await click_button(pilot, "History")  # now with a payment in it
        checked += await _each_focus_is_visible(pilot, "history")
    assert checked >= 8  # the check ran over real widgets


async def test_the_check_catches_a_widget_without_a_focus_style() -> None:
    """The check itself can fail: a focusable widget with no focus style is caught."""
    import pytest
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Plain(Static, can_focus=True):
        """Focusable, and drawn the same focused or not."""

    class Tiny(App[None]):
        def compose(self) -> ComposeResult:
            yield Plain("no focus style", id="plain")

    async with Tiny().run_test(size=(40, 5)) as pilot:
        with pytest.raises(AssertionError, match="Plain#plain shows no focus"):
            await _each_focus_is_visible(pilot, "tiny")
