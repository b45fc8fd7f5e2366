"""Private files and folders (``splitvault._files``), under the usual umask 022."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from splitvault import ConfigurationError
from splitvault._files import (
    check_private,
    check_sqlite,
    create_private,
    prepare_sqlite,
    private_dir,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_creates_the_folder_and_missing_parents_0700(tmp_path: Path) -> None:
    """Every folder it creates is 0700 although the umask would give 0755."""
    target = tmp_path / "a" / "b" / "c"
    assert private_dir(target) == target
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode(folder) == 0o700


def test_private_dir_leaves_an_existing_folder_alone_if_only_readable(tmp_path: Path) -> None:
    """A 0755 folder is accepted and not changed: reading it shows only names."""
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    private_dir(folder)
    assert mode(folder) == 0o755


@pytest.mark.parametrize("bits", [0o770, 0o707, 0o1777])
def test_a_folder_others_can_write_is_refused_with_the_chmod(tmp_path: Path,
                                                             bits: int) -> None:
    """Write access to the folder lets others delete or replace the store."""
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(bits)
    with pytest.raises(ConfigurationError, match=f"run: chmod 700 {folder}$"):
        private_dir(folder)
    with pytest.raises(ConfigurationError, match="writable by group or others"):
        check_private(folder / "x.db", "store")


def test_create_private_is_0600_and_exclusive(tmp_path: Path) -> None:
    """0600 under umask 022; a second call creates nothing and changes nothing."""
    path = tmp_path / "f"
    assert create_private(path) is True
    assert mode(path) == 0o600
    path.write_bytes(b"kept")
    assert create_private(path) is False
    assert path.read_bytes() == b"kept"


@pytest.mark.parametrize("bits", [0o640, 0o604, 0o660, 0o601, 0o644])
def test_check_private_refuses_any_group_or_other_bit(tmp_path: Path, bits: int) -> None:
    """The message names the file and the exact command to run."""
    path = tmp_path / "device.db"
    create_private(path)
    path.chmod(bits)
    with pytest.raises(ConfigurationError, match=f"run: chmod 600 {path}$") as caught:
        check_private(path, "device store")
    assert str(caught.value).startswith(f"device store {path} is accessible")
    path.chmod(0o600)
    check_private(path, "device store")


def test_check_sqlite_names_every_loose_sibling(tmp_path: Path) -> None:
    """A WAL left 0644 by an older version is refused with the database."""
    path = tmp_path / "device.db"
    create_private(path)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").write_bytes(b"")
    with pytest.raises(ConfigurationError,
                       match=f"run: chmod 600 {path}-wal {path}-shm$"):
        check_sqlite(path, "device store")


def test_sqlite_gives_its_wal_and_shm_the_mode_of_the_database(tmp_path: Path) -> None:
    """The fact the stores rely on: a database created 0600 (empty, by us) gets 0600
    ``-wal`` and ``-shm`` from SQLite, whatever the umask (022 here)."""
    path = tmp_path / "s" / "store.db"
    assert prepare_sqlite(path, "store") is True
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        modes = {p.name: mode(p) for p in path.parent.iterdir()}
    finally:
        conn.close()
    assert modes == {"store.db": 0o600, "store.db-wal": 0o600, "store.db-shm": 0o600}
    assert mode(path.parent) == 0o700
    check_sqlite(path, "store")


def test_sqlite_alone_would_have_made_them_world_readable(tmp_path: Path) -> None:
    """Control: without :func:`prepare_sqlite`, SQLite follows the umask (0644)."""
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        assert mode(path) == 0o644
        assert mode(Path(f"{path}-wal")) == 0o644
    finally:
        conn.close()
    with pytest.raises(ConfigurationError, match="chmod 600"):
        check_sqlite(path, "store")
