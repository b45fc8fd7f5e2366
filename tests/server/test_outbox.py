"""Side paths never change a payment (issue 11): receipts go through a transactional
outbox, written with the outcome and delivered after it, with retries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import splitvault as sv
from splitvault import SimulatedAcquirer
from splitvault.hazmat import DeviceStore
from support import PAN_DIGITS

T0 = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Sink:
    """A receipt service: down for its first ``failures`` calls (the 2016 incident)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.tries = 0
        self.delivered: list[sv.Receipt] = []

    def deliver(self, receipt: sv.Receipt) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise ConnectionError(f"receipt service unavailable for {receipt}")
        self.delivered.append(receipt)


def _open(tmp_path: Path, clock: Clock, sink: Sink | None,
          acquirer: SimulatedAcquirer) -> tuple[sv.ShareServer, sv.Device]:
    server = sv.ShareServer.open(tmp_path / "s.db", clock=clock, acquirer=acquirer,
                                 receipts=sink)
    device = sv.Device(DeviceStore(tmp_path / "d.db"), server, kdf=sv.KdfProfile.TEST_ONLY,
                       clock=clock)
    return server, device


def _pay(device: sv.Device, card_id: str, pin: sv.Pin, key: str = "order-1"
         ) -> sv.Authorization:
    return device.authorize(card_id, pin, amount=98765, currency="KRW",
                            merchant="Hanbit Books", idempotency_key=key)


@pytest.mark.security
def test_the_2016_incident_receipt_fails_after_the_charge(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """The receipt step raises after the charge: the payment is approved, once, and
    stays approved on every retry; the receipt is delivered on a later try."""
    clock, sink, acquirer = Clock(), Sink(failures=2), SimulatedAcquirer()
    server, device = _open(tmp_path, clock, sink, acquirer)
    card_id = device.enroll(card, pin)
    paid = _pay(device, card_id, pin)
    assert paid.approved
    first = server.deliver_outbox()
    assert (first.delivered, first.failed, first.pending) == (0, 1, 1)
    assert server.payment_state(card_id, "order-1") == "approved"
    assert _pay(device, card_id, pin) == paid  # a retry: the recorded result, no charge
    assert server.deliver_outbox().failed == 0  # backing off: not due yet
    clock.now += 5
    assert server.deliver_outbox().failed == 1  # down again
    clock.now += 9.9
    assert server.deliver_outbox().delivered == 0  # the second wait is 10 s
    clock.now += 0.1
    done = server.deliver_outbox()
    assert (done.delivered, done.failed, done.pending) == (1, 0, 0)
    assert server.deliver_outbox().delivered == 0  # delivered once
    [receipt] = sink.delivered
    assert receipt.authorization == paid
    assert receipt.reference == server.payment_reference(card_id, "order-1")
    booking = acquirer.booking(receipt.reference)
    assert booking is not None and booking.charges == 1 and booking.reversals == 0
    assert len(acquirer.calls) == 1
    server.close()


def test_a_reconciled_payment_gets_its_receipt(tmp_path: Path, card: sv.Card,
                                               pin: sv.Pin) -> None:
    """A timeout after the charge records nothing (in doubt, no receipt); the
    reconciler's settled approval queues the receipt in its own transaction."""
    clock, sink = Clock(), Sink()
    acquirer = SimulatedAcquirer(faults=["timeout"])
    server, device = _open(tmp_path, clock, sink, acquirer)
    card_id = device.enroll(card, pin)
    with pytest.raises(sv.PaymentInDoubt):
        _pay(device, card_id, pin)
    assert server.deliver_outbox().pending == 0
    assert server.reconcile().approved == 1
    assert server.deliver_outbox().delivered == 1
    assert sink.delivered[0].authorization.approved
    assert sink.delivered[0].authorization == _pay(device, card_id, pin)
    server.close()


def test_no_sink_no_outbox(tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """Without a sink nothing is queued (nothing would deliver it)."""
    server, device = _open(tmp_path, Clock(), None, SimulatedAcquirer())
    card_id = device.enroll(card, pin)
    assert _pay(device, card_id, pin).approved
    assert server.deliver_outbox().pending == 0
    server.close()


def test_a_sink_set_later_receives_what_was_queued_after(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    server, device = _open(tmp_path, Clock(), None, SimulatedAcquirer())
    card_id = device.enroll(card, pin)
    sink = Sink()
    server.receipts = sink
    _pay(device, card_id, pin, "k2")
    assert server.deliver_outbox().delivered == 1 and len(sink.delivered) == 1
    server.close()


def test_outbox_rows_hold_nothing_in_clear(tmp_path: Path, card: sv.Card, pin: sv.Pin,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A queued receipt shows no card, amount, merchant, order or reference; the
    sink's error text (which quotes the receipt) is logged nowhere."""
    server, device = _open(tmp_path, Clock(), Sink(failures=1), SimulatedAcquirer())
    card_id = device.enroll(card, pin)
    _pay(device, card_id, pin)
    reference = server.payment_reference(card_id, "order-1")
    with caplog.at_level("DEBUG"):
        assert server.deliver_outbox().failed == 1
    assert "ConnectionError" in caplog.text and "Hanbit" not in caplog.text
    assert "98765" not in caplog.text
    server.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    rows = conn.execute("SELECT * FROM outbox").fetchall()
    conn.close()
    assert len(rows) == 1
    text = repr(rows)
    for needle in (card_id, "98765", "Hanbit", "order-1", str(reference), PAN_DIGITS,
                   "1111"):
        assert needle not in text
    payload = rows[0][2]
    assert b"Hanbit" not in payload and b"98765" not in payload



@pytest.mark.parametrize(("fault", "status", "outcome", "reason"), [
    ("timeout", "unknown", "reversed", "reversed: the acquirer undid the charge"),
    ("dropped", None, "failed", "not charged: the acquirer has no record of it"),
])
def test_a_payment_settled_as_not_charged_gets_its_notice(
        tmp_path: Path, card: sv.Card, pin: sv.Pin, fault: str, status: str | None,
        outcome: str, reason: str) -> None:
    """In doubt, then reconciled as reversed (the books could not say, so it was
    reversed) or failed (not found): the customer, told "in doubt", gets a notice that
    nothing was taken, in the settlement's transaction; the retry that then charges
    gets its own receipt, under the next reference."""
    clock, sink = Clock(), Sink()
    acquirer = SimulatedAcquirer(faults=[fault], status_faults=[status])
    server, device = _open(tmp_path, clock, sink, acquirer)
    card_id = device.enroll(card, pin)
    with pytest.raises(sv.PaymentInDoubt):
        _pay(device, card_id, pin)
    first = server.payment_reference(card_id, "order-1")
    assert server.reconcile().as_dict()[outcome] == 1
    assert server.deliver_outbox().delivered == 1
    [notice] = sink.delivered
    assert (notice.outcome, notice.not_charged, notice.reference) == (outcome, outcome, first)
    assert not notice.authorization.approved
    assert notice.authorization.decline_reason == reason
    assert (notice.authorization.amount, notice.authorization.merchant) == (98765,
                                                                            "Hanbit Books")
    booking = acquirer.booking(first or "")
    assert booking is None or booking.net == 0
    paid = _pay(device, card_id, pin)
    assert paid.approved and server.deliver_outbox().delivered == 1
    receipt = sink.delivered[1]
    assert (receipt.outcome, receipt.authorization) == ("approved", paid)
    assert receipt.reference == server.payment_reference(card_id, "order-1") != first
    server.close()


def test_only_a_decline_can_say_not_charged() -> None:
    from datetime import UTC, datetime

    approved = sv.Authorization(True, "A1", None, "•••• 1111", 1, "KRW", "m", "k",
                                datetime.now(UTC))
    assert sv.Receipt("r", "sv-1", approved).outcome == "approved"
    for bad in ("reversed", "refunded"):
        with pytest.raises(ValueError, match="not charged"):
            sv.Receipt("r", "sv-1", approved, bad)  # type: ignore[arg-type]


def test_a_fraud_rule_decline_gets_its_receipt(tmp_path: Path, card: sv.Card,
                                               pin: sv.Pin) -> None:
    """A payment a fraud rule declines is a recorded result like any other: its receipt
    (a decline, ``risk:`` reason) is queued in the proof's transaction and delivered;
    the acquirer is never called, and a retry gets the same decline, no second receipt."""
    clock, sink = Clock(), Sink()
    acquirer = SimulatedAcquirer()
    rules = sv.RiskRules.from_text('[merchants]\nblocked = ["Hanbit Books"]\n')
    server = sv.ShareServer.open(tmp_path / "s.db", clock=clock, acquirer=acquirer,
                                 receipts=sink, risk=rules)
    device = sv.Device(DeviceStore(tmp_path / "d.db"), server, kdf=sv.KdfProfile.TEST_ONLY,
                       clock=clock)
    card_id = device.enroll(card, pin)
    declined = _pay(device, card_id, pin)
    assert not declined.approved and (declined.decline_reason or "").startswith("risk:")
    assert server.deliver_outbox().delivered == 1
    [receipt] = sink.delivered
    assert receipt.authorization == declined and receipt.reference
    assert _pay(device, card_id, pin) == declined
    assert server.deliver_outbox().delivered == 0 and len(sink.delivered) == 1
    assert acquirer.calls == []
    server.close()
