"""``DemoScreen``: what every screen of the demo has: the brand bar, the footer with
key hints, Escape to go back, and a handle on the vault and the app's settings."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from ._vault import DemoVault
from ._widgets import BrandBar

if TYPE_CHECKING:
    import datetime

    from ._app import DemoApp

__all__ = ["DemoScreen"]

ResultT = TypeVar("ResultT")


class DemoScreen(Screen[ResultT]):
    """Base of the demo's screens. Subclasses yield ``self.frame()`` first in compose."""

    SCREEN_TITLE: ClassVar[str] = ""
    """Shown in the brand bar."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def frame(self) -> ComposeResult:
        yield BrandBar(self.SCREEN_TITLE, self.mode_text)
        yield Footer()

    @property
    def demo(self) -> DemoApp:
        return cast("DemoApp", self.app)

    @property
    def vault(self) -> DemoVault:
        return self.demo.vault

    @property
    def rng(self) -> random.Random | None:
        return self.demo.keypad_rng

    def today(self) -> datetime.date:
        return self.demo.today()

    @property
    def mode_text(self) -> str:
        url = self.vault.server_url
        return "embedded server" if url is None else f"server {url}"

    def action_back(self) -> None:
        if self.demo.busy:
            return  # a worker is using this screen's state; it finishes in a moment
        self.dismiss(None)
