"""Scenario 10, the stranger: anyone on the network who knows (or guessed) a card id, but
not the card's device key.

- :func:`spend_guesses`: ten evaluate requests signed with the stranger's own key are
  refused as ``UnknownCard``, word for word the answer for a card that does not exist
  (so it does not even confirm the id), and the card's guess count does not move: no
  malicious lockout.
- :func:`delete_card`: a delete signed with the stranger's key is refused; the card
  still pays.
- :func:`pay_without_evaluation`: an authorization on a made-up challenge (only an
  evaluation issues one, and the stranger cannot get one evaluated) is refused;
  nothing is charged.
- :func:`enumerate_cards`: every probe a stranger can send (a request signed with its
  own key, a zero signature, a stale timestamp, a made-up challenge id) answers word
  for word alike for an enrolled card and a made-up id: the card ids cannot be
  enumerated.

All run against a remote deployment too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import partial

from .. import _errors
from .._protocol import SEALED_SIG_LEN, AuthorizeRequest, DeleteRequest, EvaluateRequest
from ..crypto import oprf
from ._harness import (
    AttackResult,
    Deployment,
    Lab,
    Options,
    guarded,
    guesses_used,
    pay,
    refused,
)
from ._requests import millis, signed_delete, signed_evaluate

__all__ = ["delete_card", "enumerate_cards", "pay_without_evaluation", "run", "spend_guesses"]

HAD = "a card id and the network; no device key"
TRIES = 10
"""Twice the guess limit: enough to lock the card if a single one were counted."""


def spend_guesses(lab: Lab) -> AttackResult:
    name = "spend a card's PIN guesses to lock it"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        wire = lab.device("stranger").wire
        key = secrets.token_bytes(32)
        answers = set()
        for _ in range(TRIES):
            _, blinded = oprf.blind(b"123456")
            request = signed_evaluate(card_id, key, blinded)
            answer = _message(partial(wire.evaluate, request))
            if not answer.startswith("UnknownCard:"):
                return AttackResult(name, HAD, answer, False)
            answers.add(answer)
        ghost = secrets.token_hex(16)
        answers.add(_message(lambda: wire.evaluate(
            EvaluateRequest(ghost, secrets.token_bytes(16), millis(), blinded, bytes(64)))))
        used = guesses_used(lab, owner, card_id)
        passed = used == 0 and len(answers) == 1
        got = (f"{TRIES} x UnknownCard, the same answer as for a card that does not exist; "
               f"guesses used: {used}")
        return AttackResult(name, HAD, got, passed,
                            "" if len(answers) == 1 else f"answers differ: {sorted(answers)}")

    return guarded(name, HAD, attack)


def _message(call: Callable[[], object]) -> str:
    """The error a call answered with, as the caller sees it."""
    try:
        call()
    except _errors.VaultError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


def delete_card(lab: Lab) -> AttackResult:
    name = "delete someone else's card"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        wire = lab.device("stranger").wire
        request = signed_delete(card_id, secrets.token_bytes(32))
        ok, got = refused(lambda: wire.delete(request), _errors.UnknownCard)
        still = pay(owner, card_id).approved
        return AttackResult(name, HAD, f"{got}; the card still pays" if still else got,
                            ok and still)

    return guarded(name, HAD, attack)


def pay_without_evaluation(lab: Lab) -> AttackResult:
    name = "authorize a payment without a PIN evaluation"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        wire = lab.device("stranger").wire
        request = AuthorizeRequest(card_id, secrets.token_hex(16), 1_000_000, "KRW",
                                   "Attacker Ltd", "steal-1", secrets.token_bytes(200),
                                   secrets.token_bytes(SEALED_SIG_LEN),
                                   secrets.token_bytes(32))
        ok, got = refused(lambda: wire.authorize(request), _errors.InvalidChallenge)
        calls = lab.acquirer_calls()
        used = guesses_used(lab, owner, card_id)
        passed = ok and calls in (None, 0) and used == 0
        return AttackResult(name, HAD, f"{got}; nothing charged; guesses used: {used}",
                            passed)

    return guarded(name, HAD, attack)


def enumerate_cards(lab: Lab) -> AttackResult:
    name = "tell enrolled card ids from made-up ones"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        real = lab.enroll(owner)
        wire = lab.device("stranger").wire
        ghost = secrets.token_hex(16)
        key = secrets.token_bytes(32)
        _, blinded = oprf.blind(b"123456")

        def probes(card_id: str) -> list[str]:
            made_up = secrets.token_hex(16)
            nonce, now, stale = secrets.token_bytes(16), millis(), millis() - 600_000
            return [
                _message(partial(wire.evaluate, signed_evaluate(card_id, key, blinded))),
                _message(partial(wire.evaluate, EvaluateRequest(card_id, nonce, now, blinded,
                                                                bytes(64)))),
                _message(partial(wire.evaluate, signed_evaluate(card_id, key, blinded,
                                                                timestamp=stale))),
                _message(partial(wire.delete, DeleteRequest(card_id, nonce, now, bytes(64)))),
                _message(partial(wire.delete, DeleteRequest(card_id, secrets.token_bytes(16),
                                                            stale, bytes(64)))),
                _message(partial(wire.authorize, AuthorizeRequest(
                    card_id, made_up, 100, "KRW", "Shop", "probe", bytes(100),
                    bytes(SEALED_SIG_LEN), bytes(32)))),
            ]

        seen, unseen = probes(real), probes(ghost)
        differ = [f"{a} / {b}" for a, b in zip(seen, unseen, strict=True) if a != b]
        got = ("every probe (stranger signature, zero signature, stale timestamp, made-up "
               "challenge; evaluate, delete, authorize) answers alike for both" if not differ
               else f"answers differ: {differ[0]}")
        return AttackResult(name, HAD, got, not differ)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (spend_guesses, delete_card, pay_without_evaluation, enumerate_cards):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
