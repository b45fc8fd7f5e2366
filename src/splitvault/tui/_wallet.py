"""The wallet: the enrolled cards, masked, and the way to everything else."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Static
from textual.worker import Worker

from .._authorization import CardSummary
from .._card import BRAND_NAMES
from ._base import DemoScreen
from ._work import finished, start

__all__ = ["ConfirmDelete", "WalletScreen", "card_label"]

INTRO = ("Each card is split in two: one share on this device, one on the server.\n"
         "Neither half is the card: the security lab shows you both.")


def card_label(card: CardSummary) -> str:
    """``Visa •••• 1111``: brand and last four digits, all a screen ever shows."""
    return f"{BRAND_NAMES.get(card.brand, 'Card')} {card.masked_pan}"


class WalletScreen(DemoScreen[None]):
    """The home screen. Escape does nothing here; ``q`` quits (an app binding)."""

    SCREEN_TITLE = "Wallet"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_card", "Add card"),
        Binding("p", "pay", "Pay"),
        Binding("l", "lab", "Security lab"),
        Binding("d", "delete", "Delete"),
        Binding("escape", "back", "Back", show=False),
    ]

    DEFAULT_CSS = """
    WalletScreen {
        #intro { padding: 1 2 0 2; color: $foreground-muted; height: auto; }
        #cards { height: 1fr; margin: 1 2; border: round $primary; }
        #empty { height: 1fr; margin: 1 2; border: round $primary; content-align: center middle;
                 text-align: center; color: $text-secondary; }
        #actions { height: 3; padding: 0 2; }
        #actions Button { margin-right: 1; min-width: 12; }
    }
    """

    _has_cards = False

    def compose(self) -> ComposeResult:
        yield from self.frame()
        yield Static(INTRO, id="intro", markup=False)
        with Vertical(id="body"):
            table: DataTable[str | Text] = DataTable(id="cards", cursor_type="row",
                                                     zebra_stripes=True)
            table.border_title = "Your cards"
            yield table
            yield Static(Content.from_markup("No cards yet: press [b]a[/b] to add one"),
                         id="empty")
        with Horizontal(id="actions"):
            yield Button("Add card", id="add", variant="primary")
            yield Button("Pay", id="pay", variant="success")
            yield Button("Security lab", id="lab")
            yield Button("Delete", id="delete", variant="error")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Card", key="card", width=28)
        table.add_column("Expires", key="expiry", width=8)
        table.add_column(Text("PIN guesses", justify="right"), key="guesses", width=12)
        table.add_column("Status", key="status", width=10)
        self.refresh_cards()

    def on_screen_resume(self) -> None:
        self.refresh_cards()

    # -- the table -----------------------------------------------------------------------

    def refresh_cards(self, select: str | None = None) -> None:
        table = self.query_one(DataTable)
        previous = select or self.selected_card_id
        table.clear()
        for card in self.vault.cards():
            guesses, status = self._state_cells(card.card_id)
            table.add_row(card_label(card), card.expiry, guesses, status, key=card.card_id)
        empty = table.row_count == 0
        self._has_cards = not empty
        table.display = not empty
        self.query_one("#empty").display = empty
        for button_id in ("#pay", "#lab", "#delete"):
            self.query_one(button_id, Button).disabled = empty
        self.refresh_bindings()
        if previous is not None and previous in table.rows:
            table.move_cursor(row=table.get_row_index(previous))
        (self.query_one("#add") if empty else table).focus()

    def _state_cells(self, card_id: str) -> tuple[Text, Text]:
        state = self.vault.card_state(card_id)
        if state is None:
            return Text("kept remotely", justify="right", style="dim"), Text("")
        guesses = Text(f"{state.guesses_used} of {state.guess_limit}", justify="right")
        if state.locked:
            return guesses, Text("locked", style="bold red")
        return guesses, Text("active", style="green")

    @property
    def selected_card_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _selected_card(self) -> CardSummary | None:
        card_id = self.selected_card_id
        return next((c for c in self.vault.cards() if c.card_id == card_id), None)

    # -- actions -------------------------------------------------------------------------

    def action_back(self) -> None:
        """Nothing to go back to from the wallet."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pay", "lab", "delete") and not self._has_cards:
            return None  # shown greyed out in the footer: there is no card yet
        return True

    def action_add_card(self) -> None:
        from ._add_card import AddCardScreen

        self.app.push_screen(AddCardScreen(), self._card_added)

    def _card_added(self, card_id: str | None) -> None:
        if card_id is None:
            return
        self.refresh_cards(select=card_id)
        card = self._selected_card()
        if card is not None:
            self.notify(f"{card_label(card)} added: split between device and server",
                        title="Card added")

    def action_pay(self) -> None:
        from ._pay import PayScreen

        card = self._selected_card()
        if card is not None:
            self.app.push_screen(PayScreen(card))

    def action_lab(self) -> None:
        from ._lab import LabScreen

        card = self._selected_card()
        if card is not None:
            self.app.push_screen(LabScreen(card))

    def action_delete(self) -> None:
        card = self._selected_card()
        if card is not None and not self.demo.busy:
            self.app.push_screen(ConfirmDelete(card), self._confirmed_delete)

    def _confirmed_delete(self, card_id: str | None) -> None:
        if card_id is not None:
            start(self, "delete", lambda: self.vault.delete(card_id))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = finished(event)
        if done is None:
            return
        _, outcome = done
        if outcome.error is not None:
            self.notify(f"Could not delete the card: {outcome.error}", severity="error")
        else:
            self.notify("Both shares destroyed: the card is gone for good", title="Deleted")
        self.refresh_cards()

    @on(DataTable.RowSelected)
    def _row_chosen(self) -> None:
        self.action_pay()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        actions = {"add": self.action_add_card, "pay": self.action_pay,
                   "lab": self.action_lab, "delete": self.action_delete}
        action = actions.get(event.button.id or "")
        if action is not None:
            action()


class ConfirmDelete(ModalScreen[str | None]):
    """Are you sure? Deleting destroys both shares: there is no undo."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Delete"),
        Binding("n,escape", "cancel", "Keep"),
    ]

    DEFAULT_CSS = """
    ConfirmDelete {
        align: center middle;
        #dialog { width: 56; height: auto; padding: 1 2; border: thick $error;
                  background: $surface; }
        #question { margin-bottom: 1; }
        #buttons { height: 3; align-horizontal: right; }
        #buttons Button { margin-left: 1; }
    }
    """

    def __init__(self, card: CardSummary) -> None:
        super().__init__()
        self._card = card

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"Delete {card_label(self._card)}?\n\nBoth shares are destroyed, "
                         "the server's first: nobody can ever open this card again.",
                         id="question", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Keep", id="keep")
                yield Button("Delete (y)", id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#keep").focus()

    def action_confirm(self) -> None:
        self.dismiss(self._card.card_id)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_cancel()
