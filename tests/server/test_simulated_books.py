"""The simulated acquirer's books on disk (``books=``, ``--simulated-books``): they
survive the process, are shared by every process that opens them, and a booking its
writer did not finish never happened."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import splitvault as sv
from splitvault.server._simulated import simulated_acquirer
from support import HOLDER, PAN


@pytest.fixture
def card() -> sv.Card:
    return sv.Card(pan=PAN, expiry="12/30", holder=HOLDER)


def test_books_survive_a_new_acquirer_over_the_same_file(card: sv.Card,
                                                          tmp_path: Path) -> None:
    """What one acquirer booked, a fresh one over the file knows: charged, reversed,
    declined; and a retry of a charged reference is still not a second charge."""
    path = tmp_path / "books.jsonl"
    first = sv.SimulatedAcquirer(limit=1000, books=path)
    code = first.authorize(card, 500, "KRW", "m", "sv-1")
    first.authorize(card, 700, "KRW", "m", "sv-2")
    first.reverse("sv-2")
    with pytest.raises(sv.Declined):
        first.authorize(card, 5000, "KRW", "m", "sv-3")
    again = sv.SimulatedAcquirer(limit=1000, books=path)
    assert again.statement() == first.statement()
    assert again.status("sv-1") == sv.AcquirerStatus.approved(code)
    assert again.authorize(card, 500, "KRW", "m", "sv-1") == code
    assert again.booking("sv-1").charges == 1  # type: ignore[union-attr]
    assert again.booking("sv-2").net == 0  # type: ignore[union-attr]
    assert again.status("sv-3") == sv.AcquirerStatus.declined("amount over limit")
    assert PAN.replace(" ", "") not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600


def test_two_acquirers_over_one_file_book_as_one(card: sv.Card, tmp_path: Path) -> None:
    """Two processes' acquirers (a server and an operator's reconcile) see each other's
    bookings at once: a charge by one is deduplicated by the other, a reversal by the
    other is seen by the first."""
    path = tmp_path / "books.jsonl"
    server, operator = sv.SimulatedAcquirer(books=path), sv.SimulatedAcquirer(books=path)
    code = server.authorize(card, 500, "KRW", "m", "sv-1")
    assert operator.authorize(card, 500, "KRW", "m", "sv-1") == code
    operator.reverse("sv-1")
    assert server.status("sv-1").state == "declined"
    [booking] = server.statement()
    assert (booking.charges, booking.reversals, booking.net) == (1, 1, 0)


def test_a_booking_killed_mid_write_never_happened(card: sv.Card, tmp_path: Path) -> None:
    """A last line without its newline (its writer was killed in the write): cut off,
    and the reference is not found; the next booking follows the last whole line."""
    path = tmp_path / "books.jsonl"
    acq = sv.SimulatedAcquirer(books=path)
    acq.authorize(card, 500, "KRW", "m", "sv-1")
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"amount":700,"code":"ABC')
    after = sv.SimulatedAcquirer(books=path)
    assert after.status("sv-2") == sv.AcquirerStatus.not_found()
    assert path.read_bytes() == whole
    after.authorize(card, 900, "KRW", "m", "sv-3")
    assert [b.reference for b in sv.SimulatedAcquirer(books=path).statement()] == [
        "sv-1", "sv-3"]


def test_a_damaged_line_is_refused(card: sv.Card, tmp_path: Path) -> None:
    path = tmp_path / "books.jsonl"
    sv.SimulatedAcquirer(books=path).authorize(card, 500, "KRW", "m", "sv-1")
    with path.open("ab") as f:
        f.write(b'{"op":"refund","ref":"sv-1"}\n')
    with pytest.raises(sv.ConfigurationError, match="damaged at byte"):
        sv.SimulatedAcquirer(books=path).statement()


def test_a_charge_is_on_disk_before_the_answer(card: sv.Card, tmp_path: Path) -> None:
    """kill -9 of a process right after its acquirer answered: the charge is in the
    books another process reads (the answer left only after the fsync)."""
    path = tmp_path / "books.jsonl"
    script = textwrap.dedent(f"""
        import os, signal, splitvault as sv
        acq = sv.SimulatedAcquirer(books={str(path)!r})
        card = sv.Card(pan={PAN!r}, expiry="12/30", holder={HOLDER!r})
        print(acq.authorize(card, 500, "KRW", "m", "sv-1"), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == -9, done.stderr
    assert sv.SimulatedAcquirer(books=path).status("sv-1") == sv.AcquirerStatus.approved(
        done.stdout.strip())


@pytest.mark.parametrize("faults", ["7", "x:0.1", "7:1.5", "7:nan", ":0.2"])
def test_fault_options_are_checked(faults: str) -> None:
    with pytest.raises(sv.ConfigurationError, match="SEED:RATE"):
        simulated_acquirer(None, faults)


def test_fault_options(tmp_path: Path) -> None:
    assert simulated_acquirer(None, None) is None
    acq = simulated_acquirer(str(tmp_path / "b.jsonl"), "7:0.25")
    assert acq is not None and acq._rate == 0.25
