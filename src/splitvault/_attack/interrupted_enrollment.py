"""Scenario 18, interrupted enrollment: a lost reply or a crash half-way through
enrolling must not leave the server holding a share that no one can delete.

- :func:`lost_finish_reply`: ``enroll_finish`` reaches the server, which commits, and
  its reply is lost (the device sees ``ServerUnavailable``; the network also drops the
  device's first attempt to clean up). The device keeps its pending row; opened
  again, it cancels the enrollment with the card's device key: the server holds no
  card the device does not.
- :func:`crash_before_commit` / :func:`crash_after_commit`: the device dies with its
  pending row written, before or after the server committed (its files are copied at
  that instant, as a power cut leaves them). Opened again, it cancels: no pending
  row and no card stay on the server.
- :func:`unfinished_expire`: an enrollment never finished is refused after its
  time-to-live and swept by the server.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _errors
from .._profiles import KdfProfile
from .._protocol import EnrollFinish
from ..device import Device
from ._harness import IN_PROCESS_ONLY, AttackResult, Deployment, Lab, Options, guarded, skipped

__all__ = ["crash_after_commit", "crash_before_commit", "lost_finish_reply", "run",
           "unfinished_expire"]

HAD = "a network that drops replies, or a device that loses power"


class Interrupting:
    """A service that runs ``on_finish(forward)`` instead of ``enroll_finish`` and,
    while ``drop_deletes`` is above 0, loses that many delete requests."""

    def __init__(self, inner: Any, on_finish: Callable[[Callable[[], None]], None],
                 drop_deletes: int = 0) -> None:
        self.inner = inner
        self.on_finish = on_finish
        self.drop_deletes = drop_deletes

    def enroll_finish(self, request: EnrollFinish) -> None:
        self.on_finish(lambda: self.inner.enroll_finish(request))

    def delete(self, request: Any) -> None:
        if self.drop_deletes > 0:
            self.drop_deletes -= 1
            raise _errors.ServerUnavailable("request lost (attack)")
        self.inner.delete(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def snapshot(path: Path, target: Path) -> None:
    """The device's files as a power cut at this instant leaves them."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{target}{suffix}")
            Path(f"{target}{suffix}").chmod(0o600)


def _enroll(lab: Lab, device: Device) -> None:
    from .._pin import Pin
    from ._harness import PIN, sample_card

    with Pin.from_digits(PIN) as pin:
        device.enroll(sample_card(), pin)


def _state(lab: Lab) -> tuple[int, int]:
    if lab.server is None:
        raise RuntimeError("needs the in-process server")
    return lab.server.store.card_count(), lab.server.store.pending_enrollments()


def _reopen(lab: Lab, path: Path) -> Device:
    if lab.server is None:
        raise RuntimeError("needs the in-process server")
    return Device.open(path, server=lab.server, kdf=KdfProfile.TEST_ONLY)


def lost_finish_reply(lab: Lab) -> AttackResult:
    name = "lose enroll_finish's reply to strand the server's share"

    def attack() -> AttackResult:
        if lab.server is None:
            return skipped(name, HAD, IN_PROCESS_ONLY)
        path = lab.root / "lost-reply.db"

        def lose_reply(forward: Callable[[], None]) -> None:
            forward()
            raise _errors.ServerUnavailable("reply lost (attack)")

        service = Interrupting(lab.server, lose_reply, drop_deletes=1)
        device = Device.open(path, server=service, kdf=KdfProfile.TEST_ONLY)
        with contextlib.suppress(_errors.ServerUnavailable):
            _enroll(lab, device)
        stranded = _state(lab)
        device.close()
        again = _reopen(lab, path)
        cards, pending = _state(lab)
        held = again.cards() == [] and (cards, pending) == (0, 0)
        again.close()
        return AttackResult(name, HAD, f"server cards after the lost reply: {stranded[0]}; "
                            f"after the device reopened: {cards} active, {pending} pending",
                            held)

    return guarded(name, HAD, attack)


def _crash(lab: Lab, name: str, after_commit: bool) -> AttackResult:
    def attack() -> AttackResult:
        if lab.server is None:
            return skipped(name, HAD, IN_PROCESS_ONLY)
        path, copy = lab.root / "crashing.db", lab.root / "after-crash.db"

        def crash(forward: Callable[[], None]) -> None:
            if after_commit:
                forward()
            snapshot(path, copy)
            raise _errors.ServerUnavailable("power cut (attack)")

        service = Interrupting(lab.server, crash, drop_deletes=10)
        device = Device.open(path, server=service, kdf=KdfProfile.TEST_ONLY)
        with contextlib.suppress(_errors.ServerUnavailable):
            _enroll(lab, device)
        device.close()
        before = _state(lab)
        again = _reopen(lab, copy)
        cards, pending = _state(lab)
        held = again.cards() == [] and (cards, pending) == (0, 0)
        again.close()
        return AttackResult(name, HAD, f"server (active, pending) at the crash: {before}; "
                            f"after the device reopened: ({cards}, {pending})", held)

    return guarded(name, HAD, attack)


def crash_before_commit(lab: Lab) -> AttackResult:
    return _crash(lab, "crash before the server commits the enrollment", False)


def crash_after_commit(lab: Lab) -> AttackResult:
    return _crash(lab, "crash after the server committed the enrollment", True)


def unfinished_expire(lab: Lab) -> AttackResult:
    name = "keep an unfinished enrollment on the server for good"

    def attack() -> AttackResult:
        if lab.server is None:
            return skipped(name, HAD, IN_PROCESS_ONLY)
        finishes: list[Callable[[], None]] = []

        def never_arrives(forward: Callable[[], None]) -> None:
            finishes.append(forward)  # kept, to be sent after the TTL
            raise _errors.ServerUnavailable("request lost (attack)")

        device = Device.open(lab.root / "slow.db", server=Interrupting(
            lab.server, never_arrives, drop_deletes=10), kdf=KdfProfile.TEST_ONLY)
        with contextlib.suppress(_errors.ServerUnavailable):
            _enroll(lab, device)
        device.close()
        lab.clock.advance(lab.server.profile.enrollment_ttl + 1)
        late = "accepted"
        try:
            finishes[0]()
        except _errors.VaultError as exc:
            late = type(exc).__name__
        swept = lab.server.store.sweep(lab.clock())
        pending = lab.server.store.pending_enrollments()
        held = late == "UnknownCard" and pending == 0 and swept >= 1
        return AttackResult(name, HAD, f"finish after the TTL: {late}; swept {swept}, "
                            f"{pending} pending left", held)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (lost_finish_reply, crash_before_commit, crash_after_commit,
                   unfinished_expire):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
