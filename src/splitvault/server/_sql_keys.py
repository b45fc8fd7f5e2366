"""The server's keys in SQL: its wrapped keys, the keyring and its rotation (every
wrapped value found, counted by key and re-wrapped), and the workers' heartbeats
saying which keys they hold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from ._sql_audit import AuditSql
from ._store import AuditEvent, KeyRecord, WorkerRecord, WrappedRef

if TYPE_CHECKING:
    from ._sql import Tx

__all__ = ["KeysSql"]

# (table, row key expression, wrapped column, purpose): every wrapped value stored.
# The row key is what the value's AAD names, so a re-wrap keeps it bound to its row.
_WRAPPED: tuple[tuple[str, str, str, str], ...] = (
    ("server_keys", "name", "wrapped", "server-key"),
    ("cards", "card_id", "oprf_key", "oprf-key"),
    ("cards", "card_id", "share", "share"),
    ("cards", "card_id", "share_next", "share"),  # the re-split waiting for the device
    ("cards", "card_id", "share_token", "share-token"),
    ("cards", "card_id", "share_next_token", "share-token"),
    ("cards", "card_id", "epoch_token", "share-token"),
    ("cards", "card_id", "wallet", "wallet"),  # which wallet: not visible in a dump
    ("challenges", "challenge_id", "new_oprf_key", "oprf-key"),
    ("authorizations", "key_digest", "result", "ledger"),
    ("card_risk", "row_key", "history", "risk"),
    ("outbox", "message_id", "payload", "outbox"),
)
_KEY_COLUMN = {"server_keys": "name", "cards": "card_id", "challenges": "challenge_id",
               "authorizations": "key_digest", "card_risk": "row_key",
               "outbox": "message_id"}
_BLOB_KEYS = frozenset({"authorizations", "card_risk"})


class KeysSql(AuditSql):
    """The server keys' part of :class:`~._sql.SqlStore`."""

    @staticmethod
    def wrapped_columns() -> tuple[tuple[str, str, str], ...]:
        """(table, column, purpose) of every wrapped value the store keeps."""
        return tuple((t, c, p) for t, _, c, p in _WRAPPED)

    # -- server keys and keyring -----------------------------------------------------

    def server_keys(self) -> dict[str, bytes]:
        rows = self._db.read(lambda tx: tx.all("SELECT name, wrapped FROM server_keys"))
        return {name: bytes(blob) for name, blob in rows}

    def add_server_keys(self, wrapped: dict[str, bytes]) -> dict[str, bytes]:
        def go(tx: Tx) -> None:
            for name, blob in wrapped.items():
                tx.run("INSERT INTO server_keys (name, wrapped) VALUES (?, ?) "
                       "ON CONFLICT (name) DO NOTHING", name, blob)
        self._db.write(go)
        return self.server_keys()

    def key_records(self) -> list[KeyRecord]:
        rows = self._db.read(lambda tx: tx.all(
            "SELECT kid, state, added_at FROM keyring ORDER BY added_at, kid"))
        return [KeyRecord(bytes(k), cast(Any, s), float(a)) for k, s, a in rows]

    def add_key(self, kid: bytes, state: Literal["pending", "primary"], now: float,
                event: AuditEvent | None = None) -> bool:
        def go(tx: Tx) -> bool:
            if state == "primary" and tx.one(
                    "SELECT kid FROM keyring WHERE state = 'primary'") is not None:
                return False
            added = tx.all("INSERT INTO keyring (kid, state, added_at) VALUES (?, ?, ?) "
                           "ON CONFLICT (kid) DO NOTHING RETURNING kid", kid, state, now)
            if added and event is not None:
                self._append(tx, event, now)
            return bool(added)
        return self._db.write(go)

    def promote_key(self, kid: bytes, now: float, event: AuditEvent) -> bool:
        def go(tx: Tx) -> bool:
            row = tx.one("SELECT state FROM keyring WHERE kid = ?", kid)
            if row is None or row[0] not in ("pending", "active"):
                return False
            tx.run("UPDATE keyring SET state = 'active' WHERE state = 'primary'")
            tx.run("UPDATE keyring SET state = 'primary' WHERE kid = ?", kid)
            self._append(tx, event, now)
            return True
        return self._db.write(go)

    def retire_key(self, kid: bytes, now: float, event: AuditEvent) -> bool:
        def go(tx: Tx) -> bool:
            if self._count_kid(tx, kid):
                return False
            changed = tx.run("UPDATE keyring SET state = 'retired' WHERE kid = ? "
                             "AND state IN ('active', 'pending')", kid)
            if changed:
                self._append(tx, event, now)
            return bool(changed)
        return self._db.write(go)

    def heartbeat(self, worker_id: str, kids: Sequence[bytes], now: float) -> None:
        text = ",".join(sorted(k.hex() for k in kids))

        def go(tx: Tx) -> None:
            if not tx.run("UPDATE workers SET kids = ?, seen_at = ? WHERE worker_id = ?",
                          text, now, worker_id):
                tx.run("INSERT INTO workers (worker_id, kids, seen_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (worker_id) DO UPDATE SET kids = excluded.kids, "
                       "seen_at = excluded.seen_at", worker_id, text, now)
        self._db.write(go)

    def forget_worker(self, worker_id: str) -> None:
        self._db.write(lambda tx: tx.run("DELETE FROM workers WHERE worker_id = ?", worker_id))

    def workers(self, since: float) -> list[WorkerRecord]:
        rows = self._db.read(lambda tx: tx.all(
            "SELECT worker_id, kids, seen_at FROM workers WHERE seen_at >= ? "
            "ORDER BY worker_id", since))
        return [WorkerRecord(w, tuple(bytes.fromhex(k) for k in kids.split(",") if k),
                             float(seen)) for w, kids, seen in rows]

    def wrapped(self, *, not_under: bytes | None = None,
                limit: int | None = None) -> list[WrappedRef]:
        out: list[WrappedRef] = []

        def go(tx: Tx) -> None:
            for table, key_col, col, purpose in _WRAPPED:
                sql = (f"SELECT {key_col}, {col} FROM {table} "  # noqa: S608 (identifiers from _WRAPPED)  # nosec B608
                       f"WHERE {col} IS NOT NULL")
                params: list[object] = []
                if not_under is not None:
                    sql += f" AND substr({col}, 1, 8) <> ?"
                    params.append(not_under)
                if limit is not None:
                    sql += " LIMIT ?"
                    params.append(limit - len(out))
                for key, blob in tx.all(sql, *params):
                    row = key.hex() if isinstance(key, bytes | memoryview) else str(key)
                    out.append(WrappedRef(table, row, purpose, bytes(blob), col))
                if limit is not None and len(out) >= limit:
                    return
        self._db.read(go)
        return out

    def replace_wrapped(self, ref: WrappedRef, blob: bytes) -> bool:
        col = ref.column or next(c for t, _, c, p in _WRAPPED
                                 if t == ref.table and p == ref.purpose)
        if (ref.table, col, ref.purpose) not in {(t, c, p) for t, _, c, p in _WRAPPED}:
            raise ValueError("not a wrapped column")
        key_col = _KEY_COLUMN[ref.table]
        key: object = bytes.fromhex(ref.row) if ref.table in _BLOB_KEYS else ref.row
        return bool(self._db.write(lambda tx: tx.run(
            f"UPDATE {ref.table} SET {col} = ? WHERE {key_col} = ? AND {col} = ?",  # noqa: S608 (identifiers from _WRAPPED)  # nosec B608
            blob, key, ref.blob)))

    def count_by_kid(self) -> dict[bytes, int]:
        counts: dict[bytes, int] = {}

        def go(tx: Tx) -> None:
            for table, _, col, _ in _WRAPPED:
                for kid, n in tx.all(
                        f"SELECT substr({col}, 1, 8), count(*) FROM {table} "  # noqa: S608 (identifiers from _WRAPPED)  # nosec B608
                        f"WHERE {col} IS NOT NULL GROUP BY substr({col}, 1, 8)"):
                    counts[bytes(kid)] = counts.get(bytes(kid), 0) + int(n)
        self._db.read(go)
        return counts

    @staticmethod
    def _count_kid(tx: Tx, kid: bytes) -> int:
        total = 0
        for table, _, col, _ in _WRAPPED:
            row = tx.one(f"SELECT count(*) FROM {table} WHERE substr({col}, 1, 8) = ?",  # noqa: S608 (identifiers from _WRAPPED)  # nosec B608
                         kid)
            total += int(row[0]) if row else 0
        return total
