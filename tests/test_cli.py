"""The command line: keys generate / rotate and audit, through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import splitvault as sv
from splitvault.server import Kek
from support import pay


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "splitvault", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_keys_generate_and_rotate(tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """generate writes a 0600 key; rotate re-wraps under a new id, retires the old key,
    and the vault keeps working with the rotated key file."""
    kek = tmp_path / "kek.key"
    done = _run("keys", "generate", "--out", kek)
    assert done.returncode == 0, done.stderr
    assert kek.stat().st_mode & 0o777 == 0o600
    assert _run("keys", "generate", "--out", kek).returncode == 2  # never overwrites
    old_id = Kek.load(kek).kid_hex
    server = sv.ShareServer.open(tmp_path / "s.db", kek_file=kek)
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    first = pay(device, card_id, pin)
    server.close()
    rotated = _run("keys", "rotate", "--db", tmp_path / "s.db", "--kek-file", kek)
    assert rotated.returncode == 0, rotated.stderr
    assert old_id in rotated.stdout and Kek.load(kek).kid_hex != old_id
    assert not Path(f"{kek}.new").exists()
    server = sv.ShareServer.open(tmp_path / "s.db", kek_file=kek)
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    assert pay(device, card_id, pin) == first
    audit = _run("audit", "--db", tmp_path / "s.db", "--kek-file", kek)
    assert audit.returncode == 0 and "audit log verified" in audit.stdout


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    """A missing key file is one line on stderr and exit status 2, not a traceback."""
    done = _run("audit", "--db", tmp_path / "s.db", "--kek-file", tmp_path / "none.key")
    assert done.returncode == 2
    assert "key file not found" in done.stderr and "Traceback" not in done.stderr
