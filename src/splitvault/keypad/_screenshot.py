"""No screenshots of the keypad: Textual's "Screenshot" command, hidden while it is open.

Textual offers every app a "Screenshot" system command in the command palette (see
``App.get_system_commands``); it saves an SVG of the screen, digits and all, to the
user's Downloads folder. A widget cannot remove an app's command, so the host app
cooperates: derive from :class:`KeypadSafeApp`, or, if the app already has another
base, call :func:`without_screenshot` in its ``get_system_commands`` and check
:func:`keypad_is_open` in ``action_screenshot`` and ``deliver_screenshot``.

``App.export_screenshot`` and ``App.save_screenshot`` are left alone: they are what the
app's own code (and snapshot tests) call on purpose, not something a user can trigger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, TypeVar

from textual.app import App, SystemCommand
from textual.screen import Screen

from ._keypad import SecureKeypad

__all__ = ["KeypadSafeApp", "keypad_is_open", "without_screenshot"]

_ReturnT = TypeVar("_ReturnT")

_BLOCKED_NOTICE = "Screenshots are disabled while the PIN keypad is open"


def keypad_is_open(app: App[Any]) -> bool:
    """True while a :class:`SecureKeypad` is mounted on any screen of the app's current
    stack (a modal screen on top, like the command palette, does not hide it)."""
    return any(screen.query(SecureKeypad) for screen in app.screen_stack)


def without_screenshot(app: App[Any], commands: Iterable[SystemCommand]) -> Iterator[SystemCommand]:
    """``commands`` less any screenshot command while a keypad is open in ``app``."""
    hide = keypad_is_open(app)
    for command in commands:
        if not (hide and "screenshot" in command.title.lower()):
            yield command


class KeypadSafeApp(App[_ReturnT]):
    """An :class:`~textual.app.App` that takes no screenshot while a keypad is open.

    The "Screenshot" command is not offered, and ``action_screenshot`` (which a key
    binding may call) and ``deliver_screenshot`` (which the command calls) do nothing
    but say why.
    """

    KEYPAD_SAFE: ClassVar[bool] = True
    """Checked by :class:`SecureKeypad` on mount, which logs a warning when it is missing."""

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Textual's system commands, without "Screenshot" while a keypad is open."""
        yield from without_screenshot(self, super().get_system_commands(screen))

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Save a screenshot, unless a keypad is open."""
        if keypad_is_open(self):
            self.notify(_BLOCKED_NOTICE, severity="warning")
            return
        super().action_screenshot(filename, path)

    def deliver_screenshot(
        self,
        filename: str | None = None,
        path: str | None = None,
        time_format: str | None = None,
    ) -> str | None:
        """Deliver a screenshot, unless a keypad is open (then ``None``)."""
        if keypad_is_open(self):
            self.notify(_BLOCKED_NOTICE, severity="warning")
            return None
        return super().deliver_screenshot(filename, path, time_format)
