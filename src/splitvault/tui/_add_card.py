"""Add a card: number, expiry and name, checked as they are typed.

The only screen where a full card number is ever on screen: the visitor typing their
own. Once the card is enrolled the form is cleared and the number is never shown again.
"""

from __future__ import annotations

import datetime
import re
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label

from .._card import BRAND_NAMES, Card, brand_of, luhn_valid, normalise_pan
from .._errors import InvalidCard
from ._base import DemoScreen
from ._widgets import ErrorLine

__all__ = ["AddCardScreen", "expiry_hint", "pan_hint"]

_MIN_DIGITS = 12
HOLDER_HINT = "as printed on the card"
_EXPIRY = re.compile(r"([0-9]{2})/([0-9]{2}|[0-9]{4})")


def pan_hint(text: str) -> tuple[str, str]:
    """The live line under the card number: (text, kind) with kind hint/error/ok."""
    digits = text.replace(" ", "")
    if not digits:
        return "12 to 19 digits; spaces are fine", "hint"
    brand = BRAND_NAMES[brand_of(digits)]
    name = "" if brand == "Unknown" else f"{brand} · "
    if len(digits) < _MIN_DIGITS:
        return f"{name}{len(digits)} digits so far", "hint"
    if luhn_valid(digits):
        return f"{name}✓ passes the Luhn check", "ok"
    return f"{name}✗ fails the Luhn check: a digit is mistyped", "error"


def expiry_hint(text: str, today: datetime.date) -> tuple[str, str]:
    """The live line under the expiry."""
    match = _EXPIRY.fullmatch(text.strip())
    if match is None:
        return "MM/YY, as printed on the card", "error" if len(text) >= 5 else "hint"
    month, year = int(match[1]), int(match[2])
    year += 2000 if year < 100 else 0
    if not 1 <= month <= 12:
        return "✗ the month must be 01 to 12", "error"
    if (today.year, today.month) > (year, month):
        return "✗ this card has expired", "error"
    return f"✓ valid through {month:02d}/{year}", "ok"


class AddCardScreen(DemoScreen[str | None]):
    """The card form. Dismisses with the new card's id once it is enrolled."""

    SCREEN_TITLE = "Add a card"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "next", "Continue", priority=True),
    ]

    DEFAULT_CSS = """
    AddCardScreen {
        align-horizontal: center;
        #form { width: 64; height: auto; margin-top: 1; }
        Label { padding: 0 1; text-style: bold; }
        Input { width: 100%; }
        #buttons { height: 3; align-horizontal: right; margin-top: 1; }
        #buttons Button { margin-left: 1; }
    }
    """

    def compose(self) -> ComposeResult:
        yield from self.frame()
        with Vertical(id="form"):
            yield Label("Card number")
            yield Input(placeholder="4111 1111 1111 1111", id="pan", classes="field",
                        restrict=r"[0-9 ]*", max_length=23)
            yield ErrorLine(id="pan-hint")
            yield Label("Expiry")
            yield Input(placeholder="MM/YY", id="expiry", classes="field",
                        restrict=r"[0-9/]*", max_length=7)
            yield ErrorLine(id="expiry-hint")
            yield Label("Name on card")
            yield Input(placeholder="KIM MINSU", id="holder", classes="field", max_length=64)
            yield ErrorLine(id="holder-hint")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Continue", id="next", variant="primary")

    def on_mount(self) -> None:
        self._show("pan", *pan_hint(""))
        self._show("expiry", *expiry_hint("", self.today()))
        self._show("holder", HOLDER_HINT)
        self.query_one("#pan", Input).focus()

    def _show(self, field: str, text: str, kind: str = "hint") -> None:
        """The line under ``field``; an error also turns the field's border red."""
        self.query_one(f"#{field}-hint", ErrorLine).show(text, kind)
        self.query_one(f"#{field}", Input).set_class(kind == "error", "-invalid")

    def _value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    # -- live checks ---------------------------------------------------------------------

    @on(Input.Changed, "#pan")
    def _pan_changed(self, event: Input.Changed) -> None:
        self._show("pan", *pan_hint(event.value))

    @on(Input.Changed, "#expiry")
    def _expiry_changed(self, event: Input.Changed) -> None:
        self._show("expiry", *expiry_hint(event.value, self.today()))

    @on(Input.Changed, "#holder")
    def _holder_changed(self) -> None:
        self._show("holder", HOLDER_HINT)

    @on(Input.Submitted)
    def _field_submitted(self, event: Input.Submitted) -> None:
        # Enter moves on to the next field, and from the last one submits the form.
        if event.input.id == "holder":
            self.action_next()
        else:
            self.focus_next()

    # -- submit --------------------------------------------------------------------------

    def action_next(self) -> None:
        card = self._parse()
        if card is None:
            return
        from ._phrase import PhraseScreen

        self.app.push_screen(PhraseScreen(card), self._enrolled)

    def _parse(self) -> Card | None:
        """The card, or ``None`` with every problem shown under its field and the focus
        on the first one."""
        problems = self._field_problems()
        if not problems:
            try:
                return Card.parse(self._value("pan"), self._value("expiry"),
                                  self._value("holder"), today=self.today())
            except InvalidCard as exc:  # anything the field checks did not foresee
                problems = {_field_of(str(exc)): str(exc)}
        for field, message in problems.items():
            self._show(field, f"✗ {message}", "error")
        first = next(f for f in ("pan", "expiry", "holder") if f in problems)
        self.query_one(f"#{first}", Input).focus()
        return None

    def _field_problems(self) -> dict[str, str]:
        """Each field checked on its own, so all mistakes show at once."""
        problems: dict[str, str] = {}
        try:
            normalise_pan(self._value("pan"))
        except InvalidCard as exc:
            problems["pan"] = str(exc)
        text, kind = expiry_hint(self._value("expiry"), self.today())
        if kind != "ok":
            problems["expiry"] = text.removeprefix("✗ ")
        if not self._value("holder").strip():
            problems["holder"] = "the name on the card is needed"
        return problems

    def _enrolled(self, card_id: str | None) -> None:
        if card_id is None:
            return  # back from the PIN step: the form is still filled in
        for field in ("pan", "expiry", "holder"):
            # The number leaves the screen for good: the wallet only shows the last 4.
            self.query_one(f"#{field}", Input).clear()
        self.dismiss(card_id)

    @on(Button.Pressed, "#next")
    def _next_pressed(self) -> None:
        self.action_next()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_back()


def _field_of(message: str) -> str:
    """Which field an ``InvalidCard`` message is about. The messages are fixed strings
    (``_card.py``) naming the field first, so their opening words decide."""
    if message.startswith("card number"):
        return "pan"
    if message.startswith(("expiry", "card has expired")):
        return "expiry"
    return "holder"
