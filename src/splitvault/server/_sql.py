"""The store's operations in SQL, written once for every backend.

A backend (``_sqlite.py``, ``_postgres.py``) supplies connections, transactions and
retries; this module and its parts, one a concern (``_sql_keys.py``,
``_sql_enrollment.py``, ``_sql_cards.py``, ``_sql_ledger.py``, ``_sql_risk.py``,
``_sql_outbox.py``, ``_sql_audit.py``, composed into :class:`SqlStore` here), supply the
statements. Each public method runs its statements in one ``backend.write`` transaction,
whose guards (conditional ``UPDATE``, ``INSERT ... ON CONFLICT DO NOTHING``,
``RETURNING``) make the decision atomic on any engine and at any isolation level: under
READ COMMITTED a blocked statement re-checks its ``WHERE`` on the committed row; under
SERIALIZABLE the loser gets SQLSTATE 40001 and the backend runs the whole function
again. So a function passed to ``write`` must have no effect outside the transaction.

Placeholders are ``?`` here; the PostgreSQL backend translates them. No statement
uses ``%`` or a literal ``?``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .._errors import ConfigurationError
from ._refresh import is_late, judge
from ._schema import SCHEMA_VERSION, Dialect, migrations, schema
from ._sql_audit import AuditSql
from ._sql_cards import CardsSql, _blob
from ._sql_enrollment import EnrollmentSql
from ._sql_keys import KeysSql
from ._sql_ledger import LedgerSql
from ._sql_outbox import OutboxSql
from ._sql_risk import RiskSql
from ._store import AuditEvent, AuditMac, Spend

__all__ = ["Backend", "SqlStore", "Tx"]

T = TypeVar("T")
Row = tuple[Any, ...]

_GENESIS = bytes(32)


class Tx(Protocol):
    def one(self, sql: str, *params: object) -> Row | None: ...

    def all(self, sql: str, *params: object) -> list[Row]: ...

    def named(self, sql: str, *params: object) -> tuple[list[str], list[Row]]: ...

    def run(self, sql: str, *params: object) -> int: ...


class Backend(Protocol):
    dialect: Dialect

    def write(self, fn: Callable[[Tx], T]) -> T: ...

    def read(self, fn: Callable[[Tx], T]) -> T: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...

    def scrub(self) -> None: ...

    def is_empty(self) -> bool: ...


class SqlStore(KeysSql, EnrollmentSql, CardsSql, LedgerSql, RiskSql, OutboxSql, AuditSql):
    """:class:`~._store.Store` over a SQL backend."""

    def __init__(self, backend: Backend) -> None:
        self._db = backend
        self._mac: AuditMac | None = None

    # -- schema ----------------------------------------------------------------------

    def create(self) -> None:
        """Create the schema in an empty database (one transaction)."""
        def go(tx: Tx) -> None:
            for statement in schema(self._db.dialect):
                tx.run(statement)
            tx.run("INSERT INTO meta (name, value) VALUES ('schema_version', ?) "
                   "ON CONFLICT (name) DO NOTHING", str(SCHEMA_VERSION))
            tx.run("INSERT INTO audit_head (id, seq, mac) VALUES (1, 0, ?) "
                   "ON CONFLICT (id) DO NOTHING", _GENESIS)
        self._db.write(go)

    def schema_version(self) -> int | None:
        """The database's schema version; None if it holds no splitvault schema."""
        if self._db.is_empty():
            return None
        row = self._db.read(lambda tx: tx.one(
            "SELECT value FROM meta WHERE name = 'schema_version'"))
        if row is None:
            raise ConfigurationError(
                f"{self._db.describe()} is not a splitvault server database")
        return int(row[0])

    def upgrade(self) -> tuple[int, int]:
        """Migrate to the current version, one transaction per step; (from, to)."""
        start = self.schema_version()
        if start is None:
            self.create()
            return 0, SCHEMA_VERSION
        steps = migrations(self._db.dialect)
        version = start
        while version < SCHEMA_VERSION:
            if version not in steps:
                raise ConfigurationError(f"no migration from schema version {version}")
            step: list[str] = steps[version]

            def migrate(tx: Tx, v: int = version, statements: list[str] = step) -> None:
                self._migrate(tx, v, statements)
            self._db.write(migrate)
            version += 1
        return start, version

    @staticmethod
    def _migrate(tx: Tx, version: int, statements: list[str]) -> None:
        for statement in statements:
            tx.run(statement)
        last = tx.one("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1")
        seq, mac = (0, _GENESIS) if last is None else (last[0], bytes(last[1]))
        tx.run("INSERT INTO audit_head (id, seq, mac) VALUES (1, ?, ?) "
               "ON CONFLICT (id) DO NOTHING", seq, mac)
        row = tx.one("SELECT wrapped FROM server_keys LIMIT 1")
        if row is not None:
            tx.run("INSERT INTO keyring (kid, state, added_at) VALUES (?, 'primary', 0) "
                   "ON CONFLICT (kid) DO NOTHING", bytes(row[0])[:8])
        tx.run("UPDATE meta SET value = ? WHERE name = 'schema_version'", str(version + 1))

    # -- raw access, for the inspector only (what a database breach sees or does) -----

    def query(self, sql: str, *params: object) -> list[Row]:
        return self._db.read(lambda tx: tx.all(sql, *params))

    def query_named(self, sql: str, *params: object) -> tuple[list[str], list[Row]]:
        return self._db.read(lambda tx: tx.named(sql, *params))

    def tamper(self, sql: str, *params: object) -> int:
        return self._db.write(lambda tx: tx.run(sql, *params))

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def describe(self) -> str:
        return self._db.describe()

    def ping(self) -> None:
        self._db.read(lambda tx: tx.one("SELECT value FROM meta WHERE name = 'schema_version'"))

    def scrub(self) -> None:
        self._db.scrub()

    def sweep(self, now: float) -> int:
        def go(tx: Tx) -> int:
            return (tx.run("DELETE FROM challenges WHERE expires_at < ?", now)
                    + tx.run("DELETE FROM nonces WHERE expires_at < ?", now)
                    + tx.run("DELETE FROM cards WHERE state = 'pending' AND expires_at < ?",
                             now))
        return self._db.write(go)

    # -- the share re-split, judged in the evaluation's transaction ------------------
    # Here and not in _sql_cards.py (whose spend_guess calls it): ``judge`` is looked
    # up in this module, where the tests that break the re-split's guard replace it.

    def _judge_shares(self, tx: Tx, card_id: str, presented: int, presented_key: bytes,
                      now: float, proven: bool, epoch_proven: bool,
                      sent_at: float | None, proof_floor: int | None = None) -> Spend:
        """Apply ``_refresh.judge`` to the presented share version, in the evaluation's
        transaction: ``spent`` (go on, at ``share_version``) or the refusal."""
        row = tx.one("SELECT share_version, share_floor, refresh_key, cloned, refreshed_at, "
                     "share_next IS NOT NULL, committed_at FROM cards "
                     "WHERE card_id = ? AND state = 'active'", card_id)
        if row is None:
            return Spend("unknown")
        version, floor = int(row[0]), int(row[1])
        if row[3]:
            return Spend("cloned", share_version=version)
        if proof_floor is not None and floor != proof_floor:
            # Re-enrolled between the proof's check and this transaction: the proof
            # was made against the old enrollment's tokens, and counts for nothing.
            proven = epoch_proven = False
        waiting = bool(row[5])
        next_key = _blob(row[2]) if waiting else None
        verdict = judge(version, floor, next_key, presented, presented_key)
        detail: dict[str, int | str | bool] = {"presented": presented,
                                               "share_version": version}
        if (verdict in ("current", "commit", "resend") and not proven) or (
                verdict == "stale" and not epoch_proven):
            # A claim of a version the requester cannot prove it holds (the possession
            # MAC failed), or a stale one from outside the card's current enrollment:
            # a copy lying about its version. Nothing is evaluated, committed or
            # marked; it is recorded.
            self._append(tx, AuditEvent("share_proof_failed", card_id, detail), now)
            return Spend("unproven", share_version=version)
        if verdict == "stale":
            moved = (None if row[6] is None else float(row[6])) if presented < version else (
                None if row[4] is None else float(row[4]))
            if is_late(sent_at, moved):
                # Sent before the server moved past its version, or too close to it to
                # tell (clocks differ): an owner's request held back and delivered after
                # the owner's next payment. Refused; not taken for a copy.
                self._append(tx, AuditEvent("stale_copy_refused", card_id,
                                            {**detail, "late": True}), now)
                return Spend("late", share_version=version)
        if verdict == "commit":
            # The device holds D_v+1: S_v+1 becomes the share and S_v is gone. The
            # compare-and-set on the version makes one of racing commits win; a
            # loser finds the card at v+1 already, which is where it wanted it.
            if tx.run("UPDATE cards SET share = share_next, share_next = NULL, "
                      "share_token = share_next_token, share_next_token = NULL, "
                      "refresh_key = NULL, share_version = share_version + 1, "
                      "committed_at = ? "
                      "WHERE card_id = ? AND share_version = ? AND share_next IS NOT NULL",
                      now, card_id, version):
                self._append(tx, AuditEvent("shares_committed", card_id,
                                            {"share_version": version + 1}), now)
            return Spend("spent", share_version=version + 1)
        if verdict == "stale":
            # A copy of the device from before a payment: refused before any PIN is
            # evaluated, and the card is refused to every copy until re-enrolled. The
            # compare-and-set on version and floor: a re-enrollment racing this request
            # (READ COMMITTED) must not be marked by it.
            if tx.run("UPDATE cards SET cloned = 1 WHERE card_id = ? AND share_version = ? "
                      "AND share_floor = ?", card_id, version, floor):
                self._append(tx, AuditEvent("clone_detected", card_id, detail), now)
            return Spend("cloned", share_version=version)
        if verdict in ("cut_off", "ahead"):
            self._append(tx, AuditEvent("stale_copy_refused" if verdict == "cut_off"
                                        else "share_version_ahead", card_id,
                                        {"presented": presented, "share_version": version}),
                         now)
            return Spend(verdict, share_version=version)
        if verdict == "resend":
            return Spend("spent", share_version=version, resend=True)
        return Spend("spent", share_version=version)
