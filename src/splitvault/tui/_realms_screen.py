"""The lab's realms screen (``t`` in the lab): a card held by three realms, any two of
which pay, each realm's row for it side by side, and the visitor's hand on the power.

Stop one realm (``1``, ``2``, ``3``) and pay (``p``): approved, the other two were
enough. Stop a second and pay: refused with ``ServerUnavailable`` naming the stopped
ones, and the gateway's ledger has no entry for the payment, so nothing was charged.
The deployment, its device and the demo card are the lab's own (``_realms.py``): the
wallet's card and its single share server are not involved.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static
from textual.worker import Worker

from .._errors import ServerUnavailable
from .._payment import format_amount
from ..server import CardState
from ._base import DemoScreen
from ._pay import DEFAULT_AMOUNT, DEFAULT_MERCHANT, new_idempotency_key
from ._realms import DEMO_PIN, REALMS, THRESHOLD, RealmDemo, RealmPayment, RealmRow
from ._vault import CURRENCY
from ._work import finished, start

__all__ = ["RealmsScreen", "payment_lines", "realm_table"]

INTRO = (f"Three realms each hold a share of the card's PIN key and data key; any "
         f"{THRESHOLD} of {REALMS} pay, none sees the card. Its own demo card: Visa •••• 4242, "
         f"PIN {DEMO_PIN}.")
NOTE = "Hashes (4 B) of the stored bytes, each realm's wrapped under its own kek."
FIRST_STEP = "Pay, then stop a realm (1, 2, 3) and pay again; then stop a second."


def _short(card_id: str) -> str:
    return f"{card_id[:8]}…"  # a third of 80 columns: enough to see it is one card


def realm_table(row: RealmRow | None, guess_limit: int) -> Table | Text:
    """One realm's row for the card: names, then the hashes, narrow enough for a third
    of 80 columns."""
    if row is None:
        return Text("No row for the card (yet).", style="dim")
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    guesses = Text(f"{row.unproven} of {guess_limit}")
    if row.locked:
        guesses.append(" locked", style="bold red")
    table.add_row("card", _short(row.card_id))
    table.add_row("guesses", guesses)
    for name, value in (("key share", row.key_share), ("data share", row.data_share),
                        ("verifier", row.verifier), ("device key", row.device_key),
                        ("kek", row.kek)):
        table.add_row(name, Text(value, style="cyan"))
    return table


def payment_lines(payment: RealmPayment, amount: int,
                  counted: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """What a payment did, and what the gateway's ledger says of it; ``counted``: the
    realms holding a guess that no correct PIN has given back yet."""
    stopped = ", ".join(payment.stopped)
    shown = format_amount(amount, CURRENCY)
    auth = payment.authorization
    if payment.approved and auth is not None:
        how = (f"with {stopped} stopped: {REALMS - len(payment.stopped)} realms were enough"
               if payment.stopped else "all three realms running")
        return [(f"✓ Approved {shown}, code {auth.approval_code}; {how}.", "bold green")]
    if auth is not None:
        first = (f"✗ Declined by the acquirer: {auth.decline_reason}.", "bold red")
    elif isinstance(payment.error, ServerUnavailable):
        first = (f"✗ Refused, ServerUnavailable: {payment.error}", "bold red")
    else:
        first = (f"✗ Refused, {type(payment.error).__name__}: {payment.error}", "bold red")
    if payment.ledger is None and payment.acquirer_calls == 0:
        ledger = ("Nothing charged: the gateway's ledger has no entry for "
                  f"{payment.idempotency_key}, and the acquirer was not asked.", "bold")
    else:
        ledger = (f"The gateway's ledger says {payment.ledger or 'nothing'}; the acquirer "
                  f"was asked {payment.acquirer_calls} time(s).", "bold")
    lines = [first, ledger]
    if counted:
        lines.append((f"{', '.join(counted)} counted the guess it evaluated; a correct "
                      "PIN there gives it back.", ""))
    return lines


class RealmsScreen(DemoScreen[None]):
    """Three realms side by side; stop them, pay, and watch what the gateway books."""

    SCREEN_TITLE = "Security lab · realms"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "power(0)", "Realm 1"),
        Binding("2", "power(1)", "Realm 2"),
        Binding("3", "power(2)", "Realm 3"),
        Binding("p", "pay", "Pay"),
    ]

    DEFAULT_CSS = """
    RealmsScreen {
        #intro { padding: 0 1; color: $foreground-muted; }
        #realms { height: auto; }
        .realm { width: 1fr; height: auto; border: round $primary; padding: 0 1; }
        .realm.-stopped { border: round $error; }
        .realm.-stopped .realm-row { color: $foreground-muted; }
        #note { padding: 0 1; color: $foreground-muted; }
        #actions { height: 1; margin-top: 1; }
        #pay { margin: 0 1; }
        #across { width: 1fr; color: $foreground-muted; }
        #result { padding: 0 1; margin-top: 1; height: auto; }
        Button:focus { text-style: bold reverse; }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._payment: RealmPayment | None = None
        self._amount = int(DEFAULT_AMOUNT)
        self._error: str | None = None
        self._across: CardState | str | None = None

    def compose(self) -> ComposeResult:
        yield from self.frame()
        yield Static(INTRO, id="intro", markup=False)
        with Horizontal(id="realms"):
            for i in range(REALMS):
                with Vertical(id=f"realm-{i + 1}", classes="realm"):
                    yield Static(classes="realm-row")
                    yield Button(f"Stop ({i + 1})", id=f"toggle-{i + 1}", compact=True)
        yield Static(NOTE, id="note", markup=False)
        with Horizontal(id="actions"):
            yield Button(f"Pay {format_amount(self._amount, CURRENCY)} (p)", id="pay",
                         compact=True)
            yield Static(id="across")
        yield Static(id="result")

    @property
    def realms(self) -> RealmDemo | None:
        return self.vault.realm_demo

    def on_mount(self) -> None:
        self.query_one("#pay").focus()
        if self.realms is None or self.realms.card_id is None:
            today = self.today()
            start(self, "setup", lambda: self.vault.open_realm_demo(today))
        self.refresh_view()

    # -- actions -------------------------------------------------------------------------

    def action_power(self, index: int) -> None:
        """Stop realm ``index + 1`` if it runs, start it if it is stopped."""
        realms = self.realms
        if realms is None or self.demo.busy:
            return
        realms.toggle(index)
        self.refresh_view()

    def action_pay(self) -> None:
        """Pay with the demo PIN, in a worker; the result shows below the realms."""
        realms = self.realms
        if realms is None or realms.card_id is None or self.demo.busy:
            return
        amount, key = self._amount, new_idempotency_key()
        self._show([(f"Paying with {', '.join(realms.stopped) or 'no realm'} stopped…", "")])
        start(self, "pay", lambda: self._pay(realms, amount, key))

    @staticmethod
    def _pay(realms: RealmDemo, amount: int, key: str) -> tuple[RealmPayment,
                                                                CardState | str]:
        return realms.pay(amount, DEFAULT_MERCHANT, key), realms.card_state()

    @on(Button.Pressed, ".realm Button")
    def _toggle_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id is not None:  # toggle-1 .. toggle-3
            self.action_power(int(event.button.id.rsplit("-", 1)[1]) - 1)

    @on(Button.Pressed, "#pay")
    def _pay_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_pay()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = finished(event)
        if done is None:
            return
        name, outcome = done
        if outcome.error is not None:
            self._error = f"✗ {name}: {outcome.error}"
        elif name == "pay" and isinstance(outcome.value, tuple):
            self._payment, self._across = outcome.value
        elif name == "setup":
            self._across = outcome.value
        self.refresh_view()

    # -- the view ------------------------------------------------------------------------

    def refresh_view(self) -> None:
        realms = self.realms
        ready = realms is not None and realms.card_id is not None
        for i in range(REALMS):
            pane = self.query_one(f"#realm-{i + 1}")
            button = self.query_one(f"#toggle-{i + 1}", Button)
            button.disabled = not ready
            if realms is None:
                pane.border_title = f"realm-{i + 1}"
                self._row(i).update(Text("Starting…", style="dim"))
                continue
            stopped = realms.realms[i].stopped
            pane.set_class(stopped, "-stopped")
            pane.border_title = f"realm-{i + 1} · {'STOPPED' if stopped else 'running'}"
            button.label = f"{'Start' if stopped else 'Stop'} ({i + 1})"
            self._row(i).update(realm_table(realms.row(i), realms.guess_limit))
        self.query_one("#pay", Button).disabled = not ready
        self.query_one("#across", Static).update(self._across_text())
        if self._error is not None:
            self._show([(self._error, "bold red")])
        elif not ready:
            self._show([("Starting three realms and a gateway, enrolling the demo card…", "")])
        elif self._payment is None:
            self._show([(FIRST_STEP, "")])
        else:
            self._show(payment_lines(self._payment, self._amount, self._counted()))

    def _counted(self) -> tuple[str, ...]:
        realms = self.realms
        if realms is None:
            return ()
        rows = [realms.row(i) for i in range(REALMS)]
        return tuple(r.name for r, row in zip(realms.realms, rows, strict=True)
                     if row is not None and row.unproven > 0)

    def _row(self, index: int) -> Static:
        return self.query_one(f"#realm-{index + 1} .realm-row", Static)

    def _across_text(self) -> Text:
        across = self._across
        if across is None:
            return Text("")
        if isinstance(across, str):  # too few realms answer to count
            return Text(f"Across the realms: no count, fewer than {THRESHOLD} answer",
                        style="dim")
        return Text(f"Across the realms: {across.guesses_used} of {across.guess_limit} "
                    "PIN tries used")

    def _show(self, lines: list[tuple[str, str]]) -> None:
        self.query_one("#result", Static).update(
            Text("\n").join(Text(line, style=style) for line, style in lines))
