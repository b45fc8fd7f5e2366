"""The money invariant with kill -9 (issue 11's subprocess variant): a real ``splitvault
serve`` over SQLite or PostgreSQL, its simulated acquirer's books in a file that
survives the kill (``--simulated-books``) and seeded acquirer faults of every kind
(``--simulated-faults``), killed at seeded random points while devices pay and retry,
restarted and retried while the server's own reconciliation settles; then killed for
good in the middle of a last burst of payments, and settled by the operator's
``splitvault reconcile``. Per idempotency key the books must show 0 or
exactly the amount taken, the amount iff the ledger says approved, nothing in doubt,
and no reference charged twice (``_attack.money.verify``). ``pytest -s`` shows counts.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from http_support import PIN, ServerProcess

import splitvault as sv
from pg_support import require_postgres, temporary_database
from splitvault._attack.money import Schedule, verify

pytestmark = [pytest.mark.security, pytest.mark.slow]

SEED = 1111
PAYMENTS = 80
"""Fewer than the in-process test's 1,000: each kill costs a server start."""
KILLS = 4
"""Kills with a restart after each; then one more, and a last one for good."""
LAST_BURST = 16
"""Payments sent just before the last kill (also checked)."""
DEVICES = 3
FAULTS = 0.15
"""Acquirer faults per call: enough that some payment is with the acquirer or in doubt
at most kills."""
AMOUNTS = (1_000, 12_000, 55_500, 990_000, 1_500_000)  # the last is over the limit
PANS = ("4111 1111 1111 1111", "5555 5555 5555 4444", "4012 8888 8888 1881")
UNSETTLED = ("in_doubt", "pending", "settling")
Order = tuple[str, str, int, bool]


@dataclass
class Run:
    """What one run did and saw."""

    payments: int
    attempts: int = 0
    kills: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    told: dict[tuple[str, str], str] = field(default_factory=dict)
    doubted: set[str] = field(default_factory=set)
    """Keys a device was told were in doubt, at any point."""
    left_for_operator: int = 0
    """Keys unsettled when the server died for good (``splitvault reconcile`` settles)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, device: sv.Device, order: Order) -> str:
        card_id, key, amount, _ = order
        try:
            with sv.Pin.from_digits(PIN) as pin:
                auth = device.authorize(card_id, pin, amount=amount, currency="KRW",
                                        merchant="Gift Shop", idempotency_key=key)
            answer = "approved" if auth.approved else "declined"
        except sv.AcquirerUnavailable:
            answer = "not charged"
        except sv.PaymentInDoubt:
            answer = "in doubt"
        except sv.ServerUnavailable:
            answer = "unreachable"  # killed, restarting, or "still being processed"
        with self.lock:
            self.attempts += 1
            self.answers[answer] += 1
            self.told[(card_id, key)] = answer
            if answer == "in doubt":
                self.doubted.add(key)
        return answer


def final(answer: str | None) -> bool:
    return answer in ("approved", "declined")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The server's database: a SQLite file, or a fresh PostgreSQL database (skipped
    with one line when none answers; required under SPLITVAULT_REQUIRE_POSTGRES=1)."""
    if request.param == "sqlite":
        yield str(tmp_path / "srv" / "server.db")
        return
    require_postgres()
    with temporary_database() as url:
        yield url


def run_with_kills(root: Path, db: str, *, payments: int = PAYMENTS, kills: int = KILLS,
                   seed: int = SEED, faults: float = FAULTS) -> tuple[Run, Schedule]:
    """Pay ``payments`` orders through ``kills`` kill -9s and restarts, retry, settle,
    check. Returns what was done and the check's findings."""
    rng = random.Random(seed)
    books = root / "books.jsonl"
    server = ServerProcess(root / "srv")
    server.db = db  # type: ignore[assignment]  # a path or a postgresql:// URL
    base = ["--profile", "test-only", "--simulated-books", str(books)]
    starts = 0

    def start(every: str = "0.5", rate: float = faults) -> None:
        nonlocal starts
        # A new fault schedule each start: one process's schedule dies with it.
        server.args = [*base, "--reconcile-every", every,
                       "--simulated-faults", f"{seed * 100 + starts}:{rate}"]
        starts += 1
        server.start()

    start()
    run = Run(payments)
    devices = [sv.Device.open(root / "device.db", server=server.url,
                              kdf=sv.KdfProfile.TEST_ONLY, timeout=5.0)
               for _ in range(DEVICES)]
    try:
        with sv.Pin.from_digits(PIN) as pin:
            cards = [devices[0].enroll(sv.Card(pan, "12/30", "KIM MINSU"), pin)
                     for pan in PANS]
        orders: list[Order] = [(cards[i % len(cards)], f"order-{seed}-{i}",
                                rng.choice(AMOUNTS), rng.random() < 0.1)
                               for i in range(payments + LAST_BURST)]
        pay_under_kills(run, server, start, devices, orders[:payments], rng, kills)
        retry_until_settled(run, devices[0], orders[:payments])
        server.kill()  # and back without reconciling, faults at every other call:
        run.kills += 1
        start("0", 0.5)
        die_for_good(run, server, devices, orders[payments:], rng)
        db_states = settle_offline(server, books, orders)
        with server.inspect() as inspector:
            found = Schedule(seed, len(orders), attempts=run.attempts)
            found.in_doubt_before = len(run.doubted)
            run.left_for_operator = sum(s in UNSETTLED for s in db_states[0].values())
            states = {key: inspector.payment_state(card_id, key)
                      for card_id, key, _, _ in orders}
            found.in_doubt_after = sum(s in UNSETTLED for s in states.values())
            acquirer = sv.SimulatedAcquirer(books=books)
            verify(inspector, acquirer, orders, states, run.told, found)
            found.reversals = sum(b.reversals for b in acquirer.statement())
            inspector.verify_audit()
        print(f"seed {seed}: {len(orders)} payments ({run.attempts} attempts), {run.kills} "
              f"kill -9s, acquirer faults at {faults:.0%} of calls; {len(run.doubted)} keys "
              f"in doubt at some point, {run.left_for_operator} unsettled when the server "
              f"died, {found.in_doubt_after} after `splitvault reconcile`; "
              f"{found.reversals} reversals in the books; answers {dict(run.answers)}; "
              f"ledger {dict(found.outcomes)}")
    finally:
        for device in devices:
            device.close()
        server.stop()
    return run, found


def pay_under_kills(run: Run, server: ServerProcess, start: object,
                    devices: list[sv.Device], orders: list[Order], rng: random.Random,
                    kills: int) -> None:
    """Devices pay every order (some from two devices at once), retrying what did not
    reach an answer; meanwhile the server is killed ``kills`` times at seeded points
    (after a seeded number of orders was taken, plus a seeded few milliseconds)."""
    todo: queue.Queue[Order] = queue.Queue()
    for order in orders:
        todo.put(order)
    taken = [0]
    up = threading.Event()
    up.set()

    def pay(device: sv.Device, order: Order) -> None:
        for _ in range(40):
            answer = run.attempt(device, order)
            if final(answer) or answer == "in doubt":
                return  # "in doubt" is settled by reconciliation, retried later
            if answer == "unreachable":
                up.wait(30)
            time.sleep(0.05)

    def worker(device: sv.Device) -> None:
        while True:
            try:
                order = todo.get_nowait()
            except queue.Empty:
                return
            with run.lock:
                taken[0] += 1
            if order[3]:  # the same payment from two devices at once, then as usual
                # (joined first, so what the customer was told last is the loop's answer)
                other = devices[(devices.index(device) + 1) % len(devices)]
                both = [threading.Thread(target=run.attempt, args=(d, order))
                        for d in (device, other)]
                for t in both:
                    t.start()
                for t in both:
                    t.join()
            pay(device, order)

    threads = [threading.Thread(target=worker, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    points = sorted(rng.sample(range(len(orders) // 10, len(orders) * 9 // 10), kills))
    for point in points:
        deadline = time.monotonic() + 60
        while taken[0] < point and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        up.clear()
        server.kill()
        run.kills += 1
        start()  # type: ignore[operator]
        up.set()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)


def die_for_good(run: Run, server: ServerProcess, devices: list[sv.Device],
                 burst: list[Order], rng: random.Random) -> None:
    """A last burst of payments, and a last kill -9 in its middle (once one of them is in
    doubt) with no restart: that server settles nothing, so what it was charging and
    what is in doubt are left for the operator's reconciliation."""
    doubted = len(run.doubted)
    todo: queue.Queue[Order] = queue.Queue()
    for order in burst:
        todo.put(order)

    def worker(device: sv.Device) -> None:
        while True:
            try:
                order = todo.get_nowait()
            except queue.Empty:
                return
            run.attempt(device, order)

    threads = [threading.Thread(target=worker, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    while (todo.qsize() > len(burst) // 2 or len(run.doubted) == doubted) and any(
            t.is_alive() for t in threads):
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.02))
    server.kill()
    run.kills += 1
    for t in threads:
        t.join(120)


def retry_until_settled(run: Run, device: sv.Device, orders: list[Order]) -> None:
    """After the kills: retry every order without a final answer while the server's
    own reconciliation settles what is in doubt (a reversed or failed one then charges
    once, under a new reference), until all have one or the rounds run out."""
    for _ in range(12):
        open_orders = [o for o in orders if not final(run.told.get((o[0], o[1])))]
        if not open_orders:
            return
        time.sleep(0.6)  # about one --reconcile-every
        for order in open_orders:
            run.attempt(device, order)


def settle_offline(server: ServerProcess, books: Path,
                   orders: list[Order]) -> list[dict[str, str | None]]:
    """The server is gone: the operator runs ``splitvault reconcile`` over the same
    books until nothing is in doubt (a killed worker's row is in doubt once its lease
    ran out). Returns the states before the first run, then after each."""
    def states() -> dict[str, str | None]:
        with server.inspect() as inspector:
            return {key: inspector.payment_state(card_id, key)
                    for card_id, key, _, _ in orders}

    seen = [states()]
    for _ in range(20):
        done = subprocess.run(
            [sys.executable, "-m", "splitvault", "reconcile", "--db", str(server.db),
             "--kek-file", str(server.kek), "--simulated-books", str(books), "--json"],
            capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        seen.append(states())
        if report["left"] == 0 and not any(s in UNSETTLED for s in seen[-1].values()):
            break
        time.sleep(0.5)  # a lease still running
    return seen


def test_kill_9_never_takes_money_for_a_failed_payment(database: str, tmp_path: Path) -> None:
    run, found = run_with_kills(tmp_path, database)
    assert found.broken == []
    assert found.in_doubt_after == 0
    # It really was hostile: every kill happened, devices met a dead server and
    # payments in doubt, and there were retries.
    assert run.kills == KILLS + 2
    assert run.answers["unreachable"] > 0 and found.in_doubt_before > 0
    assert run.left_for_operator > 0
    assert run.attempts > run.payments


SABOTAGE = """
# A reconciler that never asks: every payment in doubt is called "not found" (so
# recorded failed, as if nothing was taken), whatever the books say.
from splitvault import AcquirerStatus
from splitvault.server import _reconcile

class Blind:
    def status(self, reference):
        return AcquirerStatus.not_found()

    def reverse(self, reference):
        return None

_real = _reconcile.settler
_reconcile.settler = lambda acquirer: None if _real(acquirer) is None else Blind()
"""


def test_the_kill_9_check_catches_a_reconciler_that_does_not_ask(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sabotage in every server process and in ``splitvault reconcile`` (through a
    ``sitecustomize`` on their path): payments charged before a kill or a lost reply are
    recorded failed and charged again by the retry; the check must say so."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(SABOTAGE))
    paths = [str(hook), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    _, found = run_with_kills(tmp_path, str(tmp_path / "srv" / "server.db"), payments=60,
                              kills=2, seed=SEED + 1, faults=0.3)
    assert any("taken" in b for b in found.broken), found.broken
