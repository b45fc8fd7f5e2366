"""The parts of the keypad that show text: the PIN mask display and quiet labels.

None of them can be selected or copied, and the mask display is built from a count
alone: it is never given a digit, so it cannot show one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content
from textual.reactive import reactive
from textual.selection import Selection
from textual.widget import Widget
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.app import RenderResult

__all__ = ["FILLED", "OPTIONAL", "REQUIRED", "PinDisplay", "QuietLabel"]

FILLED = "●"
"""Mask for a digit entered."""
REQUIRED = "○"
"""Mask for a digit still needed before the PIN can be confirmed."""
OPTIONAL = "·"
"""Mask for a digit that may still be entered but is not needed (length < max_length)."""


class QuietLabel(Static):
    """A line of text that cannot be selected or copied."""

    ALLOW_SELECT = False

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """Nothing in the keypad can be copied."""
        return None


class PinDisplay(Widget):
    """One mask character per digit entered, e.g. ``● ● ● ○ ○ ○``.

    Set from the keypad (attributes down); it knows how many digits there are, never
    which.
    """

    ALLOW_SELECT = False

    DEFAULT_CSS = """
    PinDisplay {
        width: 100%;
        height: 1;
        content-align: center middle;
        text-align: center;
        text-style: bold;
    }
    """

    count: reactive[int] = reactive(0)
    """Digits entered so far."""
    length: reactive[int] = reactive(6)
    """Digits needed before the PIN can be confirmed."""
    max_length: reactive[int] = reactive(6)
    """Most digits the entry accepts."""

    def __init__(self, length: int, max_length: int, *, id: str | None = None) -> None:
        """A display for ``length`` to ``max_length`` digits."""
        super().__init__(id=id)
        self.set_reactive(PinDisplay.length, length)
        self.set_reactive(PinDisplay.max_length, max_length)

    def validate_count(self, count: int) -> int:
        """Keep the count within the display."""
        return max(0, min(count, self.max_length))

    def render(self) -> RenderResult:
        """Masks only: the count decides how many of each."""
        masks: list[tuple[str, str]] = []
        for index in range(self.max_length):
            if index < self.count:
                masks.append((FILLED, "$text-accent"))
            elif index < self.length:
                masks.append((REQUIRED, "$foreground-muted"))
            else:
                masks.append((OPTIONAL, "$foreground-muted"))
            masks.append((" ", ""))
        return Content.assemble(*masks[:-1])

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """Nothing in the keypad can be copied."""
        return None
