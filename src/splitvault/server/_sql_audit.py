"""The store's audit chain in SQL: each event appended in the transaction of the
change it records, MAC'd over the one before it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .._errors import ConfigurationError
from ._store import AuditEvent, AuditMac, AuditRow

if TYPE_CHECKING:
    from ._sql import Backend, Tx

__all__ = ["AUDIT_GRANULARITY", "AuditSql", "audit_minute"]


class AuditSql:
    """The audit part of :class:`~._sql.SqlStore`."""

    _db: Backend
    _mac: AuditMac | None

    # -- audit -----------------------------------------------------------------------

    def attach_audit(self, mac: AuditMac) -> None:
        self._mac = mac

    def _append(self, tx: Tx, event: AuditEvent, now: float) -> None:
        if self._mac is None:
            raise ConfigurationError("audit key not attached to the store")
        # Claiming the head row first serializes appends: under READ COMMITTED a second
        # appender waits here and then reads the first one's committed head.
        head = tx.one("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, mac")
        if head is None:
            raise ConfigurationError("audit log head missing: run splitvault db upgrade")
        seq, prev = int(head[0]), bytes(head[1])
        detail = json.dumps(event.detail, sort_keys=True, separators=(",", ":"))
        # The time is kept to the minute: a ledger row and the audit entry naming its
        # card, written microseconds apart, cannot be joined by time in a dump. It is
        # MAC'd as stored, so verification needs nothing but the row; seq keeps order.
        at = audit_minute(now)
        mac = self._mac(prev, seq, at, event.event, event.card_id, detail)
        tx.run("UPDATE audit_head SET mac = ? WHERE id = 1", mac)
        tx.run("INSERT INTO audit (seq, at, event, card_id, detail, mac) "
               "VALUES (?, ?, ?, ?, ?, ?)", seq, at, event.event, event.card_id, detail, mac)

    def append_audit(self, event: AuditEvent, now: float) -> None:
        self._db.write(lambda tx: self._append(tx, event, now))

    def audit_rows(self) -> Iterator[AuditRow]:
        rows = self._db.read(lambda tx: tx.all(
            "SELECT seq, at, event, card_id, detail, mac FROM audit ORDER BY seq"))
        for seq, at, event, card_id, detail, mac in rows:
            yield AuditRow(int(seq), float(at), event, card_id, detail, bytes(mac))


AUDIT_GRANULARITY = 60.0
"""Seconds audit times are rounded down to (see ``_append``)."""


def audit_minute(now: float) -> float:
    """``now`` rounded down to :data:`AUDIT_GRANULARITY`, as the audit log stores it."""
    return float(int(now // AUDIT_GRANULARITY) * AUDIT_GRANULARITY)
