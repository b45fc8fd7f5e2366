"""The server's own long-lived keys, kept wrapped under the KEK in ``server_keys``.

- ``x25519``: devices seal their shares to its public half, so a share in transit is
  readable only by the server (even if TLS is terminated elsewhere).
- ``audit``: keys the audit chain's MACs.
- ``ledger``: keys the digests that index the exactly-once ledger, so a database dump
  shows no idempotency keys (often order numbers) and no amounts.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass, field

from ..crypto.envelope import public_key
from ..crypto.memory import wipe
from ._kek import Kek

__all__ = ["ServerKeys", "load_or_create", "rewrap_all"]

_NAMES = ("x25519", "audit", "ledger")


@dataclass
class ServerKeys:
    x25519_secret: bytearray = field(repr=False)
    x25519_public: bytes
    audit: bytearray = field(repr=False)
    ledger: bytearray = field(repr=False)

    def wipe(self) -> None:
        for buf in (self.x25519_secret, self.audit, self.ledger):
            wipe(buf)


def load_or_create(conn: sqlite3.Connection, kek: Kek) -> ServerKeys:
    """Inside a write transaction: the keys, generated on first use."""
    rows = dict(conn.execute("SELECT name, wrapped FROM server_keys").fetchall())
    keys: dict[str, bytearray] = {}
    for name in _NAMES:
        if name in rows:
            keys[name] = kek.unwrap("server-key", name, rows[name])
        else:
            keys[name] = bytearray(secrets.token_bytes(32))
            conn.execute(
                "INSERT INTO server_keys (name, wrapped) VALUES (?, ?)",
                (name, kek.wrap("server-key", name, keys[name])),
            )
    return ServerKeys(
        x25519_secret=keys["x25519"],
        x25519_public=public_key(keys["x25519"]),
        audit=keys["audit"],
        ledger=keys["ledger"],
    )


# (table, key column, wrapped column, purpose): every wrapped value the server stores.
_WRAPPED = (
    ("server_keys", "name", "wrapped", "server-key"),
    ("cards", "card_id", "oprf_key", "oprf-key"),
    ("cards", "card_id", "share", "share"),
    ("challenges", "challenge_id", "new_oprf_key", "oprf-key"),
    ("authorizations", "hex(key_digest)", "result", "ledger"),
)


def rewrap_all(conn: sqlite3.Connection, old: Kek, new: Kek) -> int:
    """Inside a write transaction: re-wrap every stored secret from ``old`` to ``new``."""
    count = 0
    for table, key_col, col, purpose in _WRAPPED:
        rows = conn.execute(
            f"SELECT rowid, {key_col}, {col} FROM {table} WHERE {col} IS NOT NULL"  # noqa: S608 (identifiers from _WRAPPED)  # nosec B608
        ).fetchall()
        for rowid, row_key, blob in rows:
            row = row_key.lower() if purpose == "ledger" else row_key
            secret = old.unwrap(purpose, row, blob)
            try:
                conn.execute(
                    f"UPDATE {table} SET {col} = ? WHERE rowid = ?",  # noqa: S608 (as above)  # nosec B608
                    (new.wrap(purpose, row, secret), rowid),
                )
            finally:
                wipe(secret)
            count += 1
    return count
