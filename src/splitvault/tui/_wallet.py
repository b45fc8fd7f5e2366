"""The wallet: the enrolled cards, masked, and the way to everything else."""

from __future__ import annotations

import time
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
from ._wipe import ConfirmWipe, data_line
from ._work import finished, start

__all__ = ["ConfirmDelete", "WalletScreen", "card_label", "resplit_label"]

INTRO = ("Each card is split in two: one share on this device, one on the server.\n"
         "Neither half is the card: the security lab shows you both.")
REMOTE_GUESSES = ("* the remote server counts PIN guesses; shown as this device last "
                  "heard them")


def card_label(card: CardSummary) -> str:
    """``Visa •••• 1111``: brand and last four digits, all a screen ever shows."""
    return f"{BRAND_NAMES.get(card.brand, 'Card')} {card.masked_pan}"


def resplit_label(card: CardSummary, now: float | None = None) -> str:
    """``v3 · 14:05``: the card's share version on this device and when it was last
    re-split (the time today, else the date); ``v0 · never`` before its first payment."""
    if card.refreshed_at is None:
        return f"v{card.share_version} · never"
    when = time.localtime(card.refreshed_at)
    today = time.localtime(time.time() if now is None else now)
    shown = (time.strftime("%H:%M", when) if when[:3] == today[:3]
             else time.strftime("%d %b", when))
    return f"v{card.share_version} · {shown}"


class WalletScreen(DemoScreen[None]):
    """The home screen. Escape does nothing here; ``q`` quits (an app binding)."""

    SCREEN_TITLE = "Wallet"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_card", "Add"),
        Binding("p", "pay", "Pay"),
        Binding("h", "history", "History"),
        Binding("c", "change_pin", "PIN"),
        Binding("l", "lab", "Lab"),
        Binding("d", "delete", "Delete"),
        Binding("w", "wipe", "Wipe"),
        Binding("escape", "back", "Back", show=False),
    ]

    can_reenroll: ClassVar[bool] = True
    """Whether the locked-card message offers :meth:`reenroll` (the card itself and a
    new PIN, ``Device.reenroll``). While False it only says what to do."""

    DEFAULT_CSS = """
    WalletScreen {
        #intro { padding: 1 2 0 2; color: $foreground-muted; height: auto; }
        #data { padding: 0 2; color: $foreground-muted; height: 1; text-wrap: nowrap;
                text-overflow: ellipsis; }
        #cards { height: 1fr; margin: 1 2 0 2; border: round $primary; }
        #cards:focus { border: round $accent; }
        #note { padding: 0 2; height: 1; color: $foreground-muted; }
        #empty { height: 1fr; margin: 1 2; border: round $primary; content-align: center middle;
                 text-align: center; color: $text-secondary; }
        #actions { height: 3; padding: 0 2; }
        #actions Button { margin-right: 1; min-width: 9; }
    }
    """

    _has_cards = False

    def compose(self) -> ComposeResult:
        yield from self.frame()
        yield Static(INTRO, id="intro", markup=False)
        yield Static(data_line(self.vault), id="data", markup=False)
        with Vertical(id="body"):
            table: DataTable[str | Text] = DataTable(id="cards", cursor_type="row",
                                                     zebra_stripes=True)
            table.border_title = "Your cards"
            yield table
            yield Static(Content.from_markup(
                "No cards yet: press [b]a[/b] to add one\n\n"
                "[dim]You will choose a security phrase: the keypad shows it every time[/]"),
                id="empty")
        yield Static(REMOTE_GUESSES if self.vault.remote else "", id="note", markup=False)
        with Horizontal(id="actions"):
            yield Button("Add card", id="add", variant="primary")
            yield Button("Pay", id="pay", variant="success")
            yield Button("History", id="history")
            yield Button("Change PIN", id="change-pin")
            yield Button("Lab", id="lab")
            yield Button("Delete", id="delete", variant="error")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # 70 cells with their padding: the table's inside at 80 columns is 74.
        table.add_column("Card", key="card", width=21)
        table.add_column("Expires", key="expiry", width=7)
        table.add_column(Text("PIN guesses", justify="right"), key="guesses", width=11)
        table.add_column("Status", key="status", width=7)
        table.add_column("Re-split", key="resplit", width=14)
        self.refresh_cards()
        self._ask_server()

    def on_screen_resume(self) -> None:
        self.refresh_cards()
        self._ask_server()

    def _ask_server(self) -> None:
        """Remote mode: the server's own count, fetched off the UI thread; the table is
        drawn again when it arrives."""
        if self.vault.remote:
            start(self, "states", self.vault.fetch_states)

    # -- the table -----------------------------------------------------------------------

    def refresh_cards(self, select: str | None = None) -> None:
        table = self.query_one(DataTable)
        previous = select or self.selected_card_id
        table.clear()
        for card in self.vault.cards():
            guesses, status = self._state_cells(card.card_id)
            table.add_row(card_label(card), card.expiry, guesses, status,
                          Text(resplit_label(card), style="dim"), key=card.card_id)
        empty = table.row_count == 0
        self._has_cards = not empty
        table.display = not empty
        self.query_one("#empty").display = empty
        for button_id in ("#pay", "#history", "#change-pin", "#lab", "#delete"):
            self.query_one(button_id, Button).disabled = empty
        self.refresh_bindings()
        if previous is not None and previous in table.rows:
            table.move_cursor(row=table.get_row_index(previous))
        (self.query_one("#add") if empty else table).focus()

    def _state_cells(self, card_id: str) -> tuple[Text, Text]:
        state = self.vault.card_state(card_id)
        limit = self.vault.guess_limit
        # "*": remote, and only as this device last heard it (the server did not answer)
        seen = "*" if self.vault.remote and not self.vault.asked(card_id) else ""
        if state is None:  # remote, and nothing heard since enrolling or a right PIN
            return Text(f"0 of {limit}{seen}", justify="right"), Text("active", style="green")
        guesses = Text(f"{state.guesses_used} of {state.guess_limit}{seen}", justify="right")
        if state.locked:
            return guesses, Text("locked", style="bold red")
        if state.cloned:  # a copy of this device was caught: refused until re-enrolled
            return guesses, Text("copied", style="bold red")
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
        if action in ("pay", "history", "change_pin", "lab", "delete") and not self._has_cards:
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
        if card is None:
            return
        if self._locked(card):
            self.show_locked(card)  # no payment form: the server would refuse the PIN
            return
        self.app.push_screen(PayScreen(card))

    def action_history(self) -> None:
        from ._history import HistoryScreen

        card = self._selected_card()
        if card is not None:
            self.app.push_screen(HistoryScreen(card))

    def action_change_pin(self) -> None:
        from ._change_pin import ChangePinScreen

        card = self._selected_card()
        if card is None:
            return
        if self._locked(card):
            self.show_locked(card)
            return
        self.app.push_screen(ChangePinScreen(card), lambda done: self._pin_changed(card, done))

    def _pin_changed(self, card: CardSummary, done: str | None) -> None:
        if done == "changed":
            self.notify(f"{card_label(card)}: new PIN set. The old one no longer works.",
                        title="PIN changed")
        elif done == "locked":
            self.show_locked(card)

    def _locked(self, card: CardSummary) -> bool:
        """Locked, or refused since a copy of this device was caught: no PIN is asked."""
        state = self.vault.card_state(card.card_id)
        return state is not None and (state.locked or state.cloned)

    def show_locked(self, card: CardSummary) -> None:
        """Why a locked (or copied) card cannot pay and what to do next (also after a
        payment or a PIN change ends in the lock)."""
        from ._locked import LockedScreen

        def chosen(choice: str | None) -> None:
            if choice == "reenroll":
                self.reenroll(card)

        state = self.vault.card_state(card.card_id)
        cloned = state is not None and state.cloned and not state.locked
        self.app.push_screen(LockedScreen(card, can_reenroll=self.can_reenroll,
                                          cloned=cloned), chosen)

    def reenroll(self, card: CardSummary) -> None:
        """The way back for a locked card: its details again, then a new PIN twice
        (``_reenroll.py``)."""
        from ._reenroll import ReenrollCardScreen

        self.app.push_screen(ReenrollCardScreen(card), self._reenrolled)

    def _reenrolled(self, card_id: str | None) -> None:
        if card_id is None:
            return
        self.refresh_cards(select=card_id)
        card = self._selected_card()
        if card is not None:
            self.notify(f"{card_label(card)} re-enrolled: new PIN set, no guesses used. "
                        "The old PIN no longer works.", title="Card unlocked")

    def action_wipe(self) -> None:
        if not self.demo.busy:
            self.app.push_screen(ConfirmWipe(self.vault, len(self.vault.cards())),
                                 self._confirmed_wipe)

    def _confirmed_wipe(self, wipe: bool | None) -> None:
        if wipe:
            start(self, "wipe", self.vault.wipe)

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
        name, outcome = done
        if name == "states":
            if outcome.error is None and outcome.value:
                self.refresh_cards()
            return
        if name == "wipe":
            if outcome.error is not None:
                self.notify(f"Could not wipe everything: {outcome.error}", severity="error")
                return
            self.app.exit(message=f"splitvault demo: wiped {self.vault.data_dir} "
                                  f"({outcome.value} cards deleted on both sides)")
            return
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
                   "history": self.action_history, "change-pin": self.action_change_pin,
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
