"""Payment history: this device's own record of one card's payments.

Amount, merchant, time and the approval code or why it was not paid, newest first.
The device keeps it (``Device.history``); the server's ledger holds no amounts in the
clear, so this list is the person's, not the server's.
"""

from __future__ import annotations

import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from .._authorization import CardSummary
from .._payment import format_amount
from ..device import PaymentRecord
from ._base import DemoScreen
from ._wallet import card_label

__all__ = ["HistoryScreen", "outcome_text"]

_OUTCOMES = {"approved": "✓ approved", "declined": "✗ declined", "wrong_pin": "✗ wrong PIN",
             "locked": "✗ card locked"}
_STYLES = {"approved": "green", "declined": "yellow", "wrong_pin": "yellow", "locked": "red"}


def outcome_text(record: PaymentRecord) -> Text:
    """``✓ approved K7Q2ZP``, ``✗ declined: amount over limit``, ``✗ wrong PIN (4 left)``."""
    text = _OUTCOMES.get(record.outcome, record.outcome)
    if record.outcome == "approved" and record.detail:
        text += f" {record.detail}"
    elif record.outcome == "declined" and record.detail:
        text += f": {record.detail}"
    elif record.outcome == "wrong_pin" and record.attempts_left is not None:
        text += f" ({record.attempts_left} left)"
    return Text(text, style=_STYLES.get(record.outcome, ""))


class HistoryScreen(DemoScreen[None]):
    """The card's payments, newest first. Escape goes back to the wallet."""

    SCREEN_TITLE = "Payment history"

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    DEFAULT_CSS = """
    HistoryScreen {
        #lead { padding: 1 2 0 2; height: auto; color: $foreground-muted; }
        #payments { height: 1fr; margin: 1 2; border: round $primary; }
        #payments:focus { border: round $accent; }
        #none { height: 1fr; margin: 1 2; border: round $primary; content-align: center middle;
                color: $text-secondary; }
    }
    """

    def __init__(self, card: CardSummary) -> None:
        super().__init__()
        self._card = card

    def compose(self) -> ComposeResult:
        yield from self.frame()
        yield Static(f"{card_label(self._card)}: what this device recorded of each "
                     "payment. A retry of the same payment shows its last answer.",
                     id="lead", markup=False)
        table: DataTable[str | Text] = DataTable(id="payments", cursor_type="row",
                                                 zebra_stripes=True)
        table.border_title = "Payments, newest first"
        yield table
        yield Static("No payments with this card yet", id="none")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("When", key="when", width=12)
        table.add_column("Merchant", key="merchant", width=18)
        table.add_column(Text("Amount", justify="right"), key="amount", width=14)
        table.add_column("Result", key="result", width=20)
        records = list(reversed(self.vault.history(self._card.card_id)))
        for record in records:
            when = datetime.datetime.fromtimestamp(record.at).strftime("%b %d %H:%M")
            amount = Text(format_amount(record.amount, record.currency), justify="right")
            table.add_row(when, record.merchant, amount, outcome_text(record))
        table.display = bool(records)
        self.query_one("#none").display = not records
        if records:
            table.focus()
