"""Scenario 16, money taken for a failed payment: the invariant, checked as a bank would.

A seeded random fault schedule hits the acquirer on every call (unavailable before
charging, timeout or lost reply or malformed answer after charging, slow answers,
errors on ``status`` and ``reverse``) while many payments are made, retried, and some
retried from two devices at once. Then reconciliation runs until nothing is in doubt,
payments settled as reversed or failed are retried (they may charge once, under a new
reference), and the acquirer's books are compared with the ledger, per idempotency key:

- the money taken net of reversals is 0 or exactly the amount;
- it is the amount if and only if the recorded result is approved;
- nothing is left in doubt;
- no reference was ever charged twice;
- no customer was told "declined" or "not charged" for a key whose money stayed taken.

:func:`check_schedule` is also the property test's engine (``tests/security/``).
"""

from __future__ import annotations

import itertools
import random
import shutil
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import _errors
from .._card import Card
from .._pin import Pin
from .._profiles import KdfProfile
from ..device import Device
from ..hazmat import SimulatedAcquirer
from ..server import ShareServer
from ._harness import PIN, AttackResult, Deployment, Options, guarded

__all__ = ["Schedule", "check_schedule", "run", "verify"]

HAD = "a flaky acquirer (every fault kind, seeded), retries, concurrent retries"
_AMOUNTS = (1_000, 12_000, 55_500, 990_000, 1_500_000)  # the last is over the limit
_PANS = ("4111 1111 1111 1111", "5555 5555 5555 4444", "4012 8888 8888 1881",
         "3782 822463 10005", "6011 1111 1111 1117", "3530 1113 3330 0000")


@dataclass
class Schedule:
    """What one fault schedule did, and every broken invariant (empty: it held)."""

    seed: int
    payments: int = 0
    attempts: int = 0
    faults: int = 0
    reversals: int = 0
    in_doubt_before: int = 0
    in_doubt_after: int = 0
    approved: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    broken: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"seed {self.seed}: {self.payments} payments ({self.attempts} attempts), "
                f"{self.faults} faults injected, {self.reversals} reversals, in doubt "
                f"{self.in_doubt_before} before reconciliation and {self.in_doubt_after} "
                f"after; {self.approved} approved")


def check_schedule(seed: int, payments: int = 1000, *, fault_rate: float = 0.3,
                   threads: int = 4, workdir: Path | None = None) -> Schedule:
    """Run ``payments`` payments under seed ``seed``'s fault schedule, settle, check."""
    if workdir is not None:
        return _check(seed, payments, fault_rate, threads, workdir)
    where = Path(tempfile.mkdtemp(prefix="splitvault-money-"))
    try:
        return _check(seed, payments, fault_rate, threads, where)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _check(seed: int, payments: int, rate: float, threads: int, where: Path) -> Schedule:
    rng = random.Random(seed)  # noqa: S311 (a reproducible test schedule)  # nosec B311
    acquirer = SimulatedAcquirer(seed=seed, fault_rate=rate)
    result = Schedule(seed, payments)
    server = ShareServer.open(where / "server.db", acquirer=acquirer)
    devices: list[Device] = []
    lock = threading.Lock()
    told: dict[tuple[str, str], str] = {}  # what each customer was last told
    try:
        with Pin.from_digits(PIN) as pin:
            first = Device.open(where / "device.db", server=server, kdf=KdfProfile.TEST_ONLY)
            devices.append(first)
            cards = [first.enroll(Card(pan, "12/30", "KIM MINSU"), pin) for pan in _PANS]
            # More devices over the same wallet: concurrent retries come from several.
            devices += [Device.open(where / "device.db", server=server,
                                    kdf=KdfProfile.TEST_ONLY) for _ in range(threads)]
            orders = [(cards[i % len(cards)], f"order-{seed}-{i}", rng.choice(_AMOUNTS),
                       rng.random() < 0.1) for i in range(payments)]
            local = threading.local()
            handed = itertools.count()

            def device() -> Device:  # one Device per pool thread
                if not hasattr(local, "device"):
                    local.device = devices[next(handed) % threads + 1]
                dev: Device = local.device
                return dev

            def attempt(card_id: str, key: str, amount: int, dev: Device) -> str:
                with lock:
                    result.attempts += 1
                try:
                    auth = dev.authorize(card_id, pin, amount=amount, currency="KRW",
                                         merchant="Gift Shop", idempotency_key=key)
                    answer = "approved" if auth.approved else "declined"
                except _errors.AcquirerUnavailable:
                    answer = "not charged"
                except _errors.PaymentInDoubt:
                    answer = "in doubt"
                except _errors.ServerUnavailable:
                    answer = "busy"  # a per-card limit under concurrent retries
                with lock:
                    told[(card_id, key)] = answer
                return answer

            def pay(order: tuple[str, str, int, bool]) -> None:
                card_id, key, amount, twice = order
                if twice:  # the same payment from two devices at once
                    both = [threading.Thread(target=attempt,
                                             args=(card_id, key, amount, devices[i + 1]))
                            for i in range(2)]
                    for t in both:
                        t.start()
                    for t in both:
                        t.join()
                for _ in range(3):  # a client retries what it was told was not charged
                    if attempt(card_id, key, amount, device()) not in ("not charged", "busy"):
                        break

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(pay, orders))
            states = _states(server, orders)
            result.in_doubt_before = sum(1 for s in states.values()
                                         if s in ("in_doubt", "pending", "settling"))
            for _ in range(4):  # settle, then retry what took no money, until quiet
                _settle(server, result)
                again = [o for o in orders if _states(server, [o])[o[1]] in
                         ("reversed", "failed", None)]
                if not again:
                    break
                for order in again:
                    attempt(order[0], order[1], order[2], devices[0])
            _settle(server, result)
            states = _states(server, orders)
            result.in_doubt_after = sum(1 for s in states.values()
                                        if s in ("in_doubt", "pending", "settling"))
            verify(server, acquirer, orders, states, told, result)
    finally:
        for dev in devices:
            dev.close()
        server.close()
    result.faults = sum(acquirer.faults_injected.values())
    return result


def _settle(server: ShareServer, result: Schedule) -> None:
    """Reconcile until a run leaves nothing in doubt (its own status and reverse calls
    fail at the schedule's rate, so a row may need a few runs)."""
    for _ in range(50):
        report = server.reconcile()
        result.reversals += report.reversed
        if report.left == 0:
            return


def _states(server: ShareServer,
            orders: list[tuple[str, str, int, bool]]) -> dict[str, str | None]:
    return {key: server.payment_state(card_id, key) for card_id, key, _, _ in orders}


def verify(server: ShareServer, acquirer: SimulatedAcquirer,
           orders: list[tuple[str, str, int, bool]], states: dict[str, str | None],
           told: dict[tuple[str, str], str], result: Schedule) -> None:
    """The invariant, per order ``(card_id, key, amount, twice)``: the acquirer's books
    against the ledger's ``states`` and what each customer was last ``told``; every
    broken rule goes to ``result.broken`` (also the kill -9 variant's check)."""
    books = {b.reference: b for b in acquirer.statement()}
    broken = result.broken
    for booking in books.values():
        if booking.charges > 1:
            broken.append(f"reference {booking.reference} charged {booking.charges} times")
    ledger = server._ledger  # the references of every attempt: the invariant's join key
    for card_id, key, amount, _ in orders:
        state = states[key]
        result.outcomes[str(state)] += 1
        entry = server.store.ledger_entry(ledger.key_digest(card_id, key))
        attempts = 0 if entry is None else entry.attempt
        net = sum(books[ref].net for ref in
                  (ledger.reference(card_id, key, a) for a in range(attempts + 1))
                  if ref in books)
        if net not in (0, amount):
            broken.append(f"{key}: {net} taken for a payment of {amount}")
        if (net == amount) != (state == "approved"):
            broken.append(f"{key}: {net} taken, recorded {state}")
        if state in ("in_doubt", "pending", "settling"):
            broken.append(f"{key}: left {state}")
        last = told.get((card_id, key))
        if net and last in ("declined", "not charged"):
            broken.append(f"{key}: told {last}, {net} taken")
        result.approved += state == "approved"


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    name = "make payments fail after the money moved"

    def attack() -> AttackResult:
        found = check_schedule(seed=15, payments=300 if not options.slow else 1000)
        held = not found.broken and found.in_doubt_after == 0
        got = (found.summary() + ": per key, 0 or exactly the amount taken, and the "
               "amount only for approved" if held else
               f"{len(found.broken)} broken: {'; '.join(found.broken[:3])}")
        return AttackResult(name, HAD, got, held)

    return [guarded(name, HAD, attack)]
