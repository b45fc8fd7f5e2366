"""Scenario 11, another local user: an account on the same machine as the device, under
the usual umask 022, that reads or replaces whatever the device's files let it.

- :func:`read_device_files`: a device is created in a folder of the user's (0755),
  enrolls and pays; then every file it made (``device.db``, its WAL and SHM) must be
  closed to group and others, and nobody else may write the folder. A readable file
  would make this user the thief with the device: it could burn the card's guesses
  with the device's own key.
- :func:`reopen_loosened_store`: the store's files are opened up (0644, as a copy or
  an old version leaves them); the device must refuse to open them and say which
  ``chmod`` to run, rather than keep using files others can read.

In-process only: the files are on the attacker's machine, not the deployment's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import _errors
from .._files import SQLITE_SIBLINGS
from .._pin import Pin
from .._profiles import KdfProfile
from ..device import Device
from ..server import ShareServer
from ._harness import PIN, AttackResult, Deployment, Lab, Options, guarded, sample_card, skipped

__all__ = ["read_device_files", "reopen_loosened_store", "run"]

HAD = "a local account on the device's machine (umask 022)"
UMASK = 0o022
"""The default umask of most systems: files 0644 and folders 0755 unless a program says
otherwise, so the defense must not depend on a stricter one."""


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _files(db: Path) -> list[Path]:
    return [p for p in (db, *(Path(f"{db}{s}") for s in SQLITE_SIBLINGS)) if p.exists()]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read_device_files(lab: Lab) -> AttackResult:
    name = "read the device's files as another user"

    def attack() -> AttackResult:
        db = lab.root / "wallet" / "device.db"
        with _umask(UMASK):
            db.parent.mkdir()  # 0755: a folder the user made, as a project folder is
            device = Device.open(db, server=_server(lab), kdf=KdfProfile.TEST_ONLY)
        try:
            with _umask(UMASK), Pin.from_digits(PIN) as pin:
                card_id = device.enroll(sample_card(), pin)
                device.authorize(card_id, pin, amount=12000, currency="KRW",
                                 merchant="Gift Shop", idempotency_key="order-1")
            files = _files(db)
            modes = {p.name: _mode(p) for p in files}
            folder = _mode(db.parent)
        finally:
            device.close()
        readable = [f"{n} {m:o}" for n, m in modes.items() if m & 0o077]
        has_wal = any(n.endswith("-wal") for n in modes)
        passed = not readable and not folder & 0o022 and has_wal
        if readable:
            got = f"readable by others: {', '.join(readable)}"
        elif folder & 0o022:
            got = f"files closed, but others can write the folder ({folder:o})"
        else:
            got = (f"nothing: {', '.join(f'{n} {m:o}' for n, m in modes.items())}, "
                   f"folder {folder:o}")
        detail = "" if has_wal else "control failed: the device made no WAL to check"
        return AttackResult(name, HAD, got, passed, detail)

    return guarded(name, HAD, attack)


def reopen_loosened_store(lab: Lab) -> AttackResult:
    name = "make the device use files others can read"

    def attack() -> AttackResult:
        db = lab.root / "loose.db"
        Device.open(db, server=_server(lab), kdf=KdfProfile.TEST_ONLY).close()
        for path in _files(db):
            path.chmod(0o644)
        try:
            Device.open(db, server=_server(lab), kdf=KdfProfile.TEST_ONLY).close()
        except _errors.ConfigurationError as exc:
            says = f"chmod 600 {db}" in str(exc)
            return AttackResult(name, HAD, "refused: ConfigurationError"
                                + (", naming the chmod to run" if says else ""), says,
                                "" if says else f"no chmod in: {exc}")
        return AttackResult(name, HAD, "the device opened a store others can read", False)

    return guarded(name, HAD, attack)


def _server(lab: Lab) -> ShareServer:
    if lab.server is None:
        raise RuntimeError("needs the in-process server")
    return lab.server


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    if os.name != "posix":
        why = "file modes are POSIX"
        return [skipped(n, HAD, why) for n in ("read the device's files as another user",
                                               "make the device use files others can read")]
    results = []
    for attack in (read_device_files, reopen_loosened_store):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
