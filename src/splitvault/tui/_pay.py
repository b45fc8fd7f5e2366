"""Pay: merchant and amount in KRW, then the PIN on the keypad, then the result.

Idempotency is handled for the user: one key per payment attempt, kept while the
same payment is retried (after a wrong PIN or a network error, so a payment that did
go through is never charged twice), and a new one for a new payment.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker

from .._authorization import Authorization, CardSummary
from .._errors import CardLocked, DeviceCloned, InvalidPayment, WrongPin
from .._payment import format_amount, validate_payment
from .._pin import Pin
from ..keypad import SecureKeypad
from ..server import SimulatedAcquirer
from ._amount import check_amount
from ._base import DemoScreen
from ._keypad_screen import KeypadScreen
from ._result import ResultScreen, result_view
from ._vault import CURRENCY
from ._wallet import card_label
from ._widgets import ErrorLine
from ._work import Outcome, finished, start

__all__ = ["PayPinScreen", "PayScreen", "Purchase", "new_idempotency_key"]

DEFAULT_MERCHANT = "Seongsu Coffee Lab"
DEFAULT_AMOUNT = "12000"


def new_idempotency_key() -> str:
    """A fresh key for one payment: random, so two payments never share one."""
    return f"demo-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Purchase:
    """What one idempotency key stands for: this card, this amount, this merchant."""

    card_id: str
    amount: int
    merchant: str


class PayScreen(DemoScreen[None]):
    """The payment form for one card."""

    SCREEN_TITLE = "Pay"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "pay", "Pay", priority=True),
    ]

    DEFAULT_CSS = """
    PayScreen {
        align-horizontal: center;
        #form { width: 64; height: auto; margin-top: 1; }
        #card { padding: 0 1; margin-bottom: 1; text-style: bold; color: $text-primary; }
        Label { padding: 0 1; text-style: bold; }
        #amount-shown { text-align: right; text-style: bold; color: $text-accent; }
        #note { padding: 0 1; margin-top: 1; color: $foreground-muted; }
        #buttons { height: 3; align-horizontal: right; margin-top: 1; }
        #buttons Button { margin-left: 1; }
    }
    """

    def __init__(self, card: CardSummary) -> None:
        super().__init__()
        self._card = card
        self._attempt: tuple[Purchase, str] | None = None

    def compose(self) -> ComposeResult:
        yield from self.frame()
        with Vertical(id="form"):
            yield Static(Content(f"{card_label(self._card)}   expires {self._card.expiry}"),
                         id="card")
            yield Label("Merchant")
            yield Input(DEFAULT_MERCHANT, id="merchant", classes="field", max_length=64)
            yield ErrorLine(id="merchant-hint")
            yield Label(f"Amount in won ({CURRENCY})")
            # No restrict and no max_length: both would drop what was typed without a
            # word; check_amount says what is wrong instead.
            yield Input(DEFAULT_AMOUNT, id="amount", classes="field")
            yield ErrorLine(id="amount-shown")
            yield Static(self._note(), id="note", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Pay with PIN", id="pay", variant="success")

    def _note(self) -> str:
        acquirer = None if self.vault.server is None else self.vault.server.acquirer
        if isinstance(acquirer, SimulatedAcquirer):
            limit = format_amount(acquirer.limit, CURRENCY)
            return f"The simulated acquirer declines payments over {limit}."
        return "Retrying after a network error can never charge you twice."

    def on_mount(self) -> None:
        self._show_amount(DEFAULT_AMOUNT)
        self.query_one("#amount", Input).focus()

    @on(Input.Changed, "#amount")
    def _amount_changed(self, event: Input.Changed) -> None:
        self._show_amount(event.value)

    def _show_amount(self, text: str) -> None:
        check = check_amount(text, CURRENCY)
        error = check.message.startswith("✗")
        self.query_one("#amount-shown", ErrorLine).show(check.message,
                                                         "error" if error else "hint")
        self.query_one("#amount", Input).set_class(error, "-invalid")

    @on(Input.Changed, "#merchant")
    def _merchant_changed(self) -> None:
        self.query_one("#merchant-hint", ErrorLine).show("")

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_pay()

    @on(Button.Pressed, "#pay")
    def _pay_pressed(self) -> None:
        self.action_pay()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_back()

    # -- the flow ------------------------------------------------------------------------

    def action_pay(self) -> None:
        purchase = self._purchase()
        if purchase is None:
            return
        state = self.vault.card_state(self._card.card_id)
        if state is not None and (state.locked or state.cloned):
            # No PIN to ask for: the server would refuse before looking at it.
            error = CardLocked() if state.locked else DeviceCloned()
            self._show_result(purchase, Outcome(error=error))
            return
        self._ask_pin(purchase)

    def _purchase(self) -> Purchase | None:
        check = check_amount(self.query_one("#amount", Input).value, CURRENCY)
        if check.amount is None:
            message = check.message if check.message.startswith("✗") else \
                "✗ type the amount in won: 12000 or 12,000"
            self.query_one("#amount-shown", ErrorLine).show(message, "error")
            self.query_one("#amount", Input).add_class("-invalid")
            self.query_one("#amount", Input).focus()
            return None
        merchant = self.query_one("#merchant", Input).value
        try:
            # The idempotency key is chosen later, per attempt; a placeholder passes here.
            payment = validate_payment(check.amount, CURRENCY, merchant, "check")
        except InvalidPayment as exc:
            field = "amount-shown" if "amount" in str(exc) else "merchant-hint"
            self.query_one(f"#{field}", ErrorLine).show(f"✗ {exc}", "error")
            return None
        return Purchase(self._card.card_id, payment.amount, payment.merchant)

    def _key_for(self, purchase: Purchase) -> str:
        """The same key while the same payment is retried; a new one otherwise."""
        if self._attempt is None or self._attempt[0] != purchase:
            self._attempt = (purchase, new_idempotency_key())
        return self._attempt[1]

    def _ask_pin(self, purchase: Purchase, status: str = "") -> None:
        screen = PayPinScreen(self._card, purchase, self._key_for(purchase), status)
        self.app.push_screen(screen, lambda outcome: self._paid(purchase, outcome))

    def _paid(self, purchase: Purchase, outcome: Outcome[Authorization] | None) -> None:
        if outcome is None:
            return  # cancelled on the keypad
        if isinstance(outcome.value, Authorization) or isinstance(outcome.error,
                                                                  CardLocked | DeviceCloned):
            self._attempt = None  # a recorded result: the next payment is a new one
        self._show_result(purchase, outcome)

    def _show_result(self, purchase: Purchase, outcome: Outcome[Authorization]) -> None:
        view = result_view(outcome, self._card, purchase.amount, purchase.merchant)
        self.app.push_screen(ResultScreen(view),
                             lambda choice: self._after_result(purchase, outcome, choice))

    def _after_result(self, purchase: Purchase, outcome: Outcome[Authorization],
                      choice: str | None) -> None:
        if choice == "retry":
            status = ""
            if isinstance(outcome.error, WrongPin):
                left = outcome.error.attempts_left
                status = f"Wrong PIN: {left} attempt{'' if left == 1 else 's'} left"
            self._ask_pin(purchase, status)
        elif choice == "done":
            self.dismiss(None)


class PayPinScreen(KeypadScreen[Outcome[Authorization] | None]):
    """The keypad for one payment; runs the authorization in a thread worker."""

    SCREEN_TITLE = "Pay · PIN"

    def __init__(self, card: CardSummary, purchase: Purchase, key: str, status: str) -> None:
        super().__init__()
        self._card = card
        self._purchase = purchase
        self._key = key
        self._status = status

    def phrase(self) -> str | None:
        return self.vault.security_phrase(self._card.card_id)

    def on_mount(self) -> None:
        super().on_mount()
        self.prompt(self.prompt_text())
        self.keypad.status = self._status

    def prompt_text(self) -> str:
        amount = format_amount(self._purchase.amount, CURRENCY)
        return f"Pay {amount} to {self._purchase.merchant} with {card_label(self._card)}"

    def on_secure_keypad_submitted(self, event: SecureKeypad.Submitted) -> None:
        event.stop()
        pin: Pin = event.pin
        pay = self.payer()
        card_id, purchase, key = self._card.card_id, self._purchase, self._key

        def job() -> Authorization:
            try:
                return pay(card_id, pin, amount=purchase.amount,
                           merchant=purchase.merchant, idempotency_key=key)
            finally:
                pin.wipe()

        self.begin_work("Proving the PIN to the server: OPRF, then Argon2id on this device…")
        start(self, "authorize", job)

    def payer(self) -> Callable[..., Authorization]:
        """What pays (in the worker): this device; the lab's copy pays with its own."""
        return self.vault.authorize

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        done = finished(event)
        if done is not None:
            self.end_work()
            self.dismiss(done[1])
