"""Scenario 4, the network attacker: replay, tamper, reuse and outwait challenges.

The attacker sits on the wire (:class:`~._harness.Recorder`), sees every message and
may rewrite any of them. Each attack shows the request refused with the expected typed
error, that the acquirer was never called (in-process), and that nothing was recorded:
the genuine payment afterwards with the same idempotency key is charged fresh.

- :func:`replay_authorization`: a captured authorization sent again: its challenge is
  single-use (``InvalidChallenge``).
- :func:`tamper_field` (amount, merchant, currency, idempotency key): the PIN key signs
  them with the challenge, so a changed field fails like a wrong PIN.
- :func:`tamper_card_id`: challenges are bound to their card.
- :func:`tamper_envelope`: the sealed device share is signed too.
- :func:`evaluate_twice`: a captured evaluation sent again: its device nonce is
  single-use (``InvalidChallenge``), so it buys no second OPRF evaluation.
- :func:`stale_evaluation`: a captured evaluation held until the server has forgotten
  its nonce is refused for its timestamp (in-process, or remote with ``--slow``).
- :func:`expired_challenge`: a challenge used after its 60 s is refused (against a
  remote deployment only with ``--slow``: it has to wait the minute out).
- :func:`swapped_server_key`: an attacker who swaps the server's envelope key at
  enrollment gets the enrollment refused; no card exists for the share it captured.
- :func:`malformed_element`: an invalid group element is refused before a guess counts.

All but the expiry run against a remote deployment too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from .. import _errors
from .._protocol import (
    FRESHNESS_SECONDS,
    AuthorizeRequest,
    EnrollBeginReply,
    EnrollFinish,
    EvaluateRequest,
)
from ..crypto.envelope import generate_keypair, open_envelope
from ..crypto.errors import AuthenticationFailed
from ._harness import (
    OTHER_PIN,
    AttackResult,
    Deployment,
    Lab,
    Options,
    Victim,
    guarded,
    guesses_used,
    pay,
    refused,
    sample_card,
)
from ._requests import signed_evaluate

__all__ = [
    "evaluate_twice",
    "expired_challenge",
    "malformed_element",
    "replay_authorization",
    "run",
    "stale_evaluation",
    "swapped_server_key",
    "tamper_card_id",
    "tamper_envelope",
    "tamper_field",
]

HAD = "the wire: every message, to read, replay or rewrite"
TAMPERED: dict[str, Any] = {"amount": 1_000_000, "merchant": "Attacker Ltd", "currency": "USD",
            "idempotency_key": "attacker-order"}


def _fresh(lab: Lab) -> tuple[Victim, str]:
    victim = lab.device()
    return victim, lab.enroll(victim)


def _untouched(lab: Lab, victim: Victim, card_id: str, key: str = "order-1") -> tuple[bool, str]:
    """Nothing was charged or recorded: no acquirer call, and the genuine payment with
    ``key`` is then charged fresh (not answered from a ledger row)."""
    calls = lab.acquirer_calls()
    if calls not in (None, 0):
        return False, f"the acquirer was called {calls} time(s)"
    victim.wire.rewrite = None
    victim.wire.before.clear()
    auth = pay(victim, card_id, key=key)
    if not auth.approved or lab.acquirer_calls() not in (None, 1):
        return False, "the genuine payment afterwards was not charged exactly once"
    return True, "nothing charged or recorded"


def _rewrite_attack(lab: Lab, name: str, rewrite: Callable[[AuthorizeRequest], object],
                    *expected: type[BaseException], setup: Callable[[Victim], None] | None = None,
                    ) -> AttackResult:
    def attack() -> AttackResult:
        victim, card_id = _fresh(lab)
        if setup is not None:
            setup(victim)
        victim.wire.rewrite = lambda m: rewrite(m) if isinstance(m, AuthorizeRequest) else m
        ok, got = refused(lambda: pay(victim, card_id), *expected)
        clean, effect = _untouched(lab, victim, card_id) if ok else (False, "")
        return AttackResult(name, HAD, f"{got}; {effect}" if ok else got, ok and clean)

    return guarded(name, HAD, attack)


def replay_authorization(lab: Lab) -> AttackResult:
    name = "replay a captured authorization"

    def attack() -> AttackResult:
        victim, card_id = _fresh(lab)
        first = pay(victim, card_id)
        captured = victim.wire.of(AuthorizeRequest)[-1]
        with contextlib.suppress(_errors.WrongPin):
            pay(victim, card_id, OTHER_PIN, key="typo")  # one wrong PIN on the counter
        # The server may answer an identical copy of a proof it already settled with the
        # result it recorded (that is how a device rides out a lost reply): the replay
        # then gets what the sender was owed anyway. Anything else must be refused.
        try:
            # (With it comes the re-split, if still waiting: sealed to the victim's
            # refresh key, which the capture does not include.)
            again = victim.wire.inner.authorize(captured).authorization
            ok = (again.approval_code, again.amount) == (first.approval_code, first.amount)
            got = "the recorded result again" if ok else "a different result"
        except _errors.InvalidChallenge:
            ok, got = True, "InvalidChallenge"
        except _errors.VaultError as exc:
            ok, got = False, f"unexpected {type(exc).__name__}"
        calls = lab.acquirer_calls()
        once = calls in (None, 1)
        # A replayed good proof settled again would reset the wrong-PIN count: a thief
        # replaying one after every few guesses would guess for ever.
        used = guesses_used(lab, victim, card_id)
        got += f"; wrong PINs still counted: {used}"
        return AttackResult(name, HAD, f"{got}; charged once ({first.approval_code})"
                            if ok and once else got, ok and once and used == 1)

    return guarded(name, HAD, attack)


def tamper_field(lab: Lab, field: str) -> AttackResult:
    value = TAMPERED[field]
    return _rewrite_attack(lab, f"tamper with the {field.replace('_', ' ')} in flight",
                           lambda m: dataclasses.replace(m, **{field: value}),
                           _errors.WrongPin)


def tamper_card_id(lab: Lab) -> AttackResult:
    other: list[str] = []

    def second_card(victim: Victim) -> None:
        other.append(lab.enroll(victim, sample_card("5555555555554444", "LEE JIEUN")))

    return _rewrite_attack(lab, "redirect an authorization to another card",
                           lambda m: dataclasses.replace(m, card_id=other[0]),
                           _errors.InvalidChallenge, setup=second_card)


def tamper_envelope(lab: Lab) -> AttackResult:
    def flip(m: AuthorizeRequest) -> object:
        env = bytearray(m.envelope)
        env[len(env) // 2] ^= 1
        return dataclasses.replace(m, envelope=bytes(env))

    return _rewrite_attack(lab, "flip a bit of the sealed device share", flip,
                           _errors.WrongPin, _errors.TamperedData)


def evaluate_twice(lab: Lab) -> AttackResult:
    name = "replay a captured PIN evaluation"

    def attack() -> AttackResult:
        victim, card_id = _fresh(lab)
        pay(victim, card_id)
        captured = victim.wire.of(EvaluateRequest)[-1]
        before = guesses_used(lab, victim, card_id) if lab.server is not None else 0
        ok, got = refused(lambda: victim.wire.inner.evaluate(captured),
                          _errors.InvalidChallenge)
        spent = guesses_used(lab, victim, card_id) - before if lab.server is not None else 0
        return AttackResult(name, HAD, f"{got}; guesses spent by the replay: {spent}",
                            ok and spent == 0)

    return guarded(name, HAD, attack)


def stale_evaluation(lab: Lab, options: Options) -> AttackResult:
    name = "replay a PIN evaluation after the server forgot its nonce"
    wait = 2 * FRESHNESS_SECONDS + 1
    if lab.remote and not options.slow:
        return AttackResult(name, HAD, "not run: needs --slow to wait out the nonce",
                            False, skipped=True)

    def attack() -> AttackResult:
        victim, card_id = _fresh(lab)
        pay(victim, card_id)
        captured = victim.wire.of(EvaluateRequest)[-1]
        if lab.server is None:
            time.sleep(wait)
        else:
            lab.clock.advance(wait)
            lab.server.store.sweep(lab.clock())  # the nonce is gone from the store
        ok, got = refused(lambda: victim.wire.inner.evaluate(captured),
                          _errors.InvalidChallenge)
        return AttackResult(name, HAD + f" (held for {wait:g} s)", got, ok)

    return guarded(name, HAD, attack)


def expired_challenge(lab: Lab, options: Options) -> AttackResult:
    name = "use a challenge after it expired"
    if lab.remote and not options.slow:
        return AttackResult(name, HAD, "not run: needs --slow to wait out the challenge",
                            False, skipped=True)

    def attack() -> AttackResult:
        victim, card_id = _fresh(lab)
        ttl = victim.wire.info().challenge_ttl

        def stall() -> None:
            if lab.remote:
                time.sleep(ttl + 1)
            else:
                lab.clock.advance(ttl + 1)

        victim.wire.before["authorize"] = stall
        ok, got = refused(lambda: pay(victim, card_id), _errors.InvalidChallenge)
        clean, effect = _untouched(lab, victim, card_id) if ok else (False, "")
        return AttackResult(name, HAD + f" (held for {ttl + 1:g} s)",
                            f"{got}; {effect}" if ok else got, ok and clean)

    return guarded(name, HAD, attack)


def swapped_server_key(lab: Lab) -> AttackResult:
    name = "swap the server's envelope key at enrollment"

    def attack() -> AttackResult:
        victim = lab.device()
        secret, public = generate_keypair()
        captured: list[bytes] = []

        def swap(reply: object) -> object:
            if isinstance(reply, EnrollBeginReply):
                return dataclasses.replace(reply, server_key=public)
            return reply

        def capture(message: object) -> object:
            if isinstance(message, EnrollFinish):
                with contextlib.suppress(AuthenticationFailed):
                    captured.append(bytes(open_envelope(
                        secret, message.envelope, EnrollFinish.envelope_aad(message.card_id))))
            return message

        victim.wire.rewrite_reply, victim.wire.rewrite = swap, capture
        ok, got = refused(lambda: lab.enroll(victim), _errors.TamperedData)
        kept = victim.device.cards()
        passed = ok and not kept
        share = "captured a share of a card that was never created" if captured else ""
        return AttackResult(name, HAD, f"enrollment refused ({got}); {share}" if passed
                            else f"{got}; device kept {len(kept)} card(s)", passed)

    return guarded(name, HAD, attack)


def malformed_element(lab: Lab) -> AttackResult:
    name = "send an invalid group element to be evaluated"
    had = HAD + " and the device key"

    def attack() -> AttackResult:
        victim, card_id = _fresh(lab)
        stored = victim.device._store.get(card_id)
        request = signed_evaluate(card_id, stored.sign_seed, b"\xff" * 32, card=stored)
        ok, got = refused(lambda: victim.wire.evaluate(request), _errors.MalformedRequest)
        used = guesses_used(lab, victim, card_id)
        return AttackResult(name, had, f"{got}; guesses used: {used}", ok and used == 0)

    return guarded(name, had, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    attacks: list[Callable[[Lab], AttackResult]] = [replay_authorization]
    attacks += [partial(tamper_field, field=f) for f in TAMPERED]
    attacks += [tamper_card_id, tamper_envelope, evaluate_twice,
                partial(stale_evaluation, options=options),
                partial(expired_challenge, options=options), swapped_server_key,
                malformed_element]
    results = []
    for attack in attacks:
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
