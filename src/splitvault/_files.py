"""Private files and folders, for both sides: what holds a share, a key or a counter.

Both sides' stores are a SQLite file plus the ``-wal`` and ``-shm`` siblings SQLite
makes next to it. A local user who can read them is the thief with the device (or the
server insider), and one who can write the folder can delete or replace them. So:

- folders we create are 0700, missing parents included (:func:`private_dir`);
- files we create are 0600 whatever the umask, with ``O_EXCL`` (:func:`create_private`);
- an existing file is refused if group or others have *any* access to it, or if
  another user owns it; its folder is refused if group or others can *write* it
  (:func:`check_private`), each with the exact ``chmod`` to run, as ``Kek.load`` does.

Why a folder's read bit is allowed and its write bit is not: listing a folder shows
file names, and with each file 0600 nothing else. Write access is what lets someone
else delete the store (burning the card), swap in one of their own, or plant a
``-wal`` they own before SQLite creates it. Refusing a readable folder would refuse
the ordinary 0755 project or home folder for no secret it protects.

SQLite's siblings: SQLite creates ``-wal`` and ``-shm`` (and ``-journal``) with the
mode of the database file itself, applied with ``fchmod`` past the umask
(``robust_open`` in ``os_unix.c``), so a database file created 0600 gets 0600
siblings. :func:`check_sqlite` checks all of them anyway: siblings left by an older
version keep their old mode, since SQLite fixes only files it has just created empty.

POSIX only: elsewhere these functions create files and folders and check nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ._errors import ConfigurationError

__all__ = ["SQLITE_SIBLINGS", "check_private", "check_sqlite", "create_private",
           "prepare_sqlite", "private_dir"]

SQLITE_SIBLINGS = ("-wal", "-shm", "-journal")
"""The files SQLite may keep next to a database: WAL, its index, a rollback journal."""
_POSIX = os.name == "posix"
_FILE_OTHERS = stat.S_IRWXG | stat.S_IRWXO
_DIR_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def private_dir(path: str | Path) -> Path:
    """``path`` as a folder: created 0700 (missing parents too, each 0700) if it does
    not exist, else checked (a folder, not writable by group or others)."""
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass  # made meanwhile by someone else: checked below like any existing one
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create folder {folder}: {exc.strerror or exc}") from None
        else:
            if _POSIX:
                os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    _check_dir(path)
    return path


def create_private(path: str | Path) -> bool:
    """Create ``path`` as an empty file, mode 0600 whatever the umask. True if it was
    created, False if it already existed (then nothing was changed: check it)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigurationError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        if _POSIX:
            os.fchmod(fd, 0o600)  # open's mode is masked by the umask too
    finally:
        os.close(fd)
    return True


def check_private(path: str | Path, what: str) -> None:
    """``ConfigurationError`` naming ``what`` if ``path`` is not the user's own file
    closed to group and others, or its folder is writable by them."""
    _check_files([Path(path)], what)


def check_sqlite(path: str | Path, what: str) -> None:
    """:func:`check_private` for a SQLite database and every sibling that exists; one
    error names every file to fix."""
    path = Path(path)
    siblings = [Path(f"{path}{suffix}") for suffix in SQLITE_SIBLINGS]
    _check_files([path, *(s for s in siblings if s.exists())], what)


def _check_files(paths: list[Path], what: str) -> None:
    if not _POSIX or not paths:
        return
    _check_dir(paths[0].parent)
    loose: list[str] = []
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # a sibling SQLite just removed; nothing there to read
        except OSError as exc:
            raise ConfigurationError(f"cannot check {what} {path}: {exc.strerror}") from None
        if st.st_uid != os.geteuid():
            raise ConfigurationError(
                f"{what} {path} belongs to another user (uid {st.st_uid}); "
                "it must be your own file")
        if st.st_mode & _FILE_OTHERS:
            loose.append(str(path))
    if loose:
        raise ConfigurationError(
            f"{what} {loose[0]} is accessible by group or others; "
            f"run: chmod 600 {' '.join(loose)}")


def prepare_sqlite(path: str | Path, what: str) -> bool:
    """Before ``sqlite3.connect``: the folder is private (created 0700 if missing),
    the database file exists 0600 (created empty, which SQLite takes as a new
    database) and neither it nor a sibling is open to others. True if created.

    Call :func:`check_sqlite` again once SQLite has made its WAL: cheap, and it catches
    a sibling that appeared in between."""
    path = Path(path)
    private_dir(path.parent)
    created = create_private(path)
    check_sqlite(path, what)
    return created


def _check_dir(path: Path) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigurationError(f"cannot use folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigurationError(f"{path} is not a folder")
    if not _POSIX:
        return
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigurationError(
            f"folder {path} belongs to another user (uid {st.st_uid}); use a folder of your own")
    if st.st_mode & _DIR_OTHERS:
        raise ConfigurationError(
            f"folder {path} is writable by group or others; run: chmod 700 {path}")
