"""Scenario 21, an old server backup with the current device: a backup of the server's
database taken before the card's payments (a nightly dump, a snapshot, a stolen backup
tape), the KEK, and the device as it is today.

Every approved payment re-splits the shares: the device's share moves on with the
server's, so a server share from before no longer combines with it.

- :func:`backup_read_with_the_kek`: the insider opens the backup with the KEK and
  combines every share version it holds of the card with every share version the
  device holds now: none opens the card. Positive control: the live server's share
  with the device's share of the same version does, so the harness would see a match.
- :func:`backup_restored`: the server is restored from that backup and the owner pays
  with the right PIN: ``ServerRolledBack`` ("restored from an old backup?"), no
  evaluation returned, no guess spent, nothing charged, no ledger row, and the restored
  server's audit log records ``share_version_ahead``. Positive control: a copy of the
  device from the backup's time still pays on the restored server, so the refusal is
  the versions', not a broken restore. The way back: the owner re-enrolls the card
  (device key and the card itself) on the restored server, and pays again.

In-process only: a remote deployment's backups and files are not ours to read or restore.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from .. import _errors
from .._pin import Pin
from .._protocol import EvaluateReply
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.sealing import open_sealed
from ..crypto.shares import combine
from ..hazmat import card_record_aad
from ..server import Kek, ShareServer
from ._harness import (
    IN_PROCESS_ONLY,
    AttackResult,
    Deployment,
    Lab,
    Options,
    guarded,
    pay,
    refused,
    sample_card,
    skipped,
)

__all__ = ["backup_read_with_the_kek", "backup_restored", "run"]

HAD = "a backup of the server's database from before two payments, its KEK and the device"
NEW_PIN = "602913"
"""The PIN the owner re-enrolls the card with, on the restored server."""
PAYMENTS = 2
"""Payments between the backup and the attack: the second one shows the server the
device's new share, so the backup is a whole committed version behind."""


def _backup(lab: Lab) -> Path:
    """A consistent copy of the live server's database (SQLite's online backup, as an
    operator's backup job takes it), in a folder of its own."""
    folder = lab.root / "backup"
    folder.mkdir(mode=0o700)
    target = folder / lab.server_path.name
    source = sqlite3.connect(f"file:{lab.server_path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    target.chmod(0o600)
    return target


def _restore(lab: Lab, backup: Path) -> None:
    """Put the backup back in place of the server's database (run while it is stopped).
    The KEK file stays: a backup of the database alone, restored under the same key."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{lab.server_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, lab.server_path)
    lab.server_path.chmod(0o600)


def _shares(database: Path, kek_path: Path, card_id: str) -> list[tuple[str, bytearray]]:
    """Every version of the card's server share in ``database``, opened with the KEK."""
    keks = {kek.kid: kek for kek in Kek.load_all(kek_path)}
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        share, share_next, version = db.execute(
            "SELECT share, share_next, share_version FROM cards WHERE card_id = ?",
            (card_id,)).fetchone()
    finally:
        db.close()
    out = []
    for label, blob in ((f"S_{version}", share), (f"S_{int(version) + 1}", share_next)):
        if blob is not None:
            blob = bytes(blob)
            out.append((label, keks[blob[:8]].unwrap("share", card_id, blob)))
    for kek in keks.values():
        kek.wipe()
    return out


def _opens(device_share: bytes, server_share: bytes | bytearray, sealed: bytes,
           card_id: str) -> bool:
    key = combine(device_share, server_share)
    try:
        wipe(open_sealed(key, sealed, card_record_aad(card_id)))
    except AuthenticationFailed:
        return False
    finally:
        wipe(key)
    return True


def _unproven(server: ShareServer, card_id: str) -> int:
    """Evaluations counted against the card's unproven budget (guesses in waiting)."""
    [(n,)] = server.inspector().query("SELECT unproven FROM cards WHERE card_id = ?", card_id)
    return int(n)


def backup_read_with_the_kek(lab: Lab) -> AttackResult:
    name = "combine an old server backup with the device's share"

    def attack() -> AttackResult:
        if lab.server is None:
            return skipped(name, HAD, IN_PROCESS_ONLY)
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        backup = _backup(lab)
        for n in range(PAYMENTS):
            pay(owner, card_id, key=f"order-{n}")
        held = owner.device._store.get(card_id)
        device = [(f"D_{held.share_version}", held.device_share)]
        if held.next_share is not None:
            device.append((f"D_{held.share_version + 1}", held.next_share))
        kek_path = Path(f"{lab.server_path}.kek")
        old = _shares(backup, kek_path, card_id)
        live = _shares(lab.server_path, kek_path, card_id)
        try:
            matches = [f"{d} xor {s}" for d, dev in device for s, srv in old
                       if _opens(dev, srv, held.sealed_record, card_id)]
            # The live server's share of the device's current version opens the card.
            control = any(s == d.replace("D_", "S_") and _opens(dev, srv, held.sealed_record,
                                                                card_id)
                          for d, dev in device for s, srv in live)
        finally:
            for _, share in old + live:
                wipe(share)
        tried = len(device) * len(old)
        got = (f"the card opened with {matches[0]}" if matches else
               f"0 of {tried} combinations ({', '.join(s for s, _ in old)} from the backup "
               f"with {', '.join(d for d, _ in device)} on the device) open the card")
        detail = "" if control else "positive control failed: the harness cannot see a match"
        return AttackResult(name, HAD, got, not matches and control, detail)

    return guarded(name, HAD, attack)


def backup_restored(lab: Lab) -> AttackResult:
    name = "restore an old server backup and pay with the current device"

    def attack() -> AttackResult:
        if lab.server is None:
            return skipped(name, HAD, IN_PROCESS_ONLY)
        owner = lab.device("owner")
        card_id = lab.enroll(owner)
        backup = _backup(lab)
        then = lab.steal(owner, "from-the-backups-time")
        for n in range(PAYMENTS):
            pay(owner, card_id, key=f"order-{n}")
        server = lab.restart(while_stopped=lambda: _restore(lab, backup))
        calls, before = lab.acquirer_calls(), len(owner.wire.of(EvaluateReply))
        unproven = _unproven(server, card_id)
        ok, got = refused(lambda: pay(owner, card_id, key="after-restore"),
                          _errors.ServerRolledBack)
        evaluations = len(owner.wire.of(EvaluateReply)) - before
        state = server.card_state(card_id)
        spent = state.guesses_used + _unproven(server, card_id) - unproven
        charged = (lab.acquirer_calls() or 0) - (calls or 0)
        ledger = server.payment_state(card_id, "after-restore")
        audited = any(e["event"] == "share_version_ahead" for e in server.audit_entries())
        control = pay(then, card_id, key="control").approved
        # The way back: re-enrollment with the device key and the card itself.
        with Pin.from_digits(NEW_PIN) as new_pin:
            owner.device.reenroll(card_id, sample_card(), new_pin)
        back = pay(owner, card_id, NEW_PIN, key="re-enrolled").approved
        passed = (ok and evaluations == 0 and spent == 0 and charged == 0
                  and ledger is None and audited and control and back)
        detail = "" if control else ("positive control failed: a device from the backup's "
                                     "time cannot pay on the restored server either")
        return AttackResult(
            name, HAD,
            f"the current device with the right PIN: {got}; evaluations returned: "
            f"{evaluations}; guesses spent: {spent}; charged {charged} "
            f"time(s); ledger row: {ledger or 'none'}; "
            f"{'audit share_version_ahead' if audited else 'NO audit share_version_ahead'}; "
            f"re-enrolled with the card: {'PAID' if back else 'refused'}", passed, detail)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (backup_read_with_the_kek, backup_restored):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
