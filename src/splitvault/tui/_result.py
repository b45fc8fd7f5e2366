"""The result of a payment: approved, declined, wrong PIN, locked, or an error.

Each outcome becomes a ``ResultView`` (plain data, easy to test) and the screen draws
it. Nothing here shows more of the card than the last four digits, and error texts
come from the library's messages, which never contain a secret.

An approved payment on the embedded server also shows its receipt: the server queued
it with the approval (its outbox), the screen has it delivered (``DemoVault.
deliver_receipts``, in a worker) and shows it once the demo's inbox has it, or
"pending" meanwhile, trying again every :attr:`ResultScreen.RECEIPT_RETRY_SECONDS`.
A failing receipt never changes the approval above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static
from textual.worker import Worker

from .._authorization import Authorization, CardSummary
from .._errors import (
    AcquirerUnavailable,
    CardLocked,
    DeviceCloned,
    PaymentInDoubt,
    ServerUnavailable,
    WrongPin,
)
from .._payment import format_amount
from ._base import DemoScreen
from ._receipts import Delivered
from ._vault import CURRENCY
from ._work import Outcome, finished, start

__all__ = ["ResultScreen", "ResultView", "receipt_line", "result_view"]

LOCKED_TEXT = ("Five wrong PINs: the server has locked this card. It stays locked, "
               "across restarts of the app and of the server: the count is kept there, "
               "where a thief with this device cannot reset it. To use it again, "
               "re-enroll it on this device with the card itself and a new PIN.")
CLONED_TEXT = ("The server re-splits the card's shares after every payment. This request "
               "showed shares it has already replaced: it came from a copy of the "
               "device. Refused before the PIN was checked: nothing charged, no guess "
               "spent. The card is now refused to every copy, the real device too, "
               "until it is re-enrolled with the card itself.")


@dataclass(frozen=True)
class ResultView:
    """What the result screen shows."""

    kind: str
    """approved, declined, wrong_pin, locked, cloned or error (also the CSS class)."""
    title: str
    details: tuple[tuple[str, str], ...]
    message: str
    retry: str | None = None
    """Label of the button that tries again, if trying again makes sense."""
    receipt_key: str | None = None
    """An approved payment's idempotency key: its receipt is shown (embedded server)."""


def result_view(outcome: Outcome[Authorization], card: CardSummary, amount: int,
                merchant: str) -> ResultView:
    shown = format_amount(amount, CURRENCY)
    auth, error = outcome.value, outcome.error
    if isinstance(auth, Authorization):
        details = (("Amount", format_amount(auth.amount, auth.currency)),
                   ("Merchant", auth.merchant), ("Card", auth.masked_pan))
        if auth.approved:
            return ResultView("approved", "✓ Approved",
                              (*details, ("Approval code", auth.approval_code or "")),
                              "The two shares met in the server's memory for this one "
                              "payment and were wiped again.",
                              receipt_key=auth.idempotency_key)
        return ResultView("declined", "✗ Declined",
                          (*details, ("Reason", auth.decline_reason or "")),
                          "The acquirer said no. The decline is recorded: retrying this "
                          "payment returns the same answer.")
    base = (("Amount", shown), ("Merchant", merchant), ("Card", card.masked_pan))
    if isinstance(error, WrongPin):
        left = error.attempts_left
        return ResultView("wrong_pin", "Wrong PIN",
                          (*base, ("Attempts left", str(left))),
                          f"The server counted this guess. {left} more wrong "
                          f"PIN{'s' if left != 1 else ''} and the card locks.",
                          retry="Try the PIN again")
    if isinstance(error, CardLocked):
        return ResultView("locked", "Card locked", base, LOCKED_TEXT)
    if isinstance(error, DeviceCloned):
        return ResultView("cloned", "✗ Refused: a copy of this device",
                          (*base, ("Charged", "nothing")), CLONED_TEXT)
    return ResultView("error", "Not paid", base, _error_text(error), retry="Try again")


def _error_text(error: Exception | None) -> str:
    if isinstance(error, ServerUnavailable):
        return ("The share server could not be reached. Trying again sends the same "
                "payment key, so it can never be charged twice.")
    if isinstance(error, AcquirerUnavailable | PaymentInDoubt):
        return str(error).capitalize()
    return f"Something went wrong: {error}" if error is not None else "Unknown outcome"


class ResultScreen(DemoScreen[str | None]):
    """Dismisses with ``"done"`` (back to the wallet) or ``"retry"``."""

    SCREEN_TITLE = "Pay · result"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Try again"),
        Binding("enter", "done", "Done", show=False),
    ]

    RECEIPT_RETRY_SECONDS: ClassVar[float] = 2.0
    """How often a pending receipt is asked for again while the screen is open (the
    outbox itself waits 5 s after a failed delivery, then doubles the wait)."""

    DEFAULT_CSS = """
    ResultScreen {
        align: center middle;
        #panel { width: 60; height: auto; padding: 1 2; border: round $primary;
                 background: $surface; }
        #title { width: 100%; text-align: center; text-style: bold; margin-bottom: 1; }
        #message { margin-top: 1; color: $foreground-muted; }
        #receipt { margin-top: 1; }
        #buttons { width: 60; height: 3; align-horizontal: right; margin-top: 1; }
        #buttons Button { margin-left: 1; }
        &.approved #panel { border: round $success; }
        &.approved #title { color: $text-success; }
        &.declined #panel, &.wrong_pin #panel { border: round $warning; }
        &.declined #title, &.wrong_pin #title { color: $text-warning; }
        &.locked #panel, &.cloned #panel, &.error #panel { border: round $error; }
        &.locked #title, &.cloned #title, &.error #title { color: $text-error; }
    }
    """

    def __init__(self, view: ResultView) -> None:
        super().__init__(classes=view.kind)
        self.view = view

    @property
    def receipt_key(self) -> str | None:
        """The key whose receipt this screen shows, or None (not approved, or remote:
        the remote server's outbox delivers to its own sink)."""
        return None if self.vault.remote else self.view.receipt_key

    def compose(self) -> ComposeResult:
        yield from self.frame()
        with Vertical(id="panel"):
            yield Static(Text(self.view.title), id="title")
            yield Static(_details_table(self.view.details), id="details")
            if self.receipt_key is not None:
                yield Static(_details_table(receipt_line(None)), id="receipt")
            yield Static(Text(self.view.message), id="message")
        with Horizontal(id="buttons"):
            if self.view.retry is not None:
                yield Button(self.view.retry, id="retry", variant="warning")
            yield Button("Done", id="done", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#retry" if self.view.retry else "#done", Button).focus()
        self._deliver_receipt()

    def _deliver_receipt(self) -> None:
        key = self.receipt_key
        if key is None:
            return
        if self.vault.receipt(key) is not None:
            self._show_receipt()
            return
        start(self, "receipt", self.vault.deliver_receipts)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = finished(event)
        if done is not None and done[0] == "receipt":
            self._show_receipt()

    def _show_receipt(self) -> None:
        key = self.receipt_key
        if key is None:
            return
        kept = self.vault.receipt(key)
        self.query_one("#receipt", Static).update(_details_table(receipt_line(kept)))
        if kept is None:
            self.set_timer(self.RECEIPT_RETRY_SECONDS, self._deliver_receipt)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return self.view.retry is not None
        return True

    def action_retry(self) -> None:
        if self.view.retry is not None:
            self.dismiss("retry")

    def action_done(self) -> None:
        self.dismiss("done")

    def action_back(self) -> None:
        self.dismiss(None)  # back to the payment form

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        self.dismiss("retry" if event.button.id == "retry" else "done")


def receipt_line(kept: Delivered | None) -> tuple[tuple[str, str], ...]:
    """The receipt's row: its number in the demo's inbox once delivered, else pending."""
    if kept is None:
        return (("Receipt", "pending: the outbox retries"),)
    return (("Receipt", f"no. {kept.number}, delivered by the outbox"),)


def _details_table(details: tuple[tuple[str, str], ...]) -> Table:
    table = Table.grid(expand=True)
    table.add_column(style="dim")
    table.add_column(justify="right", style="bold")
    for label, value in details:
        table.add_row(label, value)
    return table
