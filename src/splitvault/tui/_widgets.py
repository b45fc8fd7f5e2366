"""Small widgets every screen of the demo shares: the brand bar, the busy indicator,
and a line for inline errors."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Horizontal, Vertical
from textual.content import Content
from textual.widgets import ProgressBar, Static

__all__ = ["BrandBar", "ErrorLine", "Working"]

TAGLINE = "the card is never whole anywhere"


class BrandBar(Horizontal):
    """One line at the top: the brand, what the demo shows, and where the server is."""

    DEFAULT_CSS = """
    BrandBar {
        dock: top;
        height: 1;
        width: 100%;
        background: $primary-muted;
        color: $foreground;
        #brand { width: auto; padding: 0 1; text-style: bold; color: $text-primary;
                 background: $primary-muted; }
        #screen-title { width: 1fr; text-style: bold; }
        #mode { width: auto; padding: 0 1; color: $foreground-muted; }
    }
    """

    def __init__(self, title: str, mode: str) -> None:
        super().__init__()
        self._title = title
        self._mode = mode

    def compose(self) -> ComposeResult:
        yield Static(Content("◆ splitvault"), id="brand")
        yield Static(Content(self._title), id="screen-title")
        yield Static(Content(self._mode), id="mode")


class Working(Vertical):
    """Shown while Argon2id and the server work in a thread; the UI keeps running.

    Argon2id cannot report how far it got, so the bar is indeterminate: it says "busy,
    not frozen", which is all a user needs for a fraction of a second.
    """

    DEFAULT_CSS = """
    Working {
        height: auto;
        width: 100%;
        display: none;
        &.-busy { display: block; }
        #working-text { width: 100%; text-align: center; color: $text-accent; }
        ProgressBar { width: auto; }
        Bar { width: 36; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="working-text")
        with Center():  # a Vertical aligns its children as one block: centre the bar alone
            yield ProgressBar(total=None, show_eta=False, show_percentage=False)

    def start(self, text: str) -> None:
        self.query_one("#working-text", Static).update(Content(text))
        self.add_class("-busy")

    def stop(self) -> None:
        self.remove_class("-busy")

    @property
    def busy(self) -> bool:
        return self.has_class("-busy")


class ErrorLine(Static):
    """A line under a field: a hint in muted colour, a problem in red, an OK in green."""

    DEFAULT_CSS = """
    ErrorLine {
        height: 1;
        width: 100%;
        padding: 0 1;
        color: $foreground-muted;
        &.-error { color: $text-error; }
        &.-ok { color: $text-success; }
    }
    """

    def show(self, text: str, kind: str = "hint") -> None:
        """``kind`` is ``"hint"``, ``"error"`` or ``"ok"``. Plain text, never markup."""
        self.update(Content(text))
        self.set_class(kind == "error", "-error")
        self.set_class(kind == "ok", "-ok")

    @property
    def is_error(self) -> bool:
        return self.has_class("-error")
