"""Scenario 15, a network that only drops packets: an on-path attacker who sees nothing
but TLS ciphertext (or a flaky mobile link) loses requests and replies, hoping the
owner's own attempts lock the card although the right PIN was typed every time.

- :func:`drop_authorizations`: every authorization request of ten attempts with the
  right PIN is dropped (each attempt's evaluation got through). The card is not
  locked, the device never spent a guess on its own (one evaluation per attempt), and
  once the network heals the right PIN pays, once.
- :func:`drop_authorization_reply`: the authorization reaches the server, its reply is
  lost. The device sends the same request again and gets the recorded result: one
  charge, no second evaluation.
- :func:`drop_evaluation_replies`: ten evaluation replies are lost (twice the guess
  limit, all counted by the server before they were lost). Nothing locks; the right
  PIN then pays.
- :func:`unproven_evaluations_test_nothing`: why that is safe. A thief with the
  device's files, its whole transcript and ten fresh evaluations of his own (the
  right PIN among them) derives each candidate's PIN key, and finds nothing in the
  transcript to check one against: no verifier, no signature that verifies. Positive
  control: the right candidate's key is the one the server holds.
- :func:`locked_card_reenrolls`: a card locked by five wrong PINs comes back for its
  owner, with the device and the card itself, under a new PIN; the old PIN no longer
  works, and a copy of the device taken before gets nothing from the new enrollment.

The first three run against a remote deployment too (``--server``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from .. import _errors
from .._pin import Pin
from .._protocol import (
    AuthorizeRequest,
    EvaluateReply,
    EvaluateRequest,
)
from ..crypto.errors import AuthenticationFailed
from ..crypto.signing import verify
from ..hazmat import BlindedPin
from ._harness import (
    CLAIMED_GUESS_LIMIT,
    IN_PROCESS_ONLY,
    OTHER_PIN,
    PIN,
    AttackResult,
    Deployment,
    Lab,
    Options,
    Victim,
    guarded,
    pay,
    sample_card,
    skipped,
)
from ._requests import device_verifier, signed_evaluate
from .device_theft import GUESSES

__all__ = [
    "drop_authorization_reply",
    "drop_authorizations",
    "drop_evaluation_replies",
    "locked_card_reenrolls",
    "run",
    "unproven_evaluations_test_nothing",
]

HAD = "the network between device and server: can drop any packet, reads none"
HAD_THIEF = "the device's files, its whole transcript and fresh evaluations"
ATTEMPTS = 2 * CLAIMED_GUESS_LIMIT
"""Twice the guess limit: enough to lock the card if each dropped attempt counted."""
NEW_PIN = "264819"


def _drop(victim: Victim, method: str, *, reply: bool = False,
          times: int | None = None) -> Callable[[], int]:
    """Make ``victim``'s network lose ``method``'s requests (or, with ``reply``, their
    replies after the server handled them), ``times`` times or for good. Returns a
    function counting how many were lost."""
    lost = [0]
    inner = victim.wire.inner

    class Lossy:
        def __getattr__(self, name: str) -> Any:
            call = getattr(inner, name)
            if name != method:
                return call

            def lose(message: object) -> object:
                if times is not None and lost[0] >= times:
                    return call(message)
                if reply:
                    call(message)  # handled by the server; the answer never arrives
                lost[0] += 1
                raise _errors.ServerUnavailable("no answer from the share server")
            return lose
    victim.wire.inner = Lossy()
    return lambda: lost[0]


def _heal(victim: Victim, inner: object) -> None:
    victim.wire.inner = inner  # type: ignore[assignment]


def _state(lab: Lab, victim: Victim, card_id: str) -> str:
    if lab.server is not None:
        state = lab.server.card_state(card_id)
        return "locked" if state.locked else f"{state.guesses_used} wrong PINs counted"
    return "state not visible remotely"


def drop_authorizations(lab: Lab) -> AttackResult:
    name = "drop every authorization of the owner's right PIN"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        inner = owner.wire.inner
        lost = _drop(owner, "authorize")
        before = len(owner.wire.of(EvaluateRequest))
        unavailable = 0
        for n in range(ATTEMPTS):
            try:
                pay(owner, card_id, key=f"drop-{n}")
            except _errors.ServerUnavailable:
                unavailable += 1
        evaluations = len(owner.wire.of(EvaluateRequest)) - before
        _heal(owner, inner)
        state = _state(lab, owner, card_id)
        try:
            paid = pay(owner, card_id, key="after-the-storm").approved
            got = "PAID"
        except _errors.VaultError as exc:
            paid, got = False, type(exc).__name__
        passed = paid and unavailable == ATTEMPTS and evaluations == ATTEMPTS and lost() > 0
        return AttackResult(
            name, HAD,
            f"{lost()} requests dropped over {ATTEMPTS} attempts; {evaluations} evaluations "
            f"(one per attempt); card: {state}; the right PIN then: {got}", passed)

    return guarded(name, HAD, attack)


def drop_authorization_reply(lab: Lab) -> AttackResult:
    name = "drop the reply to a charged authorization"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        inner = owner.wire.inner
        lost = _drop(owner, "authorize", reply=True, times=1)
        before = len(owner.wire.of(EvaluateRequest))
        calls_before = lab.acquirer_calls()
        try:
            result = pay(owner, card_id, key="lost-reply")
            got = "approved" if result.approved else "declined"
        except _errors.VaultError as exc:
            result, got = None, type(exc).__name__
        _heal(owner, inner)
        evaluations = len(owner.wire.of(EvaluateRequest)) - before
        resent = len(owner.wire.of(AuthorizeRequest))
        calls = lab.acquirer_calls()
        charged = None if calls is None or calls_before is None else calls - calls_before
        passed = (result is not None and result.approved and evaluations == 1
                  and lost() == 1 and charged in (None, 1))
        return AttackResult(
            name, HAD,
            f"reply lost once; the device resent the same request ({resent} sent) and got "
            f"the recorded result: {got}; evaluations: {evaluations}; charged "
            f"{'?' if charged is None else charged} time(s)", passed)

    return guarded(name, HAD, attack)


def drop_evaluation_replies(lab: Lab) -> AttackResult:
    name = "drop the replies of counted evaluations"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        inner = owner.wire.inner
        lost = _drop(owner, "evaluate", reply=True)
        for n in range(ATTEMPTS):
            with contextlib.suppress(_errors.ServerUnavailable):
                pay(owner, card_id, key=f"lost-{n}")
        _heal(owner, inner)
        state = _state(lab, owner, card_id)
        try:
            paid = pay(owner, card_id, key="after").approved
            got = "PAID"
        except _errors.VaultError as exc:
            paid, got = False, type(exc).__name__
        passed = paid and lost() == ATTEMPTS
        return AttackResult(
            name, HAD,
            f"{lost()} evaluation replies lost (each counted by the server, none retried by "
            f"the device); card: {state}; the right PIN then: {got}", passed)

    return guarded(name, HAD, attack)


def unproven_evaluations_test_nothing(lab: Lab) -> AttackResult:
    name = "test PINs with unproven evaluations"

    def attack() -> AttackResult:
        if lab.server is None:
            return skipped(name, HAD_THIEF, IN_PROCESS_ONLY)
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        pay(owner, card_id)
        with contextlib.suppress(_errors.WrongPin):
            pay(owner, card_id, OTHER_PIN, key="typo")
        with Pin.from_digits(NEW_PIN) as new, Pin.from_digits(PIN) as old:
            owner.device.change_pin(card_id, old, new)
            owner.device.change_pin(card_id, new, old)
        thief = lab.steal(owner)
        stolen = thief.device._store.get(card_id)
        candidates = (PIN, *GUESSES)
        keys = {}
        for digits in candidates:
            with Pin.from_digits(digits) as pin, BlindedPin(card_id, pin) as blinded:
                request = signed_evaluate(card_id, stolen.sign_seed, blinded.blinded,
                                          card=stolen)
                reply: EvaluateReply = thief.wire.evaluate(request)
                keys[digits] = device_verifier(stolen, blinded.finalize(reply.evaluated))
        values = _byte_values(owner.wire.sent + owner.wire.replies)
        messages = _signed_messages(owner.wire.sent, owner.wire.replies)
        matches = [d for d, k in keys.items() if k in values]
        matches += [d for d, k in keys.items() if _any_verifies(k, messages, values)]
        control = keys[PIN] == lab.server.store.card(card_id).verifier  # type: ignore[union-attr]
        unlocked = not lab.server.card_state(card_id).locked
        got = (f"PIN {matches[0]} confirmed offline" if matches else
               f"{len(candidates)} fresh evaluations, no proof sent: 0 candidates matched "
               f"anything in {len(values)} recorded values; card "
               f"{'not locked' if unlocked else 'LOCKED'}")
        detail = "" if control else "positive control failed: the harness cannot see a match"
        return AttackResult(name, HAD_THIEF, got, not matches and control and unlocked, detail)

    return guarded(name, HAD_THIEF, attack)


def _byte_values(messages: list[object]) -> set[bytes]:
    """Every bytes field of every recorded message, and every 32- and 64-byte window of
    each (a value could hide inside a longer field)."""
    out: set[bytes] = set()
    for message in messages:
        for value in vars(message).values() if hasattr(message, "__dict__") else ():
            if isinstance(value, bytes):
                out.add(value)
                for size in (32, 64):
                    out.update(value[i:i + size] for i in range(0, max(len(value) - size, 0) + 1))
    return out


def _signed_messages(sent: list[object], replies: list[object]) -> list[bytes]:
    """The bytes every recorded PIN signature could be over (a signature needs its
    message, and the transcript has them all)."""
    nonces = [r.nonce for r in replies if isinstance(r, EvaluateReply)]
    out: list[bytes] = []
    for message in sent:
        signed = getattr(message, "signed_bytes", None)
        if signed is None:
            continue
        try:
            out.append(signed())
        except TypeError:
            out += [signed(nonce) for nonce in nonces]
    return out


def _any_verifies(public: bytes, messages: list[bytes], values: set[bytes]) -> bool:
    signatures = [v for v in values if len(v) == 64]
    for message in messages:
        for signature in signatures:
            try:
                verify(public, message, signature)
            except AuthenticationFailed:
                continue
            return True
    return False


def locked_card_reenrolls(lab: Lab) -> AttackResult:
    name = "lock the card for good"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        before = lab.steal(owner, "copy")
        locked = False
        for n in range(CLAIMED_GUESS_LIMIT):
            try:
                pay(owner, card_id, OTHER_PIN, key=f"wrong-{n}")
            except _errors.WrongPin:
                continue
            except _errors.CardLocked:
                locked = True
        if not locked:
            return AttackResult(name, HAD, "the card did not lock", False)
        with Pin.from_digits(NEW_PIN) as new:
            owner.device.reenroll(card_id, sample_card(), new)
        paid = pay(owner, card_id, NEW_PIN, key="back").approved
        old_ok, old_got = _refused(lambda: pay(owner, card_id, PIN, key="old-pin"),
                                   _errors.WrongPin)
        # (DeviceCloned: the copy's share version is below the re-enrollment's floor.)
        copy_ok, copy_got = _refused(lambda: pay(before, card_id, NEW_PIN, key="copy"),
                                     _errors.WrongPin, _errors.TamperedData,
                                     _errors.CardLocked, _errors.DeviceCloned)
        passed = paid and old_ok and copy_ok
        return AttackResult(
            name, HAD,
            f"locked; re-enrolled with the card and a new PIN: {'PAID' if paid else 'refused'}"
            f"; old PIN: {old_got}; a copy of the device from before: {copy_got}", passed)

    return guarded(name, HAD, attack)


def _refused(call: Callable[[], object], *expected: type[BaseException]) -> tuple[bool, str]:
    try:
        call()
    except expected as exc:
        return True, type(exc).__name__
    except _errors.VaultError as exc:
        return False, f"unexpected {type(exc).__name__}"
    return False, "ACCEPTED"


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (drop_authorizations, drop_authorization_reply, drop_evaluation_replies,
                   unproven_evaluations_test_nothing, locked_card_reenrolls):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
