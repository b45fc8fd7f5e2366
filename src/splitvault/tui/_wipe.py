"""Where the demo keeps its data, and wiping it: every card deleted (both shares, the
server's first), then the demo's files removed. Asked twice: there is no undo."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ._vault import DemoVault

__all__ = ["ConfirmWipe", "data_line"]


def data_line(vault: DemoVault) -> str:
    """``Data: ~/.local/share/splitvault/demo (device.db, server.db); w wipes it``."""
    names = "device.db" if vault.remote else "device.db, server.db"
    folder = str(vault.data_dir)
    home = str(Path.home())
    if folder.startswith(home + "/"):
        folder = "~" + folder[len(home):]
    return f"Data: {folder} ({names}); w wipes it"


class ConfirmWipe(ModalScreen[bool]):
    """Wipe the demo? Dismisses with True to wipe."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Wipe"),
        Binding("n,escape", "cancel", "Keep"),
    ]

    DEFAULT_CSS = """
    ConfirmWipe {
        align: center middle;
        #dialog { width: 64; height: auto; padding: 1 2; border: thick $error;
                  background: $surface; }
        #question { margin-bottom: 1; }
        #buttons { height: 3; align-horizontal: right; }
        #buttons Button { margin-left: 1; }
    }
    """

    def __init__(self, vault: DemoVault, cards: int) -> None:
        super().__init__()
        self._vault = vault
        self._cards = cards

    def compose(self) -> ComposeResult:
        files = ", ".join(path.name for path in self._vault.data_files()) or "no files yet"
        where = "on the server and here" if self._vault.remote else "on both sides"
        cards = f"{self._cards} card{'' if self._cards == 1 else 's'}"
        with Vertical(id="dialog"):
            yield Static(f"Wipe the demo's data?\n\nDeletes {cards} {where} (both shares: "
                         f"gone for good), then removes its files from\n"
                         f"{self._vault.data_dir}:\n{files}\n\nThe demo quits afterwards.",
                         id="question", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Keep", id="keep")
                yield Button("Wipe (y)", id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#keep").focus()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")
