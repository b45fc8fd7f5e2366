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


def test_keys_generate_rotate_retire(tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """generate writes a 0600 key; rotate adds a new primary and re-wraps every value
    under it while the old key stays in the file; retire removes the old key only once
    nothing names it; the vault keeps working throughout and after a restart."""
    kek = tmp_path / "kek.key"
    done = _run("keys", "generate", "--out", kek)
    assert done.returncode == 0, done.stderr
    assert kek.stat().st_mode & 0o777 == 0o600
    assert _run("keys", "generate", "--out", kek).returncode == 2  # never overwrites
    old_id = Kek.load(kek).kid_hex
    db = tmp_path / "s.db"
    server = sv.ShareServer.open(db, kek_file=kek)
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    first = pay(device, card_id, pin)
    server.close()
    early = _run("keys", "retire", "--db", db, "--kek-file", kek, "--kid", old_id)
    assert early.returncode == 2 and "primary" in early.stderr  # the key in use: refused
    rotated = _run("keys", "rotate", "--db", db, "--kek-file", kek)
    assert rotated.returncode == 0, rotated.stderr
    keys = [k.kid_hex for k in Kek.load_all(kek)]
    assert keys[0] == old_id and len(keys) == 2  # the old key kept as the backup
    new_id = keys[1]
    listing = _run("keys", "list", "--db", db, "--kek-file", kek)
    assert f"{old_id}  active" in listing.stdout and f"{new_id}  primary" in listing.stdout
    retired = _run("keys", "retire", "--db", db, "--kek-file", kek, "--kid", old_id)
    assert retired.returncode == 0, retired.stderr
    assert [k.kid_hex for k in Kek.load_all(kek)] == [new_id]
    server = sv.ShareServer.open(db, kek_file=kek)
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    assert pay(device, card_id, pin) == first
    server.close()
    audit = _run("audit", "--db", db, "--kek-file", kek)
    assert audit.returncode == 0 and "audit log verified" in audit.stdout


def test_audit_json(tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """audit --json prints one verified entry per line with seq, event, card_id, at,
    detail; a broken chain exits 1."""
    import json

    db, kek = tmp_path / "s.db", tmp_path / "kek.key"
    Kek.generate().write(kek)
    server = sv.ShareServer.open(db, kek_file=kek)
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    pay(device, card_id, pin)
    done = _run("audit", "--db", db, "--kek-file", kek, "--json")
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in entries] == ["enrolled", "guess_used", "authorized"]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert all(e["card_id"] == card_id and e["at"].endswith("+00:00") for e in entries)
    assert entries[1]["detail"]["limit"] == 5 and entries[1]["detail"]["unproven"] == 1
    server.inspector().tamper("UPDATE audit SET detail = '{}' WHERE seq = 2")
    server.close()
    broken = _run("audit", "--db", db, "--kek-file", kek, "--json")
    assert broken.returncode == 1 and "does not verify at entry 2" in broken.stderr


def test_no_command_creates_a_database_on_a_typo(tmp_path: Path) -> None:
    """audit, keys rotate/list/retire refuse a path where no database exists, create
    nothing, and never touch the key file."""
    kek = tmp_path / "kek.key"
    Kek.generate().write(kek)
    before = kek.read_bytes()
    typo = tmp_path / "sever.db"
    for args in (("audit",), ("keys", "rotate"), ("keys", "list"), ("keys", "rewrap"),
                 ("keys", "retire", "--kid", "00" * 8)):
        done = _run(*args, "--db", typo, "--kek-file", kek)
        assert done.returncode == 2, (args, done.stderr)
        assert "no server database" in done.stderr and "Traceback" not in done.stderr
        assert not typo.exists() and kek.read_bytes() == before


V1 = Path(__file__).parent / "vectors" / "schema_v1"
V1_CARD = "4d0cc0ceb06969d08aa3c68d840c6a2f"


def test_db_upgrade_migrates_version_1(tmp_path: Path) -> None:
    """A database made by 0.1.0 is refused with the command to run; db upgrade migrates
    it, and its audit chain, keys, card and recorded payment all still open."""
    import shutil

    from splitvault.hazmat import SCHEMA_VERSION

    db, kek = tmp_path / "server.db", tmp_path / "server.db.kek"
    shutil.copy(V1 / "server.db", db)
    shutil.copy(V1 / "server.db.kek", kek)
    db.chmod(0o600)
    kek.chmod(0o600)
    try:
        sv.ShareServer.open(db)
    except sv.ConfigurationError as exc:
        assert "splitvault db upgrade --db" in str(exc)
    else:
        raise AssertionError("an old schema was opened")
    done = _run("db", "upgrade", "--db", db)
    assert done.returncode == 0, done.stderr
    assert f"from schema version 1 to {SCHEMA_VERSION}" in done.stdout
    assert "already current" in _run("db", "upgrade", "--db", db).stdout
    with sv.ShareServer.open(db) as server:
        assert server.verify_audit().entries == 3  # enrolled, guess_used, authorized
        state = server.card_state(V1_CARD)
        assert (state.guesses_used, state.locked) == (0, False)
        assert server.keyring.primary.kid == Kek.load(kek).kid
        insp = server.inspector()
        (share,) = insp.query("SELECT share FROM cards WHERE card_id = ?", V1_CARD)[0]
        insp.unwrap("share", V1_CARD, share)  # still opens under the migrated keyring
        ledger = insp.rows("authorizations")
        assert [row["state"] for row in ledger] == ["approved"]
    listing = _run("keys", "list", "--db", db, "--kek-file", kek)
    assert "primary" in listing.stdout and "in key file" in listing.stdout


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    """A missing key file is one line on stderr and exit status 2, not a traceback."""
    sv.ShareServer.open(tmp_path / "s.db").close()
    done = _run("audit", "--db", tmp_path / "s.db", "--kek-file", tmp_path / "none.key")
    assert done.returncode == 2
    assert "key file not found" in done.stderr and "Traceback" not in done.stderr
