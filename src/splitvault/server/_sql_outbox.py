"""The outbox in SQL: messages queued in the transaction that decides them, then
claimed, delivered and retried."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._store import OutboxMessage

if TYPE_CHECKING:
    from ._sql import Backend, Tx

__all__ = ["OutboxSql"]


class OutboxSql:
    """The outbox's part of :class:`~._sql.SqlStore`."""

    _db: Backend

    # -- the outbox ------------------------------------------------------------------

    @staticmethod
    def _queue(tx: Tx, outbox: Sequence[OutboxMessage], now: float) -> None:
        for message in outbox:
            tx.run("INSERT INTO outbox (message_id, kind, payload, due_at, attempts) "
                   "VALUES (?, ?, ?, ?, 0)", message.message_id, message.kind,
                   message.payload, now)

    def claim_outbox(self, now: float, lease_until: float, limit: int) -> list[OutboxMessage]:
        def go(tx: Tx) -> list[OutboxMessage]:
            # The due check is repeated on the row itself: under READ COMMITTED a
            # claimer that waited on another's lock re-checks it on the committed row
            # and skips what the other took.
            rows = tx.all(
                "UPDATE outbox SET due_at = ?, attempts = attempts + 1 WHERE message_id IN "
                "(SELECT message_id FROM outbox WHERE due_at <= ? ORDER BY due_at LIMIT ?) "
                "AND due_at <= ? RETURNING message_id, kind, payload, attempts",
                lease_until, now, limit, now)
            return [OutboxMessage(m, k, bytes(p), int(a)) for m, k, p, a in rows]
        return sorted(self._db.write(go), key=lambda m: m.message_id)

    def outbox_delivered(self, message_id: str, attempts: int) -> bool:
        return bool(self._db.write(lambda tx: tx.run(
            "DELETE FROM outbox WHERE message_id = ? AND attempts = ?", message_id,
            attempts)))

    def outbox_retry(self, message_id: str, attempts: int, due: float) -> bool:
        return bool(self._db.write(lambda tx: tx.run(
            "UPDATE outbox SET due_at = ? WHERE message_id = ? AND attempts = ?", due,
            message_id, attempts)))

    def outbox_pending(self) -> int:
        row = self._db.read(lambda tx: tx.one("SELECT count(*) FROM outbox"))
        return int(row[0]) if row else 0
