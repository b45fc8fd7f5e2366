"""Scenario 20, a copy of the device from before a payment: a byte copy of the device's
files (a backup, a forensic image, a repair shop, a malicious app), and the right PIN.

Every approved payment re-splits the shares (``server/_refresh.py``): the server moves
to a new version and the copy's share no longer combines with it.

- :func:`copy_after_the_owner_pays`: the copy is taken, the owner pays twice (the
  second payment shows the server the owner holds the new version), then the copy pays
  with the right PIN: refused with ``DeviceCloned`` before any PIN is evaluated (no
  evaluation comes back, no guess is spent, nothing is charged), and the clone is
  recorded: the card says ``cloned`` (and, in-process, the audit log ``clone_detected``).
- :func:`copy_that_pays_first`: the copy pays first (with the PIN it can: that one
  payment is the residual risk). The owner's next payment is refused with
  ``DeviceCloned`` ("another copy of this device"), nothing charged, the card says
  ``cloned``; the owner re-enrolls with the card and a new PIN and pays again, and the
  copy, even with the new PIN, is cut off (``DeviceCloned``; in-process the audit log
  says ``stale_copy_refused``) without marking the card again.

Both run against a remote deployment too (``--server``): they need only the device's
files and the network. Charges and the audit log are checked in-process only (a
deployment's acquirer and log are not ours to read); the card's state is asked with
the device's key, as an app would.
"""

from __future__ import annotations

from .. import _errors
from .._pin import Pin
from .._protocol import EvaluateReply
from ._harness import (
    AttackResult,
    Deployment,
    Lab,
    Options,
    Victim,
    guarded,
    pay,
    refused,
    sample_card,
)

__all__ = ["copy_after_the_owner_pays", "copy_that_pays_first", "run"]

HAD = "a byte copy of the device's files from before a payment, and the right PIN"
NEW_PIN = "602913"
"""The owner's PIN after re-enrolling (the copy is handed it too)."""
TOLD = "another copy of this device"
"""What ``DeviceCloned`` tells the owner, in its own words."""


class _Before:
    """What the server has counted and charged for a card, to compare after an attack."""

    def __init__(self, lab: Lab, owner: Victim, card_id: str) -> None:
        self.lab, self.owner, self.card_id = lab, owner, card_id
        self.calls = lab.acquirer_calls()
        self.used = owner.device.card_state(card_id).guesses_used
        self.unproven = self._unproven()

    def _unproven(self) -> int | None:
        if self.lab.server is None:
            return None
        [(n,)] = self.lab.server.inspector().query(
            "SELECT unproven FROM cards WHERE card_id = ?", self.card_id)
        return int(n)

    def charged(self) -> int | None:
        """Charges since, or None where the acquirer cannot be seen (remotely)."""
        calls = self.lab.acquirer_calls()
        return None if calls is None or self.calls is None else calls - self.calls

    def spent(self) -> int:
        """Guesses (and, in-process, evaluations of the unproven budget) spent since."""
        used = self.owner.device.card_state(self.card_id).guesses_used - self.used
        unproven = self._unproven()
        extra = 0 if unproven is None or self.unproven is None else unproven - self.unproven
        return used + extra


def _audited(lab: Lab, event: str) -> bool | None:
    """Whether the server's audit log holds ``event``; None where it cannot be read."""
    if lab.server is None:
        return None
    return any(e["event"] == event for e in lab.server.audit_entries())


def _recorded(audited: bool | None, event: str) -> str:
    return {None: "audit log not visible remotely", True: f"audit {event}",
            False: f"NO audit {event}"}[audited]


def copy_after_the_owner_pays(lab: Lab) -> AttackResult:
    name = "pay with a copy taken before the owner's payments"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        copy = lab.steal(owner, "copy")
        paid = [pay(owner, card_id, key=f"owner-{n}").approved for n in range(2)]
        before = _Before(lab, owner, card_id)
        ok, got = refused(lambda: pay(copy, card_id, key="copy-1"), _errors.DeviceCloned)
        evaluations = len(copy.wire.of(EvaluateReply))
        charged, spent = before.charged(), before.spent()
        cloned = owner.device.card_state(card_id).cloned
        audited = _audited(lab, "clone_detected")
        passed = (all(paid) and ok and evaluations == 0 and charged in (None, 0)
                  and spent == 0 and cloned and audited in (None, True))
        return AttackResult(
            name, HAD,
            f"owner paid twice; the copy with the right PIN: {got}; evaluations returned "
            f"to it: {evaluations}; guesses spent: {spent}; charged "
            f"{'?' if charged is None else charged} time(s); card "
            f"{'marked cloned' if cloned else 'NOT marked cloned'}; "
            f"{_recorded(audited, 'clone_detected')}", passed)

    return guarded(name, HAD, attack)


def copy_that_pays_first(lab: Lab) -> AttackResult:
    name = "pay with the copy before the owner does"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        copy = lab.steal(owner, "copy")
        first = pay(copy, card_id, key="copy-1").approved  # the residual: it can pay once
        before = _Before(lab, owner, card_id)
        told = ""
        try:
            pay(owner, card_id, key="owner-1")
            owner_got = "the owner PAID, the copy went unnoticed"
        except _errors.DeviceCloned as exc:
            owner_got, told = "the owner got DeviceCloned", str(exc)
        except _errors.VaultError as exc:
            owner_got = f"the owner got {type(exc).__name__}"
        charged = before.charged()
        cloned = owner.device.card_state(card_id).cloned
        audited = _audited(lab, "clone_detected")
        with Pin.from_digits(NEW_PIN) as new_pin:
            owner.device.reenroll(card_id, sample_card(), new_pin)
        back = pay(owner, card_id, NEW_PIN, key="owner-2").approved
        cut_ok, cut_got = refused(lambda: pay(copy, card_id, NEW_PIN, key="copy-2"),
                                  _errors.DeviceCloned)
        state = owner.device.card_state(card_id)
        again = pay(owner, card_id, NEW_PIN, key="owner-3").approved
        cut_audited = _audited(lab, "stale_copy_refused")
        passed = (TOLD in told and charged in (None, 0) and cloned
                  and audited in (None, True) and back and cut_ok and not state.cloned
                  and again and cut_audited in (None, True))
        first_got = "PAID (residual: the first to pay wins)" if first else "refused"
        heard = f"told: {TOLD}" if TOLD in told else "not told"
        marked = "marked again" if state.cloned else "not marked again"
        return AttackResult(
            name, HAD,
            f"the copy's own payment: {first_got}; then {owner_got} ({heard}), charged "
            f"{'?' if charged is None else charged} time(s), card "
            f"{'marked cloned' if cloned else 'NOT marked cloned'}; the owner re-enrolled: "
            f"{'PAID' if back and again else 'refused'}; the copy then, with the new PIN: "
            f"{cut_got} (card {marked}; {_recorded(cut_audited, 'stale_copy_refused')})",
            passed)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (copy_after_the_owner_pays, copy_that_pays_first):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
