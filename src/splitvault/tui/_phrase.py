"""Choose the security phrase: words of the user's own that every genuine keypad shows.

A fake keypad drawn by malware does not know them, so their absence gives it away.
They are not a secret from the device (stored in its file, in the clear), only from
whoever would draw a fake keypad.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from .._card import Card
from ..hazmat import MAX_PHRASE
from ._base import DemoScreen
from ._widgets import ErrorLine

__all__ = ["PhraseScreen"]

EXPLAIN = ("Pick a few words of your own. The keypad shows them every time it asks for "
           "your PIN: if a keypad ever appears without them, it is not ours. Do not "
           "use your PIN or anything secret.")
KEPT = ("This device's phrase, shown on the keypad for every card. Keep it, or change "
        "it for this card.")
SKIP_WARNING = "✗ it tells our keypad from a fake: Continue again to skip"


class PhraseScreen(DemoScreen[str | None]):
    """Step 2 of adding a card. Dismisses with the card id once enrolled."""

    SCREEN_TITLE = "Add a card · security phrase"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "next", "Continue", priority=True),
    ]

    DEFAULT_CSS = """
    PhraseScreen {
        align-horizontal: center;
        #form { width: 64; height: auto; margin-top: 1; }
        #explain { padding: 0 1; margin-bottom: 1; color: $foreground-muted; }
        Label { padding: 0 1; text-style: bold; }
        #buttons { height: 3; align-horizontal: right; margin-top: 1; }
        #buttons Button { margin-left: 1; }
    }
    """

    def __init__(self, card: Card) -> None:
        super().__init__()
        self._card = card
        self._warned = False

    def compose(self) -> ComposeResult:
        yield from self.frame()
        with Vertical(id="form"):
            kept = self.vault.device_phrase()
            yield Static(EXPLAIN if kept is None else KEPT, id="explain", markup=False)
            yield Label("Security phrase")
            yield Input(kept or "", placeholder="blue otter by the lake", id="phrase",
                        classes="field", max_length=MAX_PHRASE)
            yield ErrorLine(f"up to {MAX_PHRASE} characters; strongly recommended",
                            id="phrase-hint")
            with Horizontal(id="buttons"):
                yield Button("Back", id="back")
                yield Button("Continue to PIN", id="next", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_next(self) -> None:
        from ._set_pin import SetPinScreen

        text = self.query_one(Input).value.strip()
        if text and not text.isprintable():
            self.query_one(ErrorLine).show("✗ only printable characters, please", "error")
            self.query_one(Input).add_class("-invalid")
            return
        if not text and not self._warned:
            # Asked once more: the phrase is what tells the real keypad from a fake.
            self._warned = True
            self.query_one(ErrorLine).show(SKIP_WARNING, "error")
            return
        self.app.push_screen(SetPinScreen(self._card, text or None), self._enrolled)

    def _enrolled(self, card_id: str | None) -> None:
        if card_id is not None:
            self.dismiss(card_id)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_next()

    @on(Button.Pressed, "#next")
    def _next_pressed(self) -> None:
        self.action_next()

    @on(Button.Pressed, "#back")
    def _back_pressed(self) -> None:
        self.action_back()
