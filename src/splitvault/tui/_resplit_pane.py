"""The lab's re-split pane: both sides' shares before and after the last payment (as
fingerprints, ``_shares.py``), and a copy of this device that the visitor pays with
after the real one did, to watch it be refused.

The steps, each a button: copy this device (its files, ``_copy.py``), pay with this
device (the usual payment form: the server re-splits both shares), pay with the copy
(the keypad, the visitor's real PIN): ``DeviceCloned``, nothing charged. The server
then refuses the card to the real device too, and the pane offers re-enrollment, the
way back for a locked card (``_reenroll.py``). With a remote server only what this
device can know is shown: its own shares, and the server's version as it answers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static
from textual.worker import Worker

from .._authorization import Authorization, CardSummary
from .._errors import DeviceCloned
from ..server import CardState
from ._base import DemoScreen
from ._pay import DEFAULT_AMOUNT, DEFAULT_MERCHANT, PayPinScreen, Purchase, new_idempotency_key
from ._result import ResultScreen, result_view
from ._shares import ShareView, SideShares
from ._vault import DemoVault
from ._wallet import card_label
from ._work import Outcome, finished, start

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._app import DemoApp

__all__ = ["CopyPinScreen", "ResplitPane", "ResplitScreen", "shares_table"]

FINGERPRINTS = ("Fingerprints: 4 bytes of a hash of each share, never its bytes; "
                "the sealed card is the same ciphertext throughout.")
INTRO = ("Every approved payment re-splits the card like a one-time pad: the device "
         "takes D xor R, the server S xor R, R fresh and never stored. The key D xor S, "
         "and so the sealed card, stay the same; every older share is useless.")
FIRST_STEP = ("Copy this device's files, as a backup, a repair shop or a malicious app "
              "would; then pay with this device; then with the copy, with the right PIN.")


def _cell(side: SideShares | None) -> Text:
    if side is None:
        return Text("(none)", style="dim")
    text = Text(f"v{side.version} ")
    text.append(side.newest or "········", style="cyan")
    return text


def _verdict(changed: bool | None) -> Text:
    if changed is None:
        return Text("")
    return Text("changed", style="yellow") if changed else Text("the same", style="green")


def shares_table(now: ShareView, before: ShareView | None,
                 remote_state: CardState | None = None, *, remote: bool = False) -> Table:
    """One row per share (device, server) and one for the sealed card: as before the
    last approved payment, as now, and whether it changed."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(style="bold", no_wrap=True, width=13)
    table.add_column(no_wrap=True, ratio=1)
    table.add_column(no_wrap=True, ratio=1)
    table.add_column(no_wrap=True, width=8)
    changed = {} if before is None else now.changed_from(before)
    table.add_row("", Text("before last payment", style="dim"), Text("now", style="dim"), "")
    table.add_row("device share",
                  _cell(before.device) if before else Text("no payment yet", style="dim"),
                  _cell(now.device), _verdict(changed.get("device")))
    if remote:
        version = "?" if remote_state is None else f"v{remote_state.share_version}"
        table.add_row("server share", Text("on the server", style="dim"),
                      Text(f"{version} as it answers", style="dim"), "")
    else:
        table.add_row("server share",
                      _cell(before.server) if before else Text(""),
                      _cell(now.server), _verdict(changed.get("server")))
    table.add_row("sealed card", Text(before.sealed, style="cyan") if before else Text(""),
                  Text(now.sealed, style="cyan"), _verdict(changed.get("sealed")))
    return table


def _two_versions(now: ShareView) -> str:
    held = [name for name, side in (("the device", now.device), ("the server", now.server))
            if side is not None and side.keeps_previous]
    if not held:
        return ""
    version = now.device.version
    return (f"{' and '.join(held).capitalize()} still keep{'s' if len(held) == 1 else ''} "
            f"v{version - 1} too, until the next payment shows both hold v{version}.")


class CopyPinScreen(PayPinScreen):
    """The keypad, paying with the lab's copy of this device instead of the device."""

    SCREEN_TITLE = "Lab · pay with the copy"

    def prompt_text(self) -> str:
        return f"The COPY of this device pays {self._purchase.merchant}: type the right PIN"

    def payer(self) -> Callable[..., Authorization]:
        return self.vault.authorize_with_copy


class ResplitPane(Vertical):
    """The shares before and after a payment, and the copy experiment, for one card."""

    DEFAULT_CSS = """
    ResplitPane {
        height: auto; border: round $secondary; padding: 0 1;
        #shares-note, #copy-status { color: $foreground-muted; }
        #copy-buttons { height: 1; margin-top: 1; }
        #copy-buttons Button { margin-right: 2; }
        #copy-buttons Button:focus { text-style: bold reverse; }
        #copy-status { margin-top: 1; }
    }
    """

    def __init__(self, card: CardSummary) -> None:
        super().__init__(id="resplit")
        self._card_id = card.card_id
        self._label = card_label(card)
        self._refused = False
        """The copy's last payment was refused (the result line is shown in red)."""
        self._copy_result: str | None = None

    @property
    def vault(self) -> DemoVault:
        return cast("DemoApp", self.app).vault

    def compose(self) -> ComposeResult:
        yield Static(id="shares")
        yield Static(id="shares-note")
        with Horizontal(id="copy-buttons"):
            yield Button("Copy this device", id="copy", compact=True)
            yield Button("Pay with this device", id="pay-original", compact=True)
            yield Button("Pay with the copy", id="pay-copy", compact=True)
            yield Button("Re-enroll", id="reenroll", compact=True, variant="warning")
        yield Static(id="copy-status")

    def on_mount(self) -> None:
        self.border_title = f"{self._label} · re-split after every payment"
        self.refresh_view()
        if self.vault.remote:
            start(self, "states", self.vault.fetch_states)

    # -- what is shown -------------------------------------------------------------------

    def _state(self) -> CardState | None:
        return self.vault.card_state(self._card_id)

    def _versions(self) -> tuple[int | None, int | None]:
        """This device's share version of the card, and the copy's (None: no copy, or
        it has no such card)."""
        mine = next((c.share_version for c in self.vault.cards()
                     if c.card_id == self._card_id), None)
        copy = self.vault.copy
        theirs = None if copy is None else copy.card(self._card_id)
        return mine, None if theirs is None else theirs.share_version

    def refresh_view(self) -> None:
        vault = self.vault
        now = vault.share_view(self._card_id)
        shares, note = self.query_one("#shares", Static), self.query_one("#shares-note", Static)
        if now is None:
            shares.update(Text("This card is gone from this device.", style="dim"))
            note.update("")
        else:
            shares.update(shares_table(now, vault.shares_before(self._card_id),
                                       self._state(), remote=vault.remote))
            note.update(Text(" ".join(filter(None, (_two_versions(now), FINGERPRINTS)))))
        self._show_copy()

    def _show_copy(self) -> None:
        mine, theirs = self._versions()
        state = self._state()
        refused_everywhere = state is not None and state.cloned and not state.locked
        copy = self.vault.copy
        self.query_one("#copy", Button).label = ("Discard the copy" if copy is not None
                                                 else "Copy this device")
        # Refused everywhere: re-enrolling takes the place of paying (one line at 80).
        self.query_one("#pay-original", Button).display = not refused_everywhere
        # Only once the real device has paid since the copy: the copy is stale then,
        # which is the experiment. (A copy that pays first is the other case: the real
        # device is refused at its next payment; tests/test_resplit.py covers it.)
        stale = mine is not None and theirs is not None and mine > theirs
        self.query_one("#pay-copy", Button).disabled = not stale
        self.query_one("#reenroll", Button).display = refused_everywhere
        lines: list[tuple[str, str]] = []
        if self._copy_result is not None:
            lines.append((self._copy_result, "bold red" if self._refused else "bold"))
        if refused_everywhere:
            lines.append(("The server refuses this card now to every copy of the device, "
                          "this real one too: it cannot tell them apart. Re-enroll it "
                          "with the card itself: that cuts every copy off for good.",
                          "bold"))
        elif copy is None:
            lines.append((FIRST_STEP, ""))
        elif theirs is None:
            lines.append(("The copy was made before this card was added: discard it and "
                          "copy this device again.", ""))
        elif not stale:
            lines.append((f"Copy made at {time.strftime('%H:%M:%S', time.localtime(copy.taken_at))}"
                          f" in a private folder (0700): the card at v{theirs}, as here. "
                          "Now pay with this device: the server re-splits the shares.", ""))
        elif self._copy_result is None:
            lines.append((f"This device is at v{mine}, the copy still at v{theirs}. Now "
                          "pay with the copy, with the right PIN.", ""))
        status = self.query_one("#copy-status", Static)
        status.update(Text("\n").join(Text(line, style=style) for line, style in lines))

    # -- the steps -----------------------------------------------------------------------

    @on(Button.Pressed, "#copy")
    def _copy_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if cast("DemoApp", self.app).busy:
            return
        self._copy_result, self._refused = None, False
        if self.vault.copy is not None:
            self.vault.discard_copy()
            self.refresh_view()
            return
        self.query_one("#copy-status", Static).update("Copying this device's files…")
        start(self, "copy", self.vault.take_copy)

    @on(Button.Pressed, "#pay-original")
    def _pay_original(self, event: Button.Pressed) -> None:
        from ._pay import PayScreen

        event.stop()
        card = self._card()
        if card is not None:
            self._copy_result, self._refused = None, False
            self.app.push_screen(PayScreen(card), lambda _: self.refresh_view())

    @on(Button.Pressed, "#pay-copy")
    def _pay_copy(self, event: Button.Pressed) -> None:
        event.stop()
        card = self._card()
        if card is None or self.vault.copy is None:
            return
        purchase = Purchase(card.card_id, int(DEFAULT_AMOUNT), DEFAULT_MERCHANT)
        before = self.vault.ledger_size()
        screen = CopyPinScreen(card, purchase, new_idempotency_key(), "")
        self.app.push_screen(screen, lambda outcome: self._copy_paid(card, purchase,
                                                                      before, outcome))

    def _copy_paid(self, card: CardSummary, purchase: Purchase, before: int | None,
                   outcome: Outcome[Authorization] | None) -> None:
        if outcome is None:
            return  # cancelled on the keypad
        after = self.vault.ledger_size()
        self._refused = isinstance(outcome.error, DeviceCloned)
        if self._refused:
            ledger = ("" if after is None else
                      f" The server's ledger holds {after} payment{'s' if after != 1 else ''}"
                      f", {'as' if after == before else 'not as'} before it tried.")
            self._copy_result = ("✗ The copy was refused (DeviceCloned) before its PIN was "
                                 f"checked: nothing charged.{ledger}")
        elif isinstance(outcome.value, Authorization) and outcome.value.approved:
            self._copy_result = "✓ The copy paid: this device will be refused next."
        else:
            self._copy_result = f"The copy did not pay: {outcome.error or 'declined'}."
        if self.vault.remote:
            start(self, "states", self.vault.fetch_states)  # the server's word on the card
        view = result_view(outcome, card, purchase.amount, purchase.merchant)
        self.app.push_screen(ResultScreen(view), lambda _: self.refresh_view())

    @on(Button.Pressed, "#reenroll")
    def _reenroll(self, event: Button.Pressed) -> None:
        from ._reenroll import ReenrollCardScreen

        event.stop()
        card = self._card()
        if card is not None:
            self.app.push_screen(ReenrollCardScreen(card), self._reenrolled)

    def _reenrolled(self, card_id: str | None) -> None:
        if card_id is not None:
            self._copy_result, self._refused = None, False
            self.notify("Re-enrolled with a new PIN: every copy of the device is cut off, "
                        "this one pays again.", title="Card back")
        self.refresh_view()

    def _card(self) -> CardSummary | None:
        return next((c for c in self.vault.cards() if c.card_id == self._card_id), None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = finished(event)
        if done is None:
            return
        name, outcome = done
        if name == "copy" and outcome.error is not None:
            self._copy_result = f"Could not copy this device: {outcome.error}"
        self.refresh_view()


class ResplitScreen(DemoScreen[None]):
    """The lab's second screen: the re-split pane for one card (``s`` in the lab)."""

    SCREEN_TITLE = "Security lab · re-split"

    def __init__(self, card: CardSummary) -> None:
        super().__init__()
        self._card = card

    DEFAULT_CSS = """
    ResplitScreen {
        #intro { padding: 0 1; margin-bottom: 1; color: $foreground-muted; }
    }
    """

    def compose(self) -> ComposeResult:
        yield from self.frame()
        yield Static(INTRO, id="intro", markup=False)
        yield ResplitPane(self._card)

    def on_mount(self) -> None:
        self.query_one("#copy").focus()

    def on_screen_resume(self) -> None:
        self.query_one(ResplitPane).refresh_view()  # back from a payment or re-enrollment
