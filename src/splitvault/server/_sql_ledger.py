"""The payment ledger in SQL: one row per idempotency key, leased to the worker
calling the acquirer, and its reconciliation when a lease runs out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from ._sql_audit import AuditSql
from ._sql_outbox import OutboxSql
from ._store import (
    SETTLED,
    AuditEvent,
    LedgerEntry,
    LedgerStart,
    LedgerState,
    OutboxMessage,
    ShareStep,
)

if TYPE_CHECKING:
    from ._sql import Row, Tx

__all__ = ["LedgerSql"]


class LedgerSql(OutboxSql, AuditSql):
    """The ledger's part of :class:`~._sql.SqlStore`."""

    # -- ledger ----------------------------------------------------------------------

    @staticmethod
    def _entry(tx: Tx, key: bytes) -> LedgerEntry | None:
        row = tx.one("SELECT key_digest, state, params_digest, result, owner, lease_until, "
                     "reference, attempt FROM authorizations WHERE key_digest = ?", key)
        return None if row is None else _ledger_row(row)

    def ledger_entry(self, key: bytes) -> LedgerEntry | None:
        return self._db.read(lambda tx: self._entry(tx, key))

    @staticmethod
    def _insert_pending(tx: Tx, start: LedgerStart, now: float) -> bool:
        """The pending row of ``start``, leased to its owner; False if the key has one."""
        return bool(tx.all("INSERT INTO authorizations (key_digest, params_digest, state, "
                           "result, started_at, owner, lease_until, reference, attempt) "
                           "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT (key_digest) DO NOTHING RETURNING key_digest",
                           start.key, start.params_digest, start.intent, now, start.owner,
                           start.lease_until, start.reference, start.attempt))

    def begin_payment(self, start: LedgerStart, now: float) -> LedgerEntry | None:
        def go(tx: Tx) -> LedgerEntry | None:
            if self._insert_pending(tx, start, now):
                return None
            return self._entry(tx, start.key)
        return self._db.write(go)

    def finish_payment(self, key: bytes, owner: str, state: Literal["approved", "declined"],
                       result: bytes, now: float, event: AuditEvent,
                       outbox: Sequence[OutboxMessage] = (), *,
                       step: ShareStep | None = None) -> bool:
        def go(tx: Tx) -> bool:
            # The owner records what the acquirer said even if a retry has meanwhile
            # called its expired lease in doubt: the truth beats "in doubt".
            if not tx.run("UPDATE authorizations SET state = ?, result = ?, completed_at = ? "
                          "WHERE key_digest = ? AND owner = ? "
                          "AND state IN ('pending', 'in_doubt')", state, result, now, key,
                          owner):
                return False
            if step is not None:
                # With the approval, or not at all: a re-split waiting already (a
                # racing approval of the same card) is kept, and this one dropped.
                tx.run("UPDATE cards SET share_next = ?, share_next_token = ?, "
                       "refresh_key = ?, refreshed_at = ? "
                       "WHERE card_id = ? AND state = 'active' AND share_version = ? "
                       "AND share_next IS NULL", step.share_next, step.share_next_token,
                       step.refresh_key, now, step.card_id, step.version)
            self._append(tx, event, now)
            self._queue(tx, outbox, now)
            return True
        return self._db.write(go)

    def abandon_payment(self, key: bytes, owner: str) -> bool:
        def go(tx: Tx) -> bool:
            # A first attempt is forgotten, so the retry is a new payment. A later one
            # becomes 'failed' instead: deleting it would restart the key at attempt 0,
            # whose reference may have been charged and reversed (the invariant test
            # found that: the same reference charged twice).
            return bool(tx.run("DELETE FROM authorizations WHERE key_digest = ? "
                               "AND owner = ? AND state = 'pending' AND attempt = 0",
                               key, owner)
                        or tx.run("UPDATE authorizations SET state = 'failed', owner = '', "
                                  "lease_until = 0 WHERE key_digest = ? AND owner = ? "
                                  "AND state = 'pending' AND attempt > 0", key, owner))
        return self._db.write(go)

    def mark_in_doubt(self, key: bytes, owner: str | None, now: float) -> bool:
        if owner is None:  # a retry finding an expired lease
            return bool(self._db.write(lambda tx: tx.run(
                "UPDATE authorizations SET state = 'in_doubt' WHERE key_digest = ? "
                "AND state = 'pending' AND lease_until < ?", key, now)))
        return bool(self._db.write(lambda tx: tx.run(
            "UPDATE authorizations SET state = 'in_doubt' WHERE key_digest = ? "
            "AND owner = ? AND state = 'pending'", key, owner)))

    def restart_payment(self, start: LedgerStart, after_attempt: int, now: float) -> bool:
        return bool(self._db.write(lambda tx: tx.run(
            "UPDATE authorizations SET state = 'pending', result = ?, started_at = ?, "
            "completed_at = NULL, owner = ?, lease_until = ?, reference = ?, attempt = ? "
            "WHERE key_digest = ? AND params_digest = ? AND attempt = ? "
            "AND state IN ('reversed', 'failed')",
            start.intent, now, start.owner, start.lease_until, start.reference,
            start.attempt, start.key, start.params_digest, after_attempt)))

    # -- reconciliation --------------------------------------------------------------

    def unsettled(self, now: float, limit: int) -> list[LedgerEntry]:
        rows = self._db.read(lambda tx: tx.all(
            "SELECT key_digest, state, params_digest, result, owner, lease_until, "
            "reference, attempt FROM authorizations "
            "WHERE state = 'in_doubt' OR (state IN ('pending', 'settling') "
            "AND lease_until < ?) ORDER BY started_at LIMIT ?", now, limit))
        return [_ledger_row(row) for row in rows]

    def claim_unsettled(self, key: bytes, owner: str, lease_until: float,
                        now: float) -> LedgerEntry | None:
        def go(tx: Tx) -> LedgerEntry | None:
            # One statement decides: a live lease (the worker still calling the
            # acquirer, or another reconciler) keeps the row from us.
            row = tx.one(
                "UPDATE authorizations SET state = 'settling', owner = ?, lease_until = ? "
                "WHERE key_digest = ? AND (state = 'in_doubt' OR (state IN ('pending', "
                "'settling') AND lease_until < ?)) RETURNING key_digest, state, "
                "params_digest, result, owner, lease_until, reference, attempt",
                owner, lease_until, key, now)
            return None if row is None else _ledger_row(row)
        return self._db.write(go)

    def settle_payment(self, key: bytes, owner: str, state: LedgerState, result: bytes | None,
                       now: float, events: Sequence[AuditEvent],
                       outbox: Sequence[OutboxMessage] = ()) -> bool:
        if state not in SETTLED:
            raise ValueError("a payment is settled as approved, declined, reversed or failed")

        def go(tx: Tx) -> bool:
            if not tx.run("UPDATE authorizations SET state = ?, result = COALESCE(?, result), "
                          "completed_at = ?, owner = '', lease_until = 0 "
                          "WHERE key_digest = ? AND state = 'settling' AND owner = ?",
                          state, result, now, key, owner):
                return False
            for event in events:
                self._append(tx, event, now)
            self._queue(tx, outbox, now)
            return True
        return self._db.write(go)

    def release_claim(self, key: bytes, owner: str) -> bool:
        return bool(self._db.write(lambda tx: tx.run(
            "UPDATE authorizations SET state = 'in_doubt' WHERE key_digest = ? "
            "AND state = 'settling' AND owner = ?", key, owner)))


def _ledger_row(row: Row) -> LedgerEntry:
    # The columns of every ledger SELECT above, in this order.
    return LedgerEntry(bytes(row[0]), row[1], bytes(row[2]),
                       None if row[3] is None else bytes(row[3]), row[4], float(row[5]),
                       row[6], int(row[7]))
