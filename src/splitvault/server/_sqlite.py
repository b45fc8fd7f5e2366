"""The SQLite backend: the embedded default, one file, any number of local processes.

WAL with ``synchronous=FULL`` makes every COMMIT durable before it returns (the WAL is
fsynced at each commit), which is what lets us say a guess is counted *before* its
OPRF evaluation leaves the server. ``secure_delete`` overwrites deleted rows with
zeros, so a deleted card's wrapped share does not linger in free pages. Writers take
``BEGIN IMMEDIATE``, which SQLite serializes across processes with its file locks, so
``splitvault serve --workers N`` is safe on one host.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .._errors import ConfigurationError
from .._files import check_sqlite, prepare_sqlite
from ._schema import Dialect
from ._sql import Row

__all__ = ["SQLITE", "SqliteBackend"]

T = TypeVar("T")

SQLITE = Dialect("sqlite", blob="BLOB", real="REAL", int="INTEGER", strict=" STRICT")

_BUSY_MS = 30_000
"""How long a writer waits for another process's transaction: far above any one
transaction's duration (milliseconds), so only a stuck process makes it give up."""


class _Tx:
    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def one(self, sql: str, *params: object) -> Row | None:
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, *params: object) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def named(self, sql: str, *params: object) -> tuple[list[str], list[Row]]:
        """Rows and their column names (for the inspector's ``SELECT *``)."""
        cur = self.conn.execute(sql, params)
        return [d[0] for d in cur.description or ()], cur.fetchall()

    def run(self, sql: str, *params: object) -> int:
        cur = self.conn.execute(sql, params)
        if cur.description is not None:  # RETURNING: rowcount is only known once read
            return len(cur.fetchall())
        return cur.rowcount


class SqliteBackend:
    """One SQLite file, one connection per thread, explicit write transactions."""

    dialect = SQLITE

    def __init__(self, path: str | Path, *, create: bool) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise ConfigurationError(
                    f"no server database at {self.path} (check the path; "
                    "only 'splitvault serve' and 'splitvault db upgrade' create one)")
            prepare_sqlite(self.path, "server database")
        else:
            check_sqlite(self.path, "server database")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # One writer at a time inside this process. SQLite would serialize writers
        # anyway, but its busy handler sleeps with back-off (up to 100 ms a try), which
        # shows up as long tail latency; a lock hands over at once.
        self._writer = threading.Lock()
        try:
            self._connection().execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ConfigurationError(f"cannot open server database {self.path}: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def write(self, fn: Callable[[_Tx], T]) -> T:
        """``fn`` inside ``BEGIN IMMEDIATE``: writers queue up front, so its reads and
        writes cannot interleave with another writer's, in this process or another."""
        conn = self._connection()
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(_Tx(conn))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def read(self, fn: Callable[[_Tx], T]) -> T:
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            return fn(_Tx(conn))
        finally:
            conn.execute("COMMIT")

    def is_empty(self) -> bool:
        row = self._connection().execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
        return not row[0]

    def scrub(self) -> None:
        """Move the WAL into the main file and truncate it (after deleting secrets)."""
        self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def describe(self) -> str:
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

