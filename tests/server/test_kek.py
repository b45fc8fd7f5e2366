"""The key-encryption key: file handling, wrapping bound to rows, and rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import splitvault as sv
from splitvault.server import Kek
from support import pay

_REBUILT = pytest.mark.skip(
    reason="key rotation is being rebuilt (store issue); see tests/server/test_rotation.py")


def test_generated_key_file_is_private(tmp_path: Path) -> None:
    """A new key file is written with mode 0600 and loads back to the same key id."""
    kek = Kek.generate()
    kek.write(tmp_path / "k.key")
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    assert Kek.load(tmp_path / "k.key").kid == kek.kid
    assert kek.kid_hex in repr(kek) and "key=" not in repr(kek)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "malformed"), (b"splitvault-kek-v1 zz AAAA\n", "malformed"),
     (b"other-format 0011223344556677 " + b"A" * 44 + b"\n", "malformed"),
     (b"splitvault-kek-v1 0011223344556677 QUJD\n", "wrong size"), (b"\xff\xfe", "malformed")],
)
def test_malformed_key_file_is_a_clear_error(tmp_path: Path, content: bytes,
                                             message: str) -> None:
    """A malformed key file raises ConfigurationError saying so, never a traceback."""
    path = tmp_path / "k.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(sv.ConfigurationError, match=message):
        Kek.load(path)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """Like ssh, a key file that group or others can read is refused."""
    Kek.generate().write(tmp_path / "k.key")
    os.chmod(tmp_path / "k.key", 0o644)
    with pytest.raises(sv.ConfigurationError, match="chmod 600"):
        Kek.load(tmp_path / "k.key")


def test_missing_key_for_existing_database_is_refused(tmp_path: Path) -> None:
    """An existing database whose key file vanished is not silently given a new key."""
    sv.ShareServer.open(tmp_path / "s.db").close()
    (tmp_path / "s.db.kek").unlink()
    with pytest.raises(sv.ConfigurationError, match="missing"):
        sv.ShareServer.open(tmp_path / "s.db")
    with pytest.raises(sv.ConfigurationError, match="not found"):
        sv.ShareServer.open(tmp_path / "s.db", kek_file=tmp_path / "nope.key")


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    """Opening a database with another KEK fails with a message naming both key ids."""
    sv.ShareServer.open(tmp_path / "s.db").close()
    Kek.generate().write(tmp_path / "other.key")
    with pytest.raises(sv.ConfigurationError, match="wrong key file"):
        sv.ShareServer.open(tmp_path / "s.db", kek_file=tmp_path / "other.key")


@pytest.mark.security
def test_wrapped_value_moved_to_another_row_fails(server: sv.ShareServer, device: sv.Device,
                                                  card: sv.Card, pin: sv.Pin) -> None:
    """A wrapped share copied onto another card's row does not open (AAD binds the row)."""
    a = device.enroll(card, pin)
    b = device.enroll(sv.Card("5555555555554444", "01/31", "LEE JIEUN"), pin)
    inspector = server.inspector()
    ((share_a,),) = inspector.query("SELECT share FROM cards WHERE card_id = ?", a)
    assert inspector.tamper("UPDATE cards SET share = ? WHERE card_id = ?", share_a, b) == 1
    with pytest.raises(sv.TamperedData):
        pay(device, b, pin)


@_REBUILT
def test_rotation_rewraps_everything_and_retires_old_key(tmp_path: Path, card: sv.Card,
                                                         pin: sv.Pin) -> None:
    """After rotation every wrapped value carries the new key id, payments still work
    (including replay of a recorded result), and the old key opens nothing."""
    server = sv.ShareServer.open(tmp_path / "s.db")
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    first = pay(device, card_id, pin)
    old = Kek.load(tmp_path / "s.db.kek")
    new = Kek.generate()
    count = server.rotate_kek(new)
    assert count == 3 + 2 + 1  # server keys, card OPRF key + share, one ledger result
    conn = server._db.connection()
    blobs = [r[0] for r in conn.execute(
        "SELECT wrapped FROM server_keys UNION ALL SELECT oprf_key FROM cards "
        "UNION ALL SELECT share FROM cards UNION ALL SELECT result FROM authorizations")]
    assert all(b[:8] == new.kid for b in blobs)
    with pytest.raises(sv.ConfigurationError):
        old.unwrap("share", card_id, blobs[4])
    assert pay(device, card_id, pin) == first
    assert pay(device, card_id, pin, key="after-rotation").approved
    assert server.verify_audit().entries > 0


@_REBUILT
def test_interrupted_rotation_is_completed(tmp_path: Path) -> None:
    """If a rotation committed but the key file was not yet renamed, the next open uses
    the pending new key file."""
    server = sv.ShareServer.open(tmp_path / "s.db")
    new = Kek.generate()
    new.write(tmp_path / "s.db.kek.new")
    server.rotate_kek(new)
    server.close()
    reopened = sv.ShareServer.open(tmp_path / "s.db")
    assert reopened._kek.kid == new.kid
    assert Kek.load(tmp_path / "s.db.kek").kid == new.kid
    assert not (tmp_path / "s.db.kek.new").exists()


@_REBUILT
def test_rotation_cut_before_commit_keeps_old_key(tmp_path: Path) -> None:
    """If the new key file was written but the re-wrap never committed, the old key
    stays in force and the unused new key is dropped."""
    sv.ShareServer.open(tmp_path / "s.db").close()
    old = Kek.load(tmp_path / "s.db.kek")
    Kek.generate().write(tmp_path / "s.db.kek.new")
    reopened = sv.ShareServer.open(tmp_path / "s.db")
    assert reopened._kek.kid == old.kid
    assert not (tmp_path / "s.db.kek.new").exists()
