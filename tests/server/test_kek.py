"""The key-encryption key: file handling, wrapping bound to rows, and rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import splitvault as sv
from splitvault.server import Kek
from support import pay


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
