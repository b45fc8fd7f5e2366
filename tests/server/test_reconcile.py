"""Payments in doubt are settled with the acquirer's books; no money stays taken for a
payment reported as failed, and none is taken twice (issue 11)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import splitvault as sv
from splitvault import SimulatedAcquirer
from support import PAN_DIGITS, pay


class UnknownStatus(SimulatedAcquirer):
    """An acquirer whose books cannot say (the status inquiry answers "unknown")."""

    def status(self, reference: str) -> sv.AcquirerStatus:
        return sv.AcquirerStatus.unknown()


class MalformedStatus(SimulatedAcquirer):
    def status(self, reference: str) -> sv.AcquirerStatus:
        return "approved"  # type: ignore[return-value]  # the fault under test


class Legacy:
    """An acquirer written against 0.1.0: four-argument authorize, no status/reverse."""

    def __init__(self) -> None:
        self.calls = 0

    def authorize(self, card: sv.Card, amount: int, currency: str, merchant: str) -> str:
        self.calls += 1
        raise TimeoutError("gateway timeout for card " + card.pan)


def _events(server: sv.ShareServer) -> Counter[str]:
    return Counter(e["event"] for e in server.audit_entries())


def test_in_doubt_names_the_exception_type_never_its_text(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """The first in-doubt answer says which exception the acquirer raised; its text
    (here: the PAN) appears nowhere. A retry is in doubt too and calls nobody."""
    server.acquirer = Legacy()
    with pytest.raises(sv.PaymentInDoubt) as first:
        pay(device, card_id, pin)
    assert "TimeoutError" in str(first.value)
    assert PAN_DIGITS not in str(first.value) and "gateway" not in str(first.value)
    assert first.value.__cause__ is None and first.value.__context__ is None
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    assert server.acquirer.calls == 1  # type: ignore[attr-defined]


def test_malformed_approval_is_in_doubt_and_named(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    server.acquirer = SimulatedAcquirer(faults=["malformed"])
    with pytest.raises(sv.PaymentInDoubt) as err:
        pay(device, card_id, pin)
    assert "malformed" in str(err.value) and "NoneType" in str(err.value)


@pytest.mark.parametrize("fault", ["timeout", "lost", "malformed"])
def test_charged_then_answer_lost_reconciles_to_approved(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin, fault: str
) -> None:
    """Money taken, answer lost: reconcile asks the books and records approved; a retry
    then gets the approval, with the acquirer's code, and nothing is charged again."""
    acquirer = SimulatedAcquirer(faults=[fault])
    server.acquirer = acquirer
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    assert server.payment_state(card_id, "order-1") == "in_doubt"
    report = server.reconcile()
    assert (report.examined, report.approved, report.left) == (1, 1, 0)
    auth = pay(device, card_id, pin)
    [booking] = acquirer.statement()
    assert auth.approved and auth.approval_code == booking.approval_code
    assert (auth.amount, auth.merchant, auth.masked_pan) == (12000, "Gift Shop", "•••• 1111")
    assert booking.charges == 1 and booking.net == 12000 and len(acquirer.calls) == 1
    assert server.reconcile().examined == 0
    assert _events(server)["reconciled"] == 1


def test_not_found_fails_and_the_retry_charges_once_under_a_new_reference(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """The acquirer never saw it (the request was lost on the way): failed; the next
    retry charges once, under the next attempt's reference."""

    class LostOnTheWay(SimulatedAcquirer):
        def authorize(self, *args: object, **kwargs: object) -> str:
            if not self.calls:
                self.calls.append(None)  # type: ignore[arg-type]  # counted, not booked
                raise OSError("request lost")
            return super().authorize(*args, **kwargs)  # type: ignore[arg-type]

    acquirer = LostOnTheWay()
    server.acquirer = acquirer
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    first_ref = server.payment_reference(card_id, "order-1")
    assert server.reconcile().failed == 1
    assert server.payment_state(card_id, "order-1") == "failed"
    auth = pay(device, card_id, pin)
    second_ref = server.payment_reference(card_id, "order-1")
    assert auth.approved and second_ref != first_ref
    assert acquirer.booking(first_ref) is None
    assert acquirer.booking(second_ref).net == 12000
    assert pay(device, card_id, pin) == auth  # settled: the recorded result again
    assert len(acquirer.calls) == 2


def test_unknown_status_is_reversed_then_the_retry_charges_once(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """The books cannot say: reverse, record reversed (not charged), audit both; the
    retry charges once under a new reference; net taken is exactly the amount."""
    acquirer = UnknownStatus(faults=["timeout"])
    server.acquirer = acquirer
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    first_ref = server.payment_reference(card_id, "order-1")
    report = server.reconcile()
    assert report.reversed == 1 and report.settled == 1
    assert server.payment_state(card_id, "order-1") == "reversed"
    assert acquirer.booking(first_ref).net == 0
    events = _events(server)
    assert events["reversed"] == 1 and events["reconciled"] == 1
    auth = pay(device, card_id, pin)
    assert auth.approved
    assert sum(b.net for b in acquirer.statement()) == 12000
    assert all(b.charges == 1 for b in acquirer.statement())


def test_malformed_status_is_treated_as_unknown(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    acquirer = MalformedStatus(faults=["lost"])
    server.acquirer = acquirer
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    assert server.reconcile().reversed == 1
    assert sum(b.net for b in acquirer.statement()) == 0


def test_declined_status_records_the_decline(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    class DeclinedInBooks(SimulatedAcquirer):
        def status(self, reference: str) -> sv.AcquirerStatus:
            return sv.AcquirerStatus.declined("insufficient funds")

    server.acquirer = DeclinedInBooks(faults=["lost"])
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    assert server.reconcile().declined == 1
    auth = pay(device, card_id, pin)
    assert not auth.approved and auth.decline_reason == "insufficient funds"
    assert auth.amount == 12000


def test_status_or_reverse_errors_leave_it_in_doubt_until_next_run(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    acquirer = UnknownStatus(faults=["timeout"], reverse_faults=["error"])
    server.acquirer = acquirer
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    report = server.reconcile()
    assert (report.errors, report.settled) == (1, 0)
    assert server.payment_state(card_id, "order-1") == "in_doubt"
    with pytest.raises(sv.PaymentInDoubt):  # still never charged again
        pay(device, card_id, pin)
    assert server.reconcile().reversed == 1
    plain = SimulatedAcquirer(faults=["timeout"], status_faults=["error"])
    server.acquirer = plain
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin, key="order-2")
    assert server.reconcile().errors == 1
    assert server.reconcile().approved == 1


def test_legacy_acquirer_is_reported_manual(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """A 0.1.0 acquirer cannot be asked: its payments stay in doubt, counted manual."""
    server.acquirer = Legacy()
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    report = server.reconcile()
    assert (report.manual, report.settled, report.left) == (1, 0, 1)
    assert server.payment_state(card_id, "order-1") == "in_doubt"


def test_dry_run_counts_and_changes_nothing(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    server.acquirer = SimulatedAcquirer(faults=["timeout"])
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    assert server.reconcile(dry_run=True).manual == 1
    assert server.payment_state(card_id, "order-1") == "in_doubt"


def test_report_is_logged_and_holds_counts_only(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.acquirer = SimulatedAcquirer(faults=["timeout"])
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    with caplog.at_level(logging.INFO, logger="splitvault.reconcile"):
        report = server.reconcile()
    assert "1 approved" in caplog.text and str(report) in caplog.text
    for text in (caplog.text, repr(report), str(report.as_dict())):
        assert PAN_DIGITS not in text and "1111" not in text and "Gift Shop" not in text
        assert "12000" not in text and card_id not in text


def test_original_worker_cannot_record_after_a_reconciler_claims(
    tmp_path: Path, card: sv.Card, pin: sv.Pin
) -> None:
    """A worker whose acquirer answers after its lease ran out and reconciliation began
    cannot overwrite the reconciler's outcome: the customer is told in doubt, and the
    books and the ledger agree."""
    offset = [0.0]
    reports: list[object] = []

    class SlowBeyondLease(SimulatedAcquirer):
        def authorize(self, card: sv.Card, amount: int, currency: str, merchant: str,
                      reference: str | None = None) -> str:
            code = super().authorize(card, amount, currency, merchant, reference)
            offset[0] += 60  # the lease has long expired when the answer comes back
            reports.append(server.reconcile())
            return code

    acquirer = SlowBeyondLease()
    server = sv.ShareServer.open(tmp_path / "s.db", acquirer=acquirer,
                                 clock=lambda: time.time() + offset[0])
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    try:
        card_id = device.enroll(card, pin)
        with pytest.raises(sv.PaymentInDoubt):
            pay(device, card_id, pin)
        assert reports[0].approved == 1  # type: ignore[attr-defined]
        assert server.payment_state(card_id, "order-1") == "approved"
        assert sum(b.net for b in acquirer.statement()) == 12000
        assert pay(device, card_id, pin).approved
    finally:
        device.close()
        server.close()


def test_cli_reconcile_counts_then_settles_with_the_acquirer(
    tmp_path: Path, card: sv.Card, pin: sv.Pin, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``splitvault reconcile`` without --acquirer only counts (a made-up acquirer's
    empty books would call everything not found); with it, settles."""
    from splitvault.cli import main

    db = tmp_path / "s.db"
    server = sv.ShareServer.open(db, acquirer=SimulatedAcquirer(faults=["timeout"]))
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    device.close()
    server.close()
    args = ["reconcile", "--db", str(db), "--kek-file", f"{db}.kek"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 manual" in out and "--acquirer" in out
    (tmp_path / "gateway_for_test.py").write_text(
        "import splitvault as sv\n"
        "class Gateway:\n"
        "    def authorize(self, card, amount, currency, merchant, reference): return 'X'\n"
        "    def status(self, reference): return sv.AcquirerStatus.unknown()\n"
        "    def reverse(self, reference): return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main([*args, "--acquirer", "gateway_for_test:Gateway", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reversed"] == 1 and report["left"] == 0
    assert main([*args, "--acquirer", "nowhere"]) == 2
    with sv.ShareServer.open(db) as reopened:
        assert reopened.payment_state(card_id, "order-1") == "reversed"


def test_background_reconciliation_runs_and_stops() -> None:
    import logging

    from splitvault.server._periodic import every, interval

    def background(job: Callable[[], None], seconds: float) -> Callable[[], None]:
        return every(job, seconds, thread="reconcile", what="reconciliation",
                     log=logging.getLogger("splitvault.reconcile"))

    def reconcile_every(value: str) -> float:
        return interval(value, "--reconcile-every")

    runs: list[int] = []
    done = threading.Event()

    def run() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("database gone")  # logged, and the loop goes on
        done.set()
    stop = background(run, 0.01)
    assert done.wait(10)
    stop()
    count = len(runs)
    done.clear()
    assert not done.wait(0.05) and len(runs) == count  # stopped for good
    assert reconcile_every("0") == 0 and reconcile_every("2.5") == 2.5
    for bad in ("-1", "soon", "nan", "inf"):
        with pytest.raises(sv.ConfigurationError):
            reconcile_every(bad)


def test_serve_has_reconcile_every() -> None:
    import argparse

    from splitvault.server._serve import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--reconcile-every", "5"]).reconcile_every == "5"
    assert float(parser.parse_args([]).reconcile_every) > 0


def test_unavailable_on_a_later_attempt_never_reuses_a_reversed_reference(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """Found by the invariant test: reversed, then the retry's acquirer is unavailable;
    the next retry must move on to a third reference, never charge the first again."""
    acquirer = UnknownStatus(faults=["timeout", "unavailable"])
    server.acquirer = acquirer
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    assert server.reconcile().reversed == 1
    with pytest.raises(sv.AcquirerUnavailable):
        pay(device, card_id, pin)
    assert server.payment_state(card_id, "order-1") == "failed"
    assert pay(device, card_id, pin).approved
    assert all(b.charges == 1 for b in acquirer.statement())
    assert sum(b.net for b in acquirer.statement()) == 12000
