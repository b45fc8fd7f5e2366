"""The demo shows the receipt the outbox delivered (issue 11): after an approved payment
the result screen says "pending" until the demo's inbox has it, then shows it; a
receipt service that is down never changes the approval."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from splitvault import Receipt
from splitvault.server import _outbox
from splitvault.tui import DemoApp
from splitvault.tui._receipts import DemoReceipts
from splitvault.tui._result import ResultScreen

from .helpers import (
    APPROVAL_CODE,
    SIZE,
    FixedAcquirer,
    click_button,
    enroll_directly,
    pay,
    screen_text,
    settle,
)

Demo = Callable[..., DemoApp]


class DownInbox(DemoReceipts):
    """The customer's inbox while the receipt service is down (the 2016 incident)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.tries = 0

    def deliver(self, receipt: Receipt) -> None:
        self.tries += 1
        if self.down:
            raise ConnectionError("receipt service unavailable")
        super().deliver(receipt)


async def test_an_approved_payment_shows_its_receipt(demo: Demo) -> None:
    """The receipt on screen is the one the outbox delivered for this payment: its
    authorization is the approval shown; the next payment's is the next one."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await pay(pilot, fast=True)
        screen = app.screen
        assert isinstance(screen, ResultScreen) and screen.view.kind == "approved"
        assert "no. 1, delivered by the outbox" in screen_text(app)
        key = screen.view.receipt_key
        assert key is not None
        kept = app.vault.receipt(key)
        assert kept is not None and kept.number == 1
        assert kept.receipt.authorization.approval_code == APPROVAL_CODE
        assert kept.receipt.authorization.idempotency_key == key
        assert app.vault.server is not None
        assert kept.receipt.reference == app.vault.server.payment_reference(
            app.vault.cards()[0].card_id, key)
        await click_button(pilot, "Done")
        await pay(pilot, fast=True)
        assert "no. 2, delivered by the outbox" in screen_text(app)


async def test_receipt_pending_while_the_receipt_service_is_down(
        demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink raises: the screen says approved, receipt pending; the payment is
    recorded approved and was charged once. Once the sink is back, the screen's retry
    shows the receipt (no new payment, no second charge)."""
    monkeypatch.setattr(_outbox, "RETRY_FIRST", 0.0)  # the outbox may retry at once
    monkeypatch.setattr(ResultScreen, "RECEIPT_RETRY_SECONDS", 0.05)
    inbox, acquirer = DownInbox(), FixedAcquirer()
    app = demo(receipts=inbox, acquirer=acquirer)
    card_id = enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await pay(pilot, fast=True)
        screen = app.screen
        assert isinstance(screen, ResultScreen) and screen.view.kind == "approved"
        text = screen_text(app)
        assert "Approved" in text and APPROVAL_CODE in text
        assert "pending: the outbox retries" in text
        assert inbox.tries >= 1
        key = screen.view.receipt_key
        assert key is not None and app.vault.server is not None
        assert app.vault.server.payment_state(card_id, key) == "approved"

        inbox.down = False
        for _ in range(200):  # until the screen's next retry has run
            if "delivered by the outbox" in screen_text(app):
                break
            await pilot.pause(0.05)
            await settle(pilot)
        assert "no. 1, delivered by the outbox" in screen_text(app)
        assert app.screen is screen and "Approved" in screen_text(app)
        assert acquirer.calls == 1


async def test_no_receipt_line_for_a_decline(demo: Demo) -> None:
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await pay(pilot, amount="2000000", fast=True)
        assert isinstance(app.screen, ResultScreen) and app.screen.view.kind == "declined"
        assert app.screen.view.receipt_key is None
        assert "Receipt" not in screen_text(app)
