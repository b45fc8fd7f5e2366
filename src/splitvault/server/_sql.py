"""The store's operations in SQL, written once for every backend.

A backend (``_sqlite.py``, ``_postgres.py``) supplies connections, transactions and
retries; this module supplies the statements. Each public method runs its statements
in one ``backend.write`` transaction, whose guards (conditional ``UPDATE``, ``INSERT
... ON CONFLICT DO NOTHING``, ``RETURNING``) make the decision atomic on any engine and
at any isolation level: under READ COMMITTED a blocked statement re-checks its
``WHERE`` on the committed row; under SERIALIZABLE the loser gets SQLSTATE 40001 and
the backend runs the whole function again. So a function passed to ``write`` must have
no effect outside the transaction.

Placeholders are ``?`` here; the PostgreSQL backend translates them. No statement
uses ``%`` or a literal ``?``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, Protocol, TypeVar, cast

from .._errors import ConfigurationError
from ._refresh import REENROLL_STEP, judge
from ._schema import SCHEMA_VERSION, Dialect, migrations, schema
from ._store import (
    SETTLED,
    UNPROVEN_LIMIT,
    UNPROVEN_WINDOW,
    AuditEvent,
    AuditMac,
    AuditRow,
    CardRecord,
    ChallengeRecord,
    KeyRecord,
    LedgerEntry,
    LedgerStart,
    LedgerState,
    OutboxMessage,
    PendingCard,
    ProofOutcome,
    RiskCheck,
    ShareStep,
    Spend,
    WorkerRecord,
    WrappedRef,
)

__all__ = ["Backend", "SqlStore", "Tx"]

T = TypeVar("T")
Row = tuple[Any, ...]

_GENESIS = bytes(32)

# (table, row key expression, wrapped column, purpose): every wrapped value stored.
# The row key is what the value's AAD names, so a re-wrap keeps it bound to its row.
_WRAPPED: tuple[tuple[str, str, str, str], ...] = (
    ("server_keys", "name", "wrapped", "server-key"),
    ("cards", "card_id", "oprf_key", "oprf-key"),
    ("cards", "card_id", "share", "share"),
    ("cards", "card_id", "share_next", "share"),  # the re-split waiting for the device
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


class SqlStore:
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

    @staticmethod
    def wrapped_columns() -> tuple[tuple[str, str, str], ...]:
        """(table, column, purpose) of every wrapped value the store keeps."""
        return tuple((t, c, p) for t, _, c, p in _WRAPPED)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def describe(self) -> str:
        return self._db.describe()

    def ping(self) -> None:
        self._db.read(lambda tx: tx.one("SELECT value FROM meta WHERE name = 'schema_version'"))

    def attach_audit(self, mac: AuditMac) -> None:
        self._mac = mac

    def scrub(self) -> None:
        self._db.scrub()

    def sweep(self, now: float) -> int:
        def go(tx: Tx) -> int:
            return (tx.run("DELETE FROM challenges WHERE expires_at < ?", now)
                    + tx.run("DELETE FROM nonces WHERE expires_at < ?", now)
                    + tx.run("DELETE FROM cards WHERE state = 'pending' AND expires_at < ?",
                             now))
        return self._db.write(go)

    # -- audit -----------------------------------------------------------------------

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

    # -- enrollment ------------------------------------------------------------------

    def begin_enrollment(self, card_id: str, device_key: bytes, oprf_key: bytes, now: float,
                         expires_at: float, *, origin: bytes | None = None,
                         per_origin: int | None = None, total: int | None = None,
                         wallet: bytes | None = None) -> Literal["ok", "taken", "full"]:
        def go(tx: Tx) -> Literal["ok", "taken", "full"]:
            if per_origin is not None or total is not None:
                # The gate row serializes capped enrollments: under READ COMMITTED a
                # second one waits here, then counts with the first one's row committed;
                # under SERIALIZABLE one of them is rerun.
                tx.run("INSERT INTO meta (name, value) VALUES ('enrollment_gate', '0') "
                       "ON CONFLICT (name) DO NOTHING")
                tx.run("UPDATE meta SET value = value WHERE name = 'enrollment_gate'")
                row = tx.one("SELECT count(*), sum(CASE WHEN origin = ? THEN 1 ELSE 0 END) "
                             "FROM cards WHERE state = 'pending' AND expires_at >= ?",
                             origin, now)
                live, mine = (0, 0) if row is None else (int(row[0]), int(row[1] or 0))
                if (total is not None and live >= total) or (
                        per_origin is not None and origin is not None and mine >= per_origin):
                    return "full"
            inserted = tx.all(
                "INSERT INTO cards (card_id, state, device_key, oprf_key, created_at, "
                "expires_at, origin, wallet) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (card_id) DO NOTHING RETURNING card_id",
                card_id, device_key, oprf_key, now, expires_at, origin, wallet)
            return "ok" if inserted else "taken"
        return self._db.write(go)

    def pending_enrollments(self) -> int:
        row = self._db.read(lambda tx: tx.one(
            "SELECT count(*) FROM cards WHERE state = 'pending'"))
        return int(row[0]) if row else 0

    def pending_card(self, card_id: str, now: float) -> PendingCard | None:
        row = self._db.read(lambda tx: tx.one(
            "SELECT device_key, oprf_key FROM cards WHERE card_id = ? AND state = 'pending' "
            "AND expires_at >= ?", card_id, now))
        return None if row is None else PendingCard(card_id, bytes(row[0]), bytes(row[1]))

    def wallet_guesses(self, wallet: bytes) -> int:
        row = self._db.read(lambda tx: tx.one(
            "SELECT guesses FROM wallets WHERE wallet = ?", wallet))
        return 0 if row is None else int(row[0])

    def finish_enrollment(self, card_id: str, verifier: bytes, share: bytes, now: float,
                          event: AuditEvent) -> bool:
        def go(tx: Tx) -> bool:
            if not tx.run("UPDATE cards SET state = 'active', verifier = ?, share = ?, "
                          "expires_at = NULL, origin = NULL WHERE card_id = ? "
                          "AND state = 'pending' "
                          "AND expires_at >= ?", verifier, share, card_id, now):
                return False
            self._append(tx, event, now)
            return True
        return self._db.write(go)

    # -- cards, guesses and proofs ---------------------------------------------------

    def card(self, card_id: str) -> CardRecord | None:
        row = self._db.read(lambda tx: tx.one(
            "SELECT device_key, verifier, oprf_key, share, guesses_used, locked, "
            "share_version, share_floor, share_next, refresh_key, refreshed_at, cloned, "
            "wallet FROM cards WHERE card_id = ? AND state = 'active'", card_id))
        if row is None:
            return None
        return CardRecord(card_id, bytes(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]),
                          int(row[4]), bool(row[5]), int(row[6]), int(row[7]),
                          _blob(row[8]), _blob(row[9]),
                          None if row[10] is None else float(row[10]), bool(row[11]),
                          _blob(row[12]))

    def card_count(self) -> int:
        row = self._db.read(lambda tx: tx.one(
            "SELECT count(*) FROM cards WHERE state = 'active'"))
        return int(row[0]) if row else 0

    def challenge(self, challenge_id: str) -> ChallengeRecord | None:
        row = self._db.read(lambda tx: tx.one(
            "SELECT card_id, nonce, state, expires_at, new_oprf_key, share_version "
            "FROM challenges WHERE challenge_id = ?", challenge_id))
        if row is None:
            return None
        return ChallengeRecord(challenge_id, row[0], bytes(row[1]), row[2], float(row[3]),
                               _blob(row[4]), int(row[5]))

    def spend_guess(self, card_id: str, nonce: bytes, nonce_expires: float,
                    challenge: ChallengeRecord, limit: int, now: float, *,
                    unproven_limit: int = UNPROVEN_LIMIT,
                    unproven_window: float = UNPROVEN_WINDOW,
                    share_version: int = 0, refresh_key: bytes = b"",
                    wallet: bytes | None = None) -> Spend:
        def go(tx: Tx) -> Spend:
            if not tx.all("INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
                          "ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
                          nonce, nonce_expires):
                return Spend("replayed")
            shares = self._judge_shares(tx, card_id, share_version, refresh_key, now)
            if shares.outcome != "spent":
                return shares
            version = shares.share_version
            spent = 0  # the wallet's wrong proofs (0: no wallet)
            if wallet is not None:
                # A wallet at its limit refuses every card of it before anything is
                # evaluated (settle_proof enforces it again, with the wallet row held).
                row = tx.one("SELECT guesses FROM wallets WHERE wallet = ?", wallet)
                spent = 0 if row is None else int(row[0])
                if spent >= limit:
                    self._lock(tx, card_id, now, {"wallet": True})
                    return Spend("locked")
            # An evaluation alone tests no PIN (every value the PIN key makes travels
            # sealed to the server), so it does not count toward the lock: only a wrong
            # proof does (settle_proof). It spends from its own budget, renewed per
            # window, which bounds the work a device key can ask for. One conditional
            # UPDATE decides, so the budget holds on any number of workers.
            start = now - unproven_window
            row = tx.one("UPDATE cards SET "
                         "unproven = CASE WHEN unproven_since < ? THEN 1 ELSE unproven + 1 END, "
                         "unproven_since = CASE WHEN unproven_since < ? THEN ? "
                         "ELSE unproven_since END "
                         "WHERE card_id = ? AND state = 'active' AND locked = 0 "
                         "AND guesses_used < ? AND (unproven_since < ? OR unproven < ?) "
                         "RETURNING guesses_used, unproven",
                         start, start, now, card_id, limit, start, unproven_limit)
            if row is not None:
                used = int(row[0])
                tx.run("INSERT INTO challenges (challenge_id, card_id, nonce, state, "
                       "expires_at, share_version) VALUES (?, ?, ?, 'evaluated', ?, ?)",
                       challenge.challenge_id, card_id, challenge.nonce, challenge.expires_at,
                       version)
                self._append(tx, AuditEvent("guess_used", card_id,
                                            {"guesses_used": used, "limit": limit,
                                             "unproven": int(row[1])}), now)
                return Spend("spent", max(used, spent), version, shares.share,
                             shares.share_next)
            state = tx.one("SELECT locked, guesses_used FROM cards WHERE card_id = ? "
                           "AND state = 'active'", card_id)
            if state is None:
                return Spend("unknown")
            if state[0] or int(state[1]) >= limit:
                self._lock(tx, card_id, now)
                return Spend("locked")
            # The unproven budget is spent: refuse, never lock (a right PIN would still
            # unlock this card once the window renews).
            return Spend("busy", int(state[1]))
        return self._db.write(go)

    def _judge_shares(self, tx: Tx, card_id: str, presented: int, presented_key: bytes,
                      now: float) -> Spend:
        """Apply ``_refresh.judge`` to the presented share version, in the evaluation's
        transaction: ``spent`` (go on, at ``share_version``) or the refusal."""
        row = tx.one("SELECT share_version, share_floor, refresh_key, cloned, share, "
                     "share_next FROM cards WHERE card_id = ? AND state = 'active'", card_id)
        if row is None:
            return Spend("unknown")
        version, floor = int(row[0]), int(row[1])
        if row[3]:
            return Spend("cloned", share_version=version)
        next_key = _blob(row[2]) if row[5] is not None else None
        verdict = judge(version, floor, next_key, presented, presented_key)
        if verdict == "commit":
            # The device holds D_v+1: S_v+1 becomes the share and S_v is gone. The
            # compare-and-set on the version makes one of racing commits win; a
            # loser finds the card at v+1 already, which is where it wanted it.
            if tx.run("UPDATE cards SET share = share_next, share_next = NULL, "
                      "refresh_key = NULL, share_version = share_version + 1 "
                      "WHERE card_id = ? AND share_version = ? AND share_next IS NOT NULL",
                      card_id, version):
                self._append(tx, AuditEvent("shares_committed", card_id,
                                            {"share_version": version + 1}), now)
            return Spend("spent", share_version=version + 1)
        if verdict == "stale":
            # A copy of the device from before a payment: refused before any PIN is
            # evaluated, and the card is refused to every copy until re-enrolled.
            tx.run("UPDATE cards SET cloned = 1 WHERE card_id = ?", card_id)
            self._append(tx, AuditEvent("clone_detected", card_id,
                                        {"presented": presented, "share_version": version}),
                         now)
            return Spend("cloned", share_version=version)
        if verdict in ("cut_off", "ahead"):
            self._append(tx, AuditEvent("stale_copy_refused" if verdict == "cut_off"
                                        else "share_version_ahead", card_id,
                                        {"presented": presented, "share_version": version}),
                         now)
            return Spend(verdict, share_version=version)
        if verdict == "resend":
            return Spend("spent", share_version=version, share=_blob(row[4]),
                         share_next=_blob(row[5]))
        return Spend("spent", share_version=version)

    def _lock(self, tx: Tx, card_id: str, now: float,
              detail: dict[str, int | str | bool] | None = None) -> None:
        if tx.run("UPDATE cards SET locked = 1 WHERE card_id = ? AND locked = 0", card_id):
            self._append(tx, AuditEvent("locked", card_id, detail or {}), now)

    def settle_proof(self, card_id: str, challenge_id: str, *, verified: bool, limit: int,
                     now: float, ledger: LedgerStart | None = None,
                     pin_change_key: bytes | None = None,
                     risk: RiskCheck | None = None,
                     wallet: Callable[[bytes], bytes] | None = None) -> ProofOutcome:
        def go(tx: Tx) -> ProofOutcome:
            # One evaluation, one proof: the challenge is consumed whatever happens next.
            if pin_change_key is not None and verified:
                claimed = tx.run("UPDATE challenges SET state = 'pin_change', "
                                 "new_oprf_key = ? WHERE challenge_id = ? AND card_id = ? "
                                 "AND state = 'evaluated' AND expires_at >= ?",
                                 pin_change_key, challenge_id, card_id, now)
            else:
                claimed = tx.run("UPDATE challenges SET state = 'used' WHERE challenge_id = ? "
                                 "AND card_id = ? AND state = 'evaluated' "
                                 "AND expires_at >= ?", challenge_id, card_id, now)
            if not claimed:
                return ProofOutcome("gone")
            card = tx.one("SELECT guesses_used, locked, wallet FROM cards WHERE card_id = ? "
                          "AND state = 'active'", card_id)
            if card is None:
                return ProofOutcome("gone")
            if card[1]:
                return ProofOutcome("locked")
            row = None if card[2] is None or wallet is None else wallet(bytes(card[2]))
            used, spent = int(card[0]), 0
            if row is not None:
                held = self._hold_wallet(tx, card_id, row)
                if held is None:
                    return ProofOutcome("gone")
                if held[0]:
                    return ProofOutcome("locked")
                used, spent = held[1], held[2]
                if spent >= limit:
                    # Right PIN or wrong: a proof past the wallet's budget would be
                    # one more PIN test, so it is refused unjudged.
                    self._lock(tx, card_id, now, {"wallet": True})
                    return ProofOutcome("locked")
            if not verified:
                return self._wrong_proof(tx, card_id, row, limit, now)
            if not tx.run("UPDATE cards SET guesses_used = 0, unproven = 0 WHERE card_id = ? "
                          "AND state = 'active' AND locked = 0", card_id):
                return ProofOutcome("locked")  # a racing wrong proof locked it first
            if row is not None and used:
                # The right PIN of this card takes back this card's wrong proofs, and
                # only those: the wallet's count stays the sum of its cards' counts
                # (plus those of cards deleted or re-enrolled, never refunded). So the
                # owner's typos are forgiven as on a card alone, while a thief who
                # learned one card's PIN gains no guesses at the others'.
                tx.run("UPDATE wallets SET guesses = CASE WHEN guesses > ? "
                       "THEN guesses - ? ELSE 0 END WHERE wallet = ?", used, used, row)
            if ledger is None:
                return ProofOutcome("ok")
            if tx.all("INSERT INTO authorizations (key_digest, params_digest, state, "
                      "result, started_at, owner, lease_until, reference, attempt) "
                      "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (key_digest) DO NOTHING RETURNING key_digest",
                      ledger.key, ledger.params_digest, ledger.intent, now, ledger.owner,
                      ledger.lease_until, ledger.reference, ledger.attempt):
                if risk is not None and self._risk_declined(tx, ledger.key, risk, now):
                    return ProofOutcome("ok", ledger="recorded",
                                        entry=self._entry(tx, ledger.key))
                return ProofOutcome("ok", ledger="new")
            return ProofOutcome("ok", ledger="recorded", entry=self._entry(tx, ledger.key))
        return self._db.write(go)

    @staticmethod
    def _hold_wallet(tx: Tx, card_id: str, row: bytes) -> tuple[bool, int, int] | None:
        """Hold the wallet row, then the card's: (locked, card's count, wallet's count)
        as committed, or None if the card is gone. Every proof of a wallet's cards
        takes the two rows in this order, so under READ COMMITTED racing proofs queue
        on the wallet row (and re-read it committed) instead of deadlocking; under
        SERIALIZABLE the loser is rerun."""
        tx.run("INSERT INTO wallets (wallet, guesses) VALUES (?, 0) "
               "ON CONFLICT (wallet) DO NOTHING", row)
        wallet = tx.one("UPDATE wallets SET guesses = guesses WHERE wallet = ? "
                        "RETURNING guesses", row)
        card = tx.one("UPDATE cards SET locked = locked WHERE card_id = ? "
                      "AND state = 'active' RETURNING locked, guesses_used", card_id)
        if card is None or wallet is None:
            return None
        return bool(card[0]), int(card[1]), int(wallet[0])

    def _wrong_proof(self, tx: Tx, card_id: str, row: bytes | None, limit: int,
                     now: float) -> ProofOutcome:
        # A wrong proof is the one PIN test there is: counted by one conditional UPDATE
        # on the card and, for a card in a wallet, one on the wallet (whose row this
        # transaction holds), so racing proofs never count past either limit.
        counted = tx.one("UPDATE cards SET guesses_used = guesses_used + 1 "
                         "WHERE card_id = ? AND state = 'active' AND locked = 0 "
                         "AND guesses_used < ? RETURNING guesses_used", card_id, limit)
        left = 0 if counted is None else limit - int(counted[0])
        detail: dict[str, int | str | bool] = {}
        if row is not None and counted is not None:
            wallet = tx.one("UPDATE wallets SET guesses = guesses + 1 WHERE wallet = ? "
                            "AND guesses < ? RETURNING guesses", row, limit)
            wallet_left = 0 if wallet is None else limit - int(wallet[0])
            if wallet_left < left:
                left, detail = wallet_left, {"wallet": True}
        if left <= 0:
            self._lock(tx, card_id, now, detail)
            return ProofOutcome("locked")
        self._append(tx, AuditEvent("wrong_pin", card_id, {"attempts_left": left}), now)
        return ProofOutcome("wrong", attempts_left=left)

    def _risk_declined(self, tx: Tx, key: bytes, risk: RiskCheck, now: float) -> bool:
        """Run the fraud rules on the card's history, held for this transaction; True
        if they declined (the new ledger row then records the decline)."""
        # Holding the row first (a no-op UPDATE takes its lock) serializes the
        # payments of one card: under READ COMMITTED a racing one waits here and then
        # reads this one's history; under SERIALIZABLE it fails and is rerun. (The
        # proof's reset of the card's counters above already locks the card's row;
        # this hold keeps the count exact without relying on that.)
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

    def finish_pin_change(self, card_id: str, challenge_id: str, oprf_key: bytes,
                          verifier: bytes, now: float) -> bool:
        def go(tx: Tx) -> bool:
            if not tx.run("UPDATE challenges SET state = 'used', new_oprf_key = NULL "
                          "WHERE challenge_id = ? AND card_id = ? AND state = 'pin_change' "
                          "AND expires_at >= ?", challenge_id, card_id, now):
                return False
            if not tx.run("UPDATE cards SET oprf_key = ?, verifier = ?, guesses_used = 0 "
                          "WHERE card_id = ? AND state = 'active'", oprf_key, verifier,
                          card_id):
                return False
            self._append(tx, AuditEvent("pin_changed", card_id), now)
            return True
        return self._db.write(go)

    def delete_card(self, card_id: str, nonce: bytes, nonce_expires: float,
                    now: float) -> bool:
        def go(tx: Tx) -> bool:
            if not tx.all("INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
                          "ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
                          nonce, nonce_expires):
                return False
            gone = tx.one("DELETE FROM cards WHERE card_id = ? RETURNING state", card_id)
            tx.run("DELETE FROM challenges WHERE card_id = ?", card_id)
            # A pending row is an enrollment the device gave up on (it never saw the
            # server finish it): audited as such, not as a card's deletion.
            event = "enrollment_cancelled" if gone and gone[0] == "pending" else "deleted"
            self._append(tx, AuditEvent(event, card_id), now)
            return True
        return self._db.write(go)

    def use_nonce(self, nonce: bytes, nonce_expires: float) -> bool:
        """Take a device nonce for a request that changes nothing else (a status
        query); False if it was used before."""
        return bool(self._db.write(lambda tx: tx.all(
            "INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
            "ON CONFLICT (nonce) DO NOTHING RETURNING nonce", nonce, nonce_expires)))

    def begin_reenrollment(self, card_id: str, nonce: bytes, nonce_expires: float,
                           challenge: ChallengeRecord, now: float
                           ) -> Literal["ok", "replayed", "unknown"]:
        def go(tx: Tx) -> Literal["ok", "replayed", "unknown"]:
            if not tx.all("INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
                          "ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
                          nonce, nonce_expires):
                return "replayed"
            if tx.one("SELECT 1 FROM cards WHERE card_id = ? AND state = 'active'",
                      card_id) is None:
                return "unknown"
            # share_version: the card's version the device saw; finishing requires the
            # card to be still there (a copy paying meanwhile makes it fail).
            tx.run("INSERT INTO challenges (challenge_id, card_id, nonce, state, expires_at, "
                   "new_oprf_key, share_version) VALUES (?, ?, ?, 'reenroll', ?, ?, ?)",
                   challenge.challenge_id, card_id, challenge.nonce, challenge.expires_at,
                   challenge.new_oprf_key, challenge.share_version)
            return "ok"
        return self._db.write(go)

    def finish_reenrollment(self, card_id: str, challenge_id: str, oprf_key: bytes,
                            verifier: bytes, share: bytes, now: float,
                            event: AuditEvent) -> bool:
        def go(tx: Tx) -> bool:
            claimed = tx.one("UPDATE challenges SET state = 'used', new_oprf_key = NULL "
                             "WHERE challenge_id = ? AND card_id = ? AND state = 'reenroll' "
                             "AND expires_at >= ? RETURNING share_version", challenge_id,
                             card_id, now)
            if claimed is None:
                return False
            # The new share starts REENROLL_STEP (2) versions above the one the device saw at begin
            # (a waiting re-split would have been one above), and that version is the
            # floor: every copy of the device, at or below any version before it, is
            # cut off. Only if no copy paid between begin and finish.
            began = int(claimed[0])
            if not tx.run("UPDATE cards SET oprf_key = ?, verifier = ?, share = ?, "
                          "guesses_used = 0, unproven = 0, locked = 0, cloned = 0, "
                          "share_next = NULL, refresh_key = NULL, refreshed_at = NULL, "
                          "share_version = ?, share_floor = ?, wallet = NULL "
                          "WHERE card_id = ? AND state = 'active' AND share_version = ?",
                          oprf_key, verifier, share, began + REENROLL_STEP,
                          began + REENROLL_STEP, card_id, began):
                return False
            # Proofs in flight were made under the old OPRF key: none may settle now.
            tx.run("DELETE FROM challenges WHERE card_id = ? AND challenge_id <> ?", card_id,
                   challenge_id)
            self._append(tx, event, now)
            return True
        return self._db.write(go)

    # -- ledger ----------------------------------------------------------------------

    @staticmethod
    def _entry(tx: Tx, key: bytes) -> LedgerEntry | None:
        row = tx.one("SELECT key_digest, state, params_digest, result, owner, lease_until, "
                     "reference, attempt FROM authorizations WHERE key_digest = ?", key)
        return None if row is None else _ledger_row(row)

    def ledger_entry(self, key: bytes) -> LedgerEntry | None:
        return self._db.read(lambda tx: self._entry(tx, key))

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
                tx.run("UPDATE cards SET share_next = ?, refresh_key = ?, refreshed_at = ? "
                       "WHERE card_id = ? AND state = 'active' AND share_version = ? "
                       "AND share_next IS NULL", step.share_next, step.refresh_key, now,
                       step.card_id, step.version)
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


    # -- fraud-rule history and the outbox -------------------------------------------

    def risk_histories(self) -> list[tuple[bytes, bytes]]:
        rows = self._db.read(lambda tx: tx.all(
            "SELECT row_key, history FROM card_risk WHERE history IS NOT NULL "
            "ORDER BY row_key"))
        return [(bytes(k), bytes(h)) for k, h in rows]

    def forget_risk(self, row: bytes) -> bool:
        return bool(self._db.write(lambda tx: tx.run(
            "DELETE FROM card_risk WHERE row_key = ?", row)))

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


AUDIT_GRANULARITY = 60.0
"""Seconds audit times are rounded down to (see ``_append``)."""


def audit_minute(now: float) -> float:
    """``now`` rounded down to :data:`AUDIT_GRANULARITY`, as the audit log stores it."""
    return float(int(now // AUDIT_GRANULARITY) * AUDIT_GRANULARITY)


def _blob(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]


def _ledger_row(row: Row) -> LedgerEntry:
    # The columns of every ledger SELECT above, in this order.
    return LedgerEntry(bytes(row[0]), row[1], bytes(row[2]),
                       None if row[3] is None else bytes(row[3]), row[4], float(row[5]),
                       row[6], int(row[7]))
