"""``Siren``: the animated security indicator of the keypad.

Korean payment keypads show a small animated "siren" so a user learns what the real
keypad looks like in motion; a static picture of it (a fake overlay) gives itself away.
Together with the personal security phrase it helps tell the real keypad from a copy.
It carries no secret. With ``TEXTUAL_ANIMATIONS=none`` it stands still, as Textual's own
animated widgets do, so screenshots are stable.
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING, Final

from textual.content import Content
from textual.selection import Selection
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.app import RenderResult

__all__ = ["Siren"]

_LAMP: Final = "━"
_COLORS: Final = ("#ff453a", "#3d8bff")
"""Red and blue, the two lamps of a siren."""
_DIM: Final = "$foreground-muted"
_FRAME_SECONDS: Final = 1 / 10
"""Ten frames a second: visibly alive, cheap to draw."""
_SWEEP_SECONDS: Final = 0.8
"""How long the bright lamp takes to cross the bar once."""


class Siren(Widget):
    """A short bar with a bright lamp sweeping across it, red one way and blue back."""

    ALLOW_SELECT = False

    DEFAULT_CSS = """
    Siren {
        width: 5;
        height: 1;
    }
    """

    def __init__(self, *, mirror: bool = False, id: str | None = None) -> None:
        """A siren.

        Args:
            mirror: Sweep the other way (for the siren on the right of a pair).
            id: The ID of the widget in the DOM.
        """
        super().__init__(id=id)
        self._mirror = mirror
        self._started = monotonic()

    @property
    def animated(self) -> bool:
        """False when the app's animation level is ``"none"``."""
        return self.app.animation_level != "none"

    def on_mount(self) -> None:
        """Start the frames, unless animations are off."""
        self._started = monotonic()
        if self.animated:
            self.auto_refresh = _FRAME_SECONDS

    def render(self) -> RenderResult:
        """The bar at this moment (or the static bar: red half, blue half)."""
        width = max(self.size.width, 1)
        if not self.animated:
            half = width // 2
            parts = [(_LAMP, _COLORS[0 if cell < half else 1]) for cell in range(width)]
            if self._mirror:
                parts.reverse()
            return Content.assemble(*parts)
        sweeps, progress = divmod((monotonic() - self._started) / _SWEEP_SECONDS, 1.0)
        forward = int(sweeps) % 2 == 0
        lit = int(progress * width) if forward else width - 1 - int(progress * width)
        if self._mirror:
            lit = width - 1 - lit
        color = _COLORS[0 if forward else 1]
        return Content.assemble(
            *((_LAMP, f"bold {color}" if cell == lit else _DIM) for cell in range(width))
        )

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """Nothing in the keypad can be copied."""
        return None
