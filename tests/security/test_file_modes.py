"""Issue 9 item 3: the device's files are its own. Under the usual umask 022 the store
is created 0600 (WAL and SHM too) in a 0700 folder, and a store others can read is
refused with the ``chmod`` to run."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import splitvault as sv
from splitvault._attack import file_modes
from splitvault._attack._harness import Lab
from support import held

pytestmark = [pytest.mark.security,
              pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")]
PIN = "739184"


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)




def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


def test_device_files_are_created_0600_in_a_0700_folder(tmp_path: Path,
                                                        server: sv.ShareServer) -> None:
    """After enrollment and a payment, device.db, its WAL and SHM are 0600 and the
    folder the store made is 0700, although the umask would give 0644 and 0755."""
    db = tmp_path / "new" / "wallet" / "device.db"
    with sv.Device.open(db, server=server, kdf=sv.KdfProfile.TEST_ONLY) as device, \
            sv.Pin.from_digits(PIN) as pin:
        card_id = device.enroll(sv.Card("4111111111111111", "12/30", "KIM MINSU"), pin)
        device.authorize(card_id, pin, amount=100, currency="KRW", merchant="Shop",
                         idempotency_key="k")
        found = modes(db.parent)
    assert found["device.db"] == 0o600
    assert found.get("device.db-wal") == 0o600  # WAL mode: the file is there while open
    assert all(mode == 0o600 for mode in found.values()), found
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


@pytest.mark.parametrize("suffix", ["", "-wal"])
def test_a_store_others_can_read_is_refused_with_the_chmod(
        tmp_path: Path, server: sv.ShareServer, suffix: str) -> None:
    """A store (or its WAL) opened up to 0644 is refused: a ConfigurationError that
    names the file and the command that fixes it; after the chmod it opens."""
    db = tmp_path / "device.db"
    sv.Device.open(db, server=server, kdf=sv.KdfProfile.TEST_ONLY).close()
    loose = Path(f"{db}{suffix}")
    loose.write_bytes(b"") if not loose.exists() else None
    loose.chmod(0o644)
    with pytest.raises(sv.ConfigurationError, match=f"run: chmod 600 {loose}$"):
        sv.Device.open(db, server=server, kdf=sv.KdfProfile.TEST_ONLY)
    loose.chmod(0o600)
    sv.Device.open(db, server=server, kdf=sv.KdfProfile.TEST_ONLY).close()


def test_a_folder_others_can_write_is_refused(tmp_path: Path, server: sv.ShareServer) -> None:
    """Write access to the folder would let others delete or replace the store."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(sv.ConfigurationError, match=f"run: chmod 700 {folder}$"):
        sv.Device.open(folder / "device.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    assert not (folder / "device.db").exists()


def test_attack_read_device_files(lab: Lab) -> None:
    """Scenario 11: another local user finds nothing it can read."""
    held(file_modes.read_device_files(lab))


def test_attack_reopen_loosened_store(lab: Lab) -> None:
    """Scenario 11: the device refuses a store others can read."""
    held(file_modes.reopen_loosened_store(lab))
