"""The server's SQLite database: durable settings, schema, and write transactions.

WAL with ``synchronous=FULL`` makes every COMMIT durable before it returns (the WAL
is fsynced at each commit), which is what lets us say a guess is counted *before*
its OPRF evaluation leaves the server. ``secure_delete`` overwrites deleted rows
with zeros, so a deleted card's wrapped share does not linger in free pages.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Database"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
-- The server's own keys (X25519 envelope key, MAC keys), each wrapped under the KEK.
CREATE TABLE IF NOT EXISTS server_keys (
    name TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL
) STRICT;
-- One row per card. Nothing here identifies the card or its holder: the card id is
-- random, the OPRF key and share are wrapped under the KEK, the verifier is an
-- Ed25519 public key that cannot be tested offline without the device secret.
CREATE TABLE IF NOT EXISTS cards (
    card_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    device_key BLOB NOT NULL,
    verifier BLOB,
    oprf_key BLOB NOT NULL,
    share BLOB,
    guesses_used INTEGER NOT NULL DEFAULT 0,
    locked INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    expires_at REAL
) STRICT;
CREATE TABLE IF NOT EXISTS challenges (
    challenge_id TEXT PRIMARY KEY,
    card_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('issued', 'evaluated', 'pin_change', 'used')),
    expires_at REAL NOT NULL,
    new_oprf_key BLOB
) STRICT;
CREATE INDEX IF NOT EXISTS challenges_expiry ON challenges (expires_at);
-- Exactly-once ledger. Keyed by a MAC of (card id, idempotency key) so a dump shows
-- no order numbers; the result (amount, merchant, last 4) is wrapped under the KEK.
CREATE TABLE IF NOT EXISTS authorizations (
    key_digest BLOB PRIMARY KEY,
    params_digest BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'in_doubt', 'approved', 'declined')),
    result BLOB,
    started_at REAL NOT NULL,
    completed_at REAL
) STRICT;
-- Append-only, MAC-chained audit log; see _audit.py.
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    card_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    mac BLOB NOT NULL
) STRICT;
"""


class Database:
    """One SQLite file, one connection per thread, explicit write transactions."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # One writer at a time inside this process. SQLite would serialize writers
        # anyway, but its busy handler sleeps with back-off (up to 100 ms a try), which
        # shows up as long tail latency; a lock hands over at once.
        self._writer = threading.Lock()
        # executescript() commits on its own, so it runs outside write().
        self.connection().executescript(_SCHEMA)
        with self.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken with BEGIN IMMEDIATE: writers queue up front, so a
        read-check-update inside it (the guess counter) cannot interleave."""
        conn = self.connection()
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def checkpoint(self) -> None:
        """Move the WAL into the main file and truncate it (after deleting secrets)."""
        self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
