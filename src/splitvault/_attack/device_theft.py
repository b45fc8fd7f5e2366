"""Scenario 1, the stolen device: a full copy of the device's files, and every message the
device ever sent or received.

- :func:`brute_force`: guessing through the real server locks the card after the limit
  (5), and the right PIN is refused afterwards, for the thief and the owner alike.
- :func:`offline_pin_test`: the files plus the whole transcript give no offline test of
  a PIN. The thief's best derivation (each recorded OPRF evaluation finalized with the
  blind it never learned replaced by 1) matches the verifier (which the thief is
  even handed: the transcript holds it only sealed to the server) for no candidate,
  the right PIN included; the recorded blinded elements are
  not the unblinded hash of any candidate. Positive control: one fresh, counted
  evaluation from the server with the stolen device key does match, so the harness
  would see a match if there were one.
- :func:`files_hold_nothing_of_the_pin`: no form of the PIN or the verifier in the files.
- :func:`one_pin_for_three_cards`: a device holding three cards under one PIN gives
  the thief the wallet's limit (5) of PIN tests between them, not 5 per card: the
  owner's PIN, the thief's sixth guess, is never tried.

Every attack here runs against a remote deployment too (``--server``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .. import _errors
from .._pin import Pin
from .._protocol import (
    EnrollBegin,
    EnrollBeginReply,
    EvaluateReply,
    EvaluateRequest,
    pin_input,
)
from ..crypto import oprf
from ..hazmat import BlindedPin, DeviceCard
from ._harness import (
    CLAIMED_GUESS_LIMIT,
    OTHER_PIN,
    PIN,
    AttackResult,
    Deployment,
    Lab,
    Options,
    Victim,
    guarded,
    pay,
)
from ._needles import Needles
from ._requests import device_verifier, signed_evaluate
from .scan import sqlite_files

__all__ = ["brute_force", "files_hold_nothing_of_the_pin", "offline_pin_test",
           "one_pin_for_three_cards", "run"]

HAD = "a byte copy of the device's files"
HAD_TRANSCRIPT = "the device's files and every message it exchanged"
#: What a thief tries first: the most common PINs, then the owner's other PIN.
GUESSES = ("123456", "000000", "111111", "121212", "654321", "112233", "147258", OTHER_PIN)
ONE = (1).to_bytes(32, "little")
"""The scalar 1: finalizing with it treats a recorded evaluation as if it were unblinded."""


def brute_force(lab: Lab) -> AttackResult:
    name = "brute-force the PIN through the server"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        pay(owner, card_id)
        thief = lab.steal(owner)
        tried = 0
        locked = False
        for guess in GUESSES[:CLAIMED_GUESS_LIMIT + 3]:
            tried += 1
            try:
                pay(thief, card_id, guess, key=f"brute-{tried}")
            except _errors.WrongPin:
                continue
            except _errors.CardLocked:
                locked = True
                break
            return AttackResult(name, HAD, f"wrong PIN {guess} was accepted", False)
        thief_ok, thief_got = _refused_right_pin(thief, card_id, "thief")
        owner_ok, owner_got = _refused_right_pin(owner, card_id, "owner")
        passed = locked and tried <= CLAIMED_GUESS_LIMIT and thief_ok and owner_ok
        got = (f"locked at wrong guess {tried} (limit {CLAIMED_GUESS_LIMIT}); right PIN "
               f"then refused: {thief_got}, {owner_got}" if locked
               else f"{tried} wrong guesses and still not locked")
        return AttackResult(name, HAD, got, passed)

    return guarded(name, HAD, attack)


def one_pin_for_three_cards(lab: Lab) -> AttackResult:
    name = "guess one PIN across the three cards of a stolen device"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        cards = [lab.enroll(owner) for _ in range(3)]  # one PIN for all three
        pay(owner, cards[0])
        thief = lab.steal(owner)
        # The thief's list holds the owner's PIN right after the limit: with 5 tests
        # per card (15 in all) he would reach it; with the wallet's 5 he must not.
        guesses = [*GUESSES[:CLAIMED_GUESS_LIMIT], PIN, *GUESSES[CLAIMED_GUESS_LIMIT:]]
        wrong, locked, card = 0, 0, 0
        for n, guess in enumerate(guesses):
            while card < len(cards):
                try:
                    pay(thief, cards[card], guess, key=f"shared-{n}-{card}")
                except _errors.WrongPin:
                    wrong += 1
                    break
                except _errors.CardLocked:
                    locked, card = locked + 1, card + 1  # this guess again, next card
                    continue
                return AttackResult(name, HAD, f"PIN {guess} (guess {n + 1}) paid with card "
                                    f"{card + 1} after {wrong} wrong answers", False)
            if card == len(cards):
                break
        owner_ok, owner_got = _refused_right_pin(owner, cards[-1], "owner")
        # The wrong answers, plus the proof that locked (it said "wrong" as a lock).
        tests = wrong + (1 if locked else 0)
        passed = locked == len(cards) and tests <= CLAIMED_GUESS_LIMIT and owner_ok
        got = (f"{wrong} wrong-PIN answers across {len(cards)} cards, then all {locked} "
               f"locked: at most {tests} PIN tests (limit {CLAIMED_GUESS_LIMIT}); the "
               f"owner's PIN, guess {CLAIMED_GUESS_LIMIT + 1}, never tried; {owner_got}"
               if locked == len(cards) else
               f"{wrong} wrong-PIN answers and {len(cards) - locked} cards still open")
        return AttackResult(name, HAD, got, passed)

    return guarded(name, HAD, attack)


def _refused_right_pin(victim: Victim, card_id: str, who: str) -> tuple[bool, str]:
    try:
        pay(victim, card_id, PIN, key=f"after-lock-{who}")
    except _errors.CardLocked:
        return True, f"{who} CardLocked"
    except _errors.VaultError as exc:
        return False, f"{who} {type(exc).__name__}"
    return False, f"{who} PAID with the right PIN after the lock"


def offline_pin_test(lab: Lab) -> AttackResult:
    name = "test PINs offline with the files and transcript"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        pay(owner, card_id)
        with contextlib.suppress(_errors.WrongPin):
            pay(owner, card_id, OTHER_PIN, key="typo")
        thief = lab.steal(owner)
        stolen = thief.device._store.get(card_id)
        wire = owner.wire
        verifier = _verifier(lab, owner, card_id)
        evaluated = [r.evaluated for r in wire.of(EvaluateReply)]
        evaluated += [r.evaluated for r in wire.of(EnrollBeginReply)]
        blinded = {m.blinded for m in wire.of(EvaluateRequest)}
        blinded |= {m.blinded for m in wire.of(EnrollBegin)}
        candidates = (PIN, *GUESSES)
        matches: list[str] = []
        for digits in candidates:
            x = pin_input(card_id, digits.encode())
            for element in evaluated:
                if device_verifier(stolen, oprf.finalize(x, ONE, element)) == verifier:
                    matches.append(digits)
            _, unblinded = oprf.blind(x, rng=lambda: ONE)
            if unblinded in blinded:
                matches.append(digits)
        control = device_verifier(stolen, _fresh_evaluation(thief, stolen, PIN)) == verifier
        tested = len(candidates) * (len(evaluated) + 1)
        if matches:
            got = f"PIN {matches[0]} confirmed offline"
        else:
            got = (f"0 of {tested} offline tests matched (the right PIN included); only a "
                   "fresh, counted server evaluation does")
        detail = "" if control else "positive control failed: the harness cannot see a match"
        return AttackResult(name, HAD_TRANSCRIPT, got, not matches and control, detail)

    return guarded(name, HAD_TRANSCRIPT, attack)


def _verifier(lab: Lab, owner: Victim, card_id: str) -> bytes:
    """The card's PIN verifier. The transcript holds it only sealed to the server (in
    the clear it would test guesses, see ``_protocol.proof_aad``); the thief is handed
    it anyway, from the server in-process, so that this attack checks the stronger
    claim. Remotely, the harness derives it as the owner's device did, from one more
    counted evaluation of the right PIN."""
    if lab.server is not None:
        return lab.server.store.card(card_id).verifier  # type: ignore[union-attr]
    card = owner.device._store.get(card_id)
    return device_verifier(card, _fresh_evaluation(owner, card, PIN))


def _fresh_evaluation(thief: Victim, card: DeviceCard, digits: str) -> bytearray:
    """One online evaluation, signed with the stolen device key: counted by the server."""
    with Pin.from_digits(digits) as pin, BlindedPin(card.card_id, pin) as blinded:
        request = signed_evaluate(card.card_id, card.sign_seed, blinded.blinded, card=card)
        return blinded.finalize(thief.wire.evaluate(request).evaluated)


def files_hold_nothing_of_the_pin(lab: Lab) -> AttackResult:
    name = "search the files for the PIN or its verifier"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        pay(owner, card_id)
        verifier = _verifier(lab, owner, card_id)
        needles = Needles().text("PIN", PIN).data("verifier", verifier)
        found = [f"{path.name}: {hit}" for path in sqlite_files(owner.path)
                 for hit in needles.search(Path(path).read_bytes())]
        got = "; ".join(found) if found else "no PIN and no verifier, in any encoding"
        return AttackResult(name, HAD, got, not found)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (brute_force, offline_pin_test, files_hold_nothing_of_the_pin,
                   one_pin_for_three_cards):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
