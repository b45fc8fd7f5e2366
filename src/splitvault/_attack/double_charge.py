"""Scenario 5, the double charge: one order, paid more than once.

- :func:`same_key_retry`: a retry with the same idempotency key returns the recorded
  result (the same approval code); the acquirer is called once.
- :func:`concurrent_retries`: the same payment sent from several threads at once: every
  one gets the same approval code, the acquirer is called once.
- :func:`crash_after_answer`: the server process dies between the acquirer's approval
  and its recording; after a restart, retries are refused as ``PaymentInDoubt``, never
  charged again.
- :func:`timeout_after_charging`: the acquirer takes the money, then its answer times
  out: ``PaymentInDoubt`` now and on every retry, never a failure, never a re-charge.
- :func:`refused_connection_retry`: an acquirer that says it took nothing lets the retry
  charge, exactly once.

The first two run against a remote deployment too (the approval codes are the evidence
there: a second charge would carry a second code); the rest need to control the
server's acquirer and process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .. import _errors
from .._authorization import Authorization
from .._card import Card
from ._harness import (
    IN_PROCESS_ONLY,
    AttackResult,
    Deployment,
    Lab,
    Options,
    guarded,
    pay,
    refused,
    skipped,
)

__all__ = [
    "concurrent_retries",
    "crash_after_answer",
    "refused_connection_retry",
    "run",
    "same_key_retry",
    "timeout_after_charging",
]

HAD = "the device, the PIN, a flaky network"
THREADS = 4
"""Concurrent attempts: below the guess limit, because every attempt's PIN evaluation
is a counted guess until its proof arrives (5 at once would lock the card, by design)."""


def same_key_retry(lab: Lab) -> AttackResult:
    name = "retry a payment with the same idempotency key"

    def attack() -> AttackResult:
        victim = lab.device()
        card_id = lab.enroll(victim)
        first = pay(victim, card_id)
        again = [pay(victim, card_id) for _ in range(3)]
        same = all(a == first for a in again)
        calls = lab.acquirer_calls()
        once = calls in (None, 1)
        got = (f"4 attempts, one charge: the recorded result ({first.approval_code}) came back"
               if same and once else f"{calls} acquirer calls; results equal: {same}")
        return AttackResult(name, HAD, got, same and once)

    return guarded(name, HAD, attack)


def concurrent_retries(lab: Lab) -> AttackResult:
    name = f"send the same payment from {THREADS} threads at once"

    def attack() -> AttackResult:
        victim = lab.device()
        card_id = lab.enroll(victim)
        start = threading.Barrier(THREADS)
        outcomes: list[Authorization | BaseException] = []

        def attempt() -> None:
            start.wait()
            try:
                outcomes.append(pay(victim, card_id, key="concurrent"))
            except Exception as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=attempt) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        auths = [o for o in outcomes if isinstance(o, Authorization)]
        errors = sorted({type(o).__name__ for o in outcomes if not isinstance(o, Authorization)})
        codes = {a.approval_code for a in auths}
        calls = lab.acquirer_calls()
        passed = len(auths) == THREADS and len(codes) == 1 and calls in (None, 1)
        got = (f"{THREADS} answers, one approval code, one charge" if passed
               else f"{len(codes)} approval codes, {calls} acquirer calls, errors {errors}")
        return AttackResult(name, HAD, got, passed)

    return guarded(name, HAD, attack)


class Crash(BaseException):
    """The process dying: not an ``Exception``, so nothing in the server catches it."""


class _Approves:
    """Approves and counts; then ``then`` decides what happens to the answer."""

    def __init__(self, then: Callable[[], None] | None = None) -> None:
        self.charged = 0
        self.then = then

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str:
        self.charged += 1
        if self.then is not None:
            self.then()
        return "APPROV"


def crash_after_answer(lab: Lab) -> AttackResult:
    name = "crash between the acquirer's approval and its recording, then retry"

    def attack() -> AttackResult:
        if lab.server is None:
            raise RuntimeError(IN_PROCESS_ONLY)
        victim = lab.device()
        card_id = lab.enroll(victim)

        def die() -> None:
            raise Crash

        acquirer = _Approves(die)
        lab.server.acquirer = acquirer
        crashed, _ = refused(lambda: pay(victim, card_id), Crash)
        lab.restart()
        retries = [refused(lambda: pay(victim, card_id), _errors.PaymentInDoubt)
                   for _ in range(2)]
        passed = crashed and all(ok for ok, _ in retries) and acquirer.charged == 1
        got = (f"retries after restart: {', '.join(g for _, g in retries)}; charged "
               f"{acquirer.charged} time(s)")
        return AttackResult(name, HAD + ", and a server that crashes", got, passed)

    return guarded(name, HAD, attack)


def timeout_after_charging(lab: Lab) -> AttackResult:
    name = "acquirer charges, then its answer times out; retry"

    def attack() -> AttackResult:
        if lab.server is None:
            raise RuntimeError(IN_PROCESS_ONLY)
        victim = lab.device()
        card_id = lab.enroll(victim)

        def time_out() -> None:
            raise TimeoutError("read timed out")

        acquirer = _Approves(time_out)
        lab.server.acquirer = acquirer
        answers = [refused(lambda: pay(victim, card_id), _errors.PaymentInDoubt)
                   for _ in range(3)]
        passed = all(ok for ok, _ in answers) and acquirer.charged == 1
        got = f"{', '.join(g for _, g in answers)}; charged {acquirer.charged} time(s)"
        return AttackResult(name, HAD, got, passed)

    return guarded(name, HAD, attack)


def refused_connection_retry(lab: Lab) -> AttackResult:
    name = "acquirer refuses the connection (took nothing); retry"

    def attack() -> AttackResult:
        if lab.server is None:
            raise RuntimeError(IN_PROCESS_ONLY)
        victim = lab.device()
        card_id = lab.enroll(victim)
        acquirer = _Approves()
        down = _Down()
        lab.server.acquirer = down
        first, got_first = refused(lambda: pay(victim, card_id), _errors.AcquirerUnavailable)
        lab.server.acquirer = acquirer
        auth = pay(victim, card_id)
        again = pay(victim, card_id)
        passed = first and auth.approved and again == auth and acquirer.charged == 1
        got = f"{got_first}, then approved once on retry (charged {acquirer.charged})"
        return AttackResult(name, HAD, got, passed)

    return guarded(name, HAD, attack)


class _Down:
    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str:
        raise _errors.AcquirerUnavailable()


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (same_key_retry, concurrent_retries):
        with deployment.lab() as lab:
            results.append(attack(lab))
    local = (("crash between the acquirer's approval and its recording, then retry",
              crash_after_answer),
             ("acquirer charges, then its answer times out; retry", timeout_after_charging),
             ("acquirer refuses the connection (took nothing); retry",
              refused_connection_retry))
    for name, attack in local:
        if deployment.remote:
            results.append(skipped(name, HAD, IN_PROCESS_ONLY))
            continue
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
