"""The security lab: what each side holds at rest, side by side, and what an attacker
holding one side can do with it.

The rows come straight from the two SQLite files. The leak scan searched every file of
each side (database, WAL, journal, key file) for the card number and the holder's name
in many encodings right after enrollment, while the card was still in hand; only the
counts were kept. A visitor can also type the card number here to search again: it is
cleared from the field at once and dropped after the search.

Two more screens from here: the re-split and a copy of this device (``s``,
``_resplit_pane.py``), and a card held by three realms, any two of which pay (``t``,
``_realms_screen.py``).
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Input, Static
from textual.worker import Worker

from .._authorization import CardSummary
from .._card import normalise_pan
from .._errors import InvalidCard
from ._atrest import Field, read_device_row, read_server_row
from ._base import DemoScreen
from ._resplit_pane import ResplitScreen
from ._vault import ScanReport, SideScan
from ._wallet import card_label
from ._widgets import ErrorLine
from ._work import finished, start

__all__ = ["LabScreen", "fields_table"]

SERVER_LOOT = ("Each wrapped value starts with that key's 8-byte id (not a reused "
               "nonce); even unwrapped, the share is a one-time pad.")
REMOTE_SERVER = ("The server is remote: its row lives on that machine. It holds the card "
                 "id, the device's public key, a verifier, and the OPRF key and share "
                 "wrapped under its key-encryption key. No card data.")


def fields_table(fields: list[Field]) -> Table:
    """Name, then the value: key material as cyan hex with its size right-aligned,
    plain values using the whole width (a pane is only 36 cells wide at 80 columns)."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    width = max((len(f.value) for f in fields if f.size), default=0)
    for field in fields:
        if field.size:
            value = Text(field.value.ljust(width), style="cyan" if field.secret else "")
            value.append(field.size.rjust(6), style="dim")
        else:
            value = Text(field.value)
        table.add_row(field.name, value)
    return table


def _scan_lines(scan: SideScan | None) -> list[tuple[str, str]]:
    if scan is None:
        return [("Not searched yet: type the card number below.", "dim")]
    files = f"{len(scan.files)} file{'s' if len(scan.files) != 1 else ''}"
    lines = []
    for label, hits in scan.found.items():
        if hits:
            lines.append((f"✗ {label}: FOUND, {hits} matches", "bold red"))
        else:
            lines.append((f"✓ {label}: not in its {files}", "green"))
    return lines


class LabScreen(DemoScreen[None]):
    """Both halves of one card, as stored."""

    SCREEN_TITLE = "Security lab"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Reload"),
        Binding("s", "resplit", "Re-split & copy"),
        Binding("t", "realms", "Realms"),
    ]

    DEFAULT_CSS = """
    LabScreen {
        #lead-row { height: 1; }
        #lead { padding: 0 1; height: 1; width: 1fr; color: $text-primary;
                text-style: bold; }
        #resplit-button, #realms-button { margin-right: 1; }
        #realms-button { min-width: 0; }
        #sides { height: auto; }
        .side { width: 1fr; height: auto; border: round $primary; padding: 0 1; }
        #device-side { border: round $accent; }
        .loot { margin-top: 1; }
        #search { height: 1; padding: 0 1; margin-top: 1; }
        #search-label { width: auto; padding-right: 1; }
        #pan { width: 1fr; margin-right: 1; }
        #search-hint { padding: 0 1; }
        /* Every focus stop shows it: the scroll area by its title line, the compact
           field and button by their colours (they have no border to light up). */
        #body:focus #lead { background: $accent 30%; }
        #pan:focus { background: $accent 30%; }
        #search-button:focus, #resplit-button:focus, #realms-button:focus {
            text-style: bold reverse; }
    }
    """

    def __init__(self, card: CardSummary) -> None:
        super().__init__()
        self._card = card
        self._typed: ScanReport | None = None

    def compose(self) -> ComposeResult:
        yield from self.frame()
        with VerticalScroll(id="body"):
            with Horizontal(id="lead-row"):
                yield Static(Content(f"What each side stores for {card_label(self._card)}"),
                             id="lead")
                yield Button("Re-split & copy (s)", id="resplit-button", compact=True)
                # "Realms" alone: with "(t)" the lead line loses a long brand's last four at 80
                # columns; the footer says t.
                yield Button("Realms", id="realms-button", compact=True)
            with Horizontal(id="sides"):
                with Vertical(id="server-side", classes="side"):
                    yield Static(id="server-row")
                    yield Static(id="server-loot", classes="loot")
                with Vertical(id="device-side", classes="side"):
                    yield Static(id="device-row")
                    yield Static(id="device-loot", classes="loot")
            with Horizontal(id="search"):
                yield Static("Search this device for a card number:" if self.vault.remote
                             else "Search both sides for a card number:", id="search-label")
                yield Input(placeholder="masked, never stored", id="pan", password=True,
                            restrict=r"[0-9 ]*", max_length=23, compact=True)
                yield Button("Search", id="search-button", compact=True)
            yield ErrorLine(id="search-hint")

    def on_mount(self) -> None:
        self.action_reload()
        self._describe_scan()
        self.query_one("#body").focus()

    def on_screen_resume(self) -> None:
        self.action_reload()  # back from the re-split: new shares, maybe a new state

    def action_reload(self) -> None:
        self._show_server()
        self._show_device()

    def action_resplit(self) -> None:
        """The re-split and the copy of this device, on a screen of their own."""
        self.app.push_screen(ResplitScreen(self._card))

    def action_realms(self) -> None:
        """A card over three realms, any two of which pay: stop them and pay."""
        from ._realms_screen import RealmsScreen

        self.app.push_screen(RealmsScreen())

    @on(Button.Pressed, "#resplit-button")
    def _resplit_pressed(self) -> None:
        self.action_resplit()

    @on(Button.Pressed, "#realms-button")
    def _realms_pressed(self) -> None:
        self.action_realms()

    # -- the two sides -------------------------------------------------------------------

    def _scan(self) -> ScanReport | None:
        """The scan made at enrollment, with a typed search's lines in place of the
        ones it searched again (so the holder-name line stays)."""
        first = self.vault.scan_report(self._card.card_id)
        if self._typed is None or first is None:
            return self._typed or first
        return ScanReport(_merged(first.device, self._typed.device),
                          None if first.server is None or self._typed.server is None
                          else _merged(first.server, self._typed.server))

    def _show_server(self) -> None:
        pane = self.query_one("#server-side")
        row, loot = self.query_one("#server-row", Static), self.query_one("#server-loot", Static)
        path = self.vault.server_db
        if path is None:
            pane.border_title = "Server · remote"
            row.update(Text(REMOTE_SERVER, style="dim"))
            loot.display = False
            return
        pane.border_title = f"Server · {path.name} · cards row"
        row.update(fields_table(read_server_row(path, self._card.card_id)))
        scan = self._scan()
        lines = [("If this database leaks:", "bold"),
                 *_scan_lines(None if scan is None else scan.server),
                 (SERVER_LOOT, "")]
        loot.update(_text(lines))

    def _show_device(self) -> None:
        pane = self.query_one("#device-side")
        path = self.vault.device_db
        pane.border_title = f"Device · {path.name} · cards row"
        self.query_one("#device-row", Static).update(
            fields_table(read_device_row(path, self._card.card_id)))
        scan = self._scan()
        lines = [("If this phone is stolen:", "bold"),
                 *_scan_lines(None if scan is None else scan.device),
                 (self._guess_line(), "")]
        self.query_one("#device-loot", Static).update(_text(lines))

    def _guess_line(self) -> str:
        state = self.vault.card_state(self._card.card_id)
        if state is not None and state.locked:
            return "The card is locked: the server answers no more guesses, ever."
        used = 0 if state is None else state.guesses_used
        if self.vault.remote:
            heard = "" if self.vault.asked(self._card.card_id) else ", as last heard"
            return (f"Every PIN guess needs the server: {used} of {self.vault.guess_limit} "
                    f"used{heard}.")
        return ("A thief must ask the server for every PIN guess: "
                f"{used} of {self.vault.guess_limit} used.")

    def _describe_scan(self) -> None:
        scan = self._scan()
        hint = self.query_one("#search-hint", ErrorLine)
        if scan is None:
            hint.show("Not scanned since this card was added: type its number to search.")
            return
        hint.show(f"Every file searched for {scan.device.encodings} byte patterns: "
                  "ASCII, UTF-16, hex, base64, BCD.")

    # -- search for a typed card number --------------------------------------------------

    @on(Input.Submitted, "#pan")
    def _typed_pan(self) -> None:
        self._search()

    @on(Button.Pressed, "#search-button")
    def _search_pressed(self) -> None:
        self._search()

    def _search(self) -> None:
        field = self.query_one("#pan", Input)
        text = field.value
        field.clear()  # off the screen and out of the widget before anything else
        hint = self.query_one("#search-hint", ErrorLine)
        try:
            digits = normalise_pan(text)
        except InvalidCard as exc:
            hint.show(f"✗ {exc}", "error")
            return
        hint.show("Searching…")
        vault = self.vault
        start(self, "scan", lambda: vault.scan_for_pan(digits))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = finished(event)
        if done is None or done[0] != "scan":
            return
        outcome = done[1]
        hint = self.query_one("#search-hint", ErrorLine)
        if not isinstance(outcome.value, ScanReport):
            hint.show(f"✗ search failed: {outcome.error}", "error")
            return
        self._typed = outcome.value
        found = not (outcome.value.device.clean and
                     (outcome.value.server is None or outcome.value.server.clean))
        hint.show("✗ found: see above" if found else
                  "✓ that number is in neither side's files, in any encoding we know",
                  "error" if found else "ok")
        self.action_reload()


def _merged(first: SideScan, again: SideScan) -> SideScan:
    return SideScan(again.files, again.encodings, {**first.found, **again.found})


def _text(lines: list[tuple[str, str]]) -> Text:
    return Text("\n").join(Text(line, style=style) for line, style in lines)
