"""The fraud rules' history in SQL: one row per card, held while the rules run in the
proof's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._sql_audit import AuditSql
from ._sql_outbox import OutboxSql
from ._store import RiskCheck

if TYPE_CHECKING:
    from ._sql import Tx

__all__ = ["RiskSql"]


class RiskSql(OutboxSql, AuditSql):
    """The fraud rules' part of :class:`~._sql.SqlStore`."""

    # -- fraud-rule history ----------------------------------------------------------

    def risk_histories(self) -> list[tuple[bytes, bytes]]:
        rows = self._db.read(lambda tx: tx.all(
            "SELECT row_key, history FROM card_risk WHERE history IS NOT NULL "
            "ORDER BY row_key"))
        return [(bytes(k), bytes(h)) for k, h in rows]

    def forget_risk(self, row: bytes) -> bool:
        return bool(self._db.write(lambda tx: tx.run(
            "DELETE FROM card_risk WHERE row_key = ?", row)))

    def _risk_declined(self, tx: Tx, key: bytes, risk: RiskCheck, now: float) -> bool:
        """Run the fraud rules on the card's history, held for this transaction; True
        if they declined (the new ledger row then records the decline)."""
        # Holding the row first (a no-op UPDATE takes its lock) serializes the
        # payments of one card: under READ COMMITTED a racing one waits here and then
        # reads this one's history; under SERIALIZABLE it fails and is rerun. (The
        # proof's reset of the card's counters in settle_proof already locks the
        # card's row; this hold keeps the count exact without relying on that.)
        tx.run("INSERT INTO card_risk (row_key, history) VALUES (?, NULL) "
               "ON CONFLICT (row_key) DO NOTHING", risk.row)
        held = tx.one("UPDATE card_risk SET history = history WHERE row_key = ? "
                      "RETURNING history", risk.row)
        blob = None if held is None or held[0] is None else bytes(held[0])
        verdict = risk.decide(blob)
        if verdict.declined is not None:
            tx.run("UPDATE authorizations SET state = 'declined', result = ?, "
                   "completed_at = ?, owner = '', lease_until = 0 WHERE key_digest = ?",
                   verdict.declined, now, key)
            if verdict.event is not None:
                self._append(tx, verdict.event, now)
            self._queue(tx, verdict.outbox, now)
            return True
        if verdict.history is not None:
            tx.run("UPDATE card_risk SET history = ? WHERE row_key = ?", verdict.history,
                   risk.row)
        return False
