"""The acquirer contract v2: ``AcquirerStatus``, the legacy adapter, and the simulated
acquirer's books, deduplication and faults."""

from __future__ import annotations

import dataclasses

import pytest

import splitvault as sv
from splitvault.server._acquirer import authorizer, settler
from support import HOLDER, PAN


@pytest.fixture
def card() -> sv.Card:
    return sv.Card(pan=PAN, expiry="12/30", holder=HOLDER)


def test_status_constructors() -> None:
    assert sv.AcquirerStatus.approved("A1").state == "approved"
    assert sv.AcquirerStatus.approved("A1").approval_code == "A1"
    declined = sv.AcquirerStatus.declined("insufficient funds")
    assert (declined.state, declined.decline_reason, declined.approval_code) == (
        "declined", "insufficient funds", None)
    assert sv.AcquirerStatus.not_found().state == "not_found"
    assert sv.AcquirerStatus.unknown().state == "unknown"
    assert sv.AcquirerStatus.__module__ == "splitvault"
    assert "AcquirerStatus" in sv.__all__


def test_status_is_immutable_and_consistent() -> None:
    status = sv.AcquirerStatus.approved("A1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.state = "declined"  # type: ignore[misc]
    for bad in (("approved", None, None), ("declined", "A1", None), ("not_found", "A1", None),
                ("unknown", None, "r"), ("maybe", None, None)):
        with pytest.raises(ValueError):
            sv.AcquirerStatus(*bad)  # type: ignore[arg-type]


def test_legacy_acquirer_still_authorizes_but_cannot_settle(card: sv.Card) -> None:
    class Legacy:
        def authorize(self, card: sv.Card, amount: int, currency: str, merchant: str) -> str:
            return "OLD1"

    assert authorizer(Legacy())(card, 1, "KRW", "m", "sv-x") == "OLD1"
    assert settler(Legacy()) is None
    assert settler(sv.SimulatedAcquirer()) is not None


def test_books_dedupe_by_reference(card: sv.Card) -> None:
    acq = sv.SimulatedAcquirer()
    first = acq.authorize(card, 500, "KRW", "m", "sv-1")
    assert acq.authorize(card, 500, "KRW", "m", "sv-1") == first  # same answer
    [booking] = acq.statement()
    assert (booking.charges, booking.net, booking.approval_code) == (1, 500, first)
    assert acq.status("sv-1") == sv.AcquirerStatus.approved(first)
    assert acq.status("sv-none") == sv.AcquirerStatus.not_found()
    acq.reverse("sv-1")
    acq.reverse("sv-1")  # idempotent
    acq.reverse("sv-none")  # no-op
    assert acq.booking("sv-1").net == 0 and acq.booking("sv-1").reversed
    assert acq.status("sv-1").state == "declined"
    assert len(acq.calls) == 2 and acq.calls[0].last4 == "1111"
    assert PAN.replace(" ", "") not in repr(acq.statement()) + repr(acq)


def test_approval_codes_are_six_symbols_drawn_uniformly(card: sv.Card) -> None:
    """Six symbols of the unambiguous alphabet (no I, O, 0, 1), each position drawn
    on its own: 2,000 codes use every symbol at every position and repeat almost never."""
    acquirer = sv.SimulatedAcquirer()
    codes = [acquirer.authorize(card, 100, "KRW", "m", f"sv-{n}") for n in range(2000)]
    alphabet = set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    assert all(len(code) == 6 and set(code) <= alphabet for code in codes)
    assert all({code[i] for code in codes} == alphabet for i in range(6))
    assert len(set(codes)) >= 1995  # 2^30 codes: a collision in 2,000 is rare


def test_declines_are_booked(card: sv.Card) -> None:
    acq = sv.SimulatedAcquirer(limit=100)
    with pytest.raises(sv.Declined):
        acq.authorize(card, 101, "KRW", "m", "sv-1")
    assert acq.status("sv-1") == sv.AcquirerStatus.declined("amount over limit")
    assert acq.booking("sv-1").net == 0


@pytest.mark.parametrize(("fault", "raised", "charged"), [
    ("unavailable", sv.AcquirerUnavailable, 0),
    ("timeout", TimeoutError, 500),
    ("lost", ConnectionResetError, 500),
])
def test_scripted_authorize_faults(card: sv.Card, fault: str, raised: type[Exception],
                                   charged: int) -> None:
    acq = sv.SimulatedAcquirer(faults=[fault])
    with pytest.raises(raised):
        acq.authorize(card, 500, "KRW", "m", "sv-1")
    assert sum(b.net for b in acq.statement()) == charged
    assert acq.faults_injected == {f"authorize:{fault}": 1}
    acq.authorize(card, 500, "KRW", "m", "sv-1")  # the script is used up
    assert sum(b.net for b in acq.statement()) == 500


def test_malformed_and_slow(card: sv.Card) -> None:
    slept: list[float] = []
    acq = sv.SimulatedAcquirer(faults=["malformed", "slow"], sleep=slept.append)
    assert acq.authorize(card, 1, "KRW", "m", "sv-1") is None
    assert isinstance(acq.authorize(card, 1, "KRW", "m", "sv-2"), str)
    assert slept == [sv.SimulatedAcquirer.SLOW_SECONDS]


def test_status_and_reverse_faults(card: sv.Card) -> None:
    acq = sv.SimulatedAcquirer(status_faults=["error"], reverse_faults=["error", "lost"])
    acq.authorize(card, 7, "KRW", "m", "sv-1")
    with pytest.raises(ConnectionError):
        acq.status("sv-1")
    with pytest.raises(ConnectionError):
        acq.reverse("sv-1")
    assert acq.booking("sv-1").net == 7  # an error before reversing reverses nothing
    with pytest.raises(TimeoutError):
        acq.reverse("sv-1")
    assert acq.booking("sv-1").net == 0  # a lost reply after reversing did reverse


def test_seeded_faults_are_reproducible(card: sv.Card) -> None:
    def run(seed: int) -> list[str]:
        acq = sv.SimulatedAcquirer(seed=seed, fault_rate=0.5, sleep=lambda s: None)
        out = []
        for i in range(40):
            try:
                acq.authorize(card, 1, "KRW", "m", f"sv-{i}")
                out.append("ok")
            except Exception as exc:
                out.append(type(exc).__name__)
        return out
    assert run(7) == run(7)
    assert run(7) != run(8)
    assert len(set(run(7))) >= 3
