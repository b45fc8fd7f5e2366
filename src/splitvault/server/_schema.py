"""The store's schema, its version, and the migrations between versions.

One DDL text serves both backends: ``{blob}``, ``{real}``, ``{int}`` and ``{strict}``
are filled in per dialect. It uses only what SQLite, PostgreSQL, CockroachDB and
YugabyteDB all accept (no sequences, no advisory locks, no triggers).

Nothing in any table identifies a card or its holder: card ids are random, every
secret is wrapped under a key-encryption key, the ledger is keyed by MACs and the
audit log holds event names, card ids and counts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCHEMA_VERSION", "Dialect", "migrations", "schema"]

SCHEMA_VERSION = 2
"""2: keyring, worker heartbeats, device nonces, ledger leases, references and
attempts, settled ledger states (reversed, failed), the audit chain's head row, the
fraud rules' per-card history, the outbox, the versioned shares of the re-split after
every payment (``_refresh.py``), the wallets that share one PIN-guess budget
across a device's cards (``wallets``, ``cards.wallet``). 1 was
the single-process SQLite schema of 0.1.0."""


@dataclass(frozen=True)
class Dialect:
    name: str
    blob: str
    real: str
    int: str
    strict: str

    def fill(self, ddl: str) -> str:
        types = {"blob": self.blob, "real": self.real, "int": self.int}
        return ddl.format(strict=self.strict, **types,
                          authorizations=_AUTHORIZATIONS.format(**types),
                          share_columns=_SHARE_COLUMNS.format(**types),
                          add_share_columns=";\n".join(
                              f"ALTER TABLE cards ADD COLUMN {column.strip()}"
                              for column in _SHARE_COLUMNS.format(**types).split(",\n")))


# The ledger's columns, shared by the schema and the 1 -> 2 rebuild. ``result`` holds,
# wrapped, the payment's details from the start (so a reconciler can record an outcome
# without the card) and its result once known. ``attempt`` numbers the acquirer
# references of one key: a reversed or failed key is retried under attempt + 1.
# ``settling``: a reconciler holds the row (owner, lease) while it asks the acquirer.
_AUTHORIZATIONS = """    key_digest {blob} PRIMARY KEY,
    params_digest {blob} NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'in_doubt', 'settling', 'approved',
                                         'declined', 'reversed', 'failed')),
    result {blob},
    started_at {real} NOT NULL,
    completed_at {real},
    owner TEXT NOT NULL DEFAULT '',
    lease_until {real} NOT NULL DEFAULT 0,
    reference TEXT NOT NULL DEFAULT '',
    attempt {int} NOT NULL DEFAULT 0"""


# The card's versioned shares (``_refresh.py``), shared by the schema and the 1 -> 2
# migration. ``share`` (above) is version ``share_version``; ``share_next``, wrapped
# like it, is version + 1 while a re-split waits for the device to show it holds its
# half (``refresh_key``: the device's X25519 key the re-split is sealed to). A request
# below ``share_version`` is a copy of the device (``cloned``); below ``share_floor``
# (the version a re-enrollment started) one that re-enrollment already cut off.
# ``share_token`` / ``share_next_token`` (wrapped): each version's token, which the
# device proves it holds with every evaluation; ``epoch_token`` (wrapped): the token
# the card was (re-)enrolled with, proving a device is of the current enrollment;
# ``committed_at``: when the server last
# moved to a new version (a stale request sent before then is late, not a copy).
_SHARE_COLUMNS = """    share_version {int} NOT NULL DEFAULT 0,
    share_floor {int} NOT NULL DEFAULT 0,
    share_next {blob},
    refresh_key {blob},
    refreshed_at {real},
    cloned {int} NOT NULL DEFAULT 0,
    share_token {blob},
    share_next_token {blob},
    committed_at {real},
    epoch_token {blob}"""


_TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
){strict};
-- The server's own keys (X25519 envelope key, MAC keys), each wrapped under a KEK.
CREATE TABLE IF NOT EXISTS server_keys (
    name TEXT PRIMARY KEY,
    wrapped {blob} NOT NULL
){strict};
-- Key-encryption keys by id (never the keys): which one new values are wrapped under.
CREATE TABLE IF NOT EXISTS keyring (
    kid {blob} PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'primary', 'active', 'retired')),
    added_at {real} NOT NULL
){strict};
-- Running servers and the key ids each can use (rotation waits for all of them).
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    kids TEXT NOT NULL,
    seen_at {real} NOT NULL
){strict};
CREATE TABLE IF NOT EXISTS cards (
    card_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    device_key {blob} NOT NULL,
    verifier {blob},
    oprf_key {blob} NOT NULL,
    share {blob},
    guesses_used {int} NOT NULL DEFAULT 0,
    locked {int} NOT NULL DEFAULT 0,
    created_at {real} NOT NULL,
    expires_at {real},
    unproven {int} NOT NULL DEFAULT 0,
    unproven_since {real} NOT NULL DEFAULT 0,
    origin {blob},
    wallet {blob},
{share_columns}
){strict};
CREATE INDEX IF NOT EXISTS cards_pending_expiry ON cards (state, expires_at);
-- origin: a keyed MAC of the address that began a pending enrollment (never the
-- address), for the per-address cap; cleared when the enrollment finishes.
-- wallet: the card's wallet row key (below), wrapped under the KEK: a dump does not
-- show which cards share a wallet. NULL for a card with its own limit only.
-- A device's PIN-guess budget across its cards: wrong proofs counted per wallet as
-- well as per card (``_sql.settle_proof``). Keyed by a keyed MAC of the device's
-- wallet public key (never the key); nothing here names a card.
CREATE TABLE IF NOT EXISTS wallets (
    wallet {blob} PRIMARY KEY,
    guesses {int} NOT NULL DEFAULT 0
){strict};
CREATE TABLE IF NOT EXISTS challenges (
    challenge_id TEXT PRIMARY KEY,
    card_id TEXT NOT NULL,
    nonce {blob} NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('issued', 'evaluated', 'pin_change', 'reenroll',
                                         'used')),
    expires_at {real} NOT NULL,
    new_oprf_key {blob},
    share_version {int} NOT NULL DEFAULT 0
){strict};
CREATE INDEX IF NOT EXISTS challenges_expiry ON challenges (expires_at);
CREATE INDEX IF NOT EXISTS challenges_card ON challenges (card_id, state);
-- Device-chosen request nonces, kept until their timestamp could no longer be fresh.
CREATE TABLE IF NOT EXISTS nonces (
    nonce {blob} PRIMARY KEY,
    expires_at {real} NOT NULL
){strict};
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);
-- Exactly-once ledger, keyed by a MAC of (card id, idempotency key). A pending row
-- carries the lease of the worker calling the acquirer.
CREATE TABLE IF NOT EXISTS authorizations (
{authorizations}
){strict};
-- What the reconciler looks for: rows in doubt, and pending rows whose lease expired.
CREATE INDEX IF NOT EXISTS authorizations_unsettled ON authorizations (state, lease_until);
-- What the fraud rules remember of each card (_risk_history.py), one row per card,
-- keyed by a MAC of the card id (a breach cannot tie it to the card) and wrapped
-- whole under the KEK, padded: no times, amounts or merchants in clear, and no row
-- per payment. Held by the proof's transaction that counts a payment into it.
CREATE TABLE IF NOT EXISTS card_risk (
    row_key {blob} PRIMARY KEY,
    history {blob}
){strict};
-- The transactional outbox: receipts and notifications written in the transaction
-- that records the payment's outcome, delivered after it commits. The payload is
-- wrapped; due_at is when the next delivery try may run (a lease while one runs).
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload {blob} NOT NULL,
    due_at {real} NOT NULL,
    attempts {int} NOT NULL DEFAULT 0
){strict};
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due_at);
-- Append-only, MAC-chained audit log (see _audit.py); audit_head is its one-row tip,
-- updated in every appending transaction, so appends serialize on it on every engine.
CREATE TABLE IF NOT EXISTS audit (
    seq {int} PRIMARY KEY,
    at {real} NOT NULL,
    event TEXT NOT NULL,
    card_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    mac {blob} NOT NULL
){strict};
CREATE TABLE IF NOT EXISTS audit_head (
    id {int} PRIMARY KEY CHECK (id = 1),
    seq {int} NOT NULL,
    mac {blob} NOT NULL
){strict};
"""


def schema(dialect: Dialect) -> list[str]:
    """The statements that create the current schema in an empty database."""
    return _split(dialect.fill(_TABLES))


# Version 1 -> 2, SQLite only (0.1.0 never ran on PostgreSQL). The audit head is seeded
# from the last entry; the keyring from the key id that wraps the server's keys.
# The ledger is rebuilt rather than altered: SQLite cannot widen a CHECK constraint,
# and version 2 has more states than 1.
_V1_TO_V2 = """
ALTER TABLE cards ADD COLUMN unproven INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN unproven_since REAL NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN origin BLOB;
ALTER TABLE cards ADD COLUMN wallet BLOB;
{add_share_columns};
DROP TABLE IF EXISTS challenges;
CREATE TABLE authorizations_v2 (
{authorizations}
){strict};
INSERT INTO authorizations_v2 (key_digest, params_digest, state, result, started_at,
    completed_at) SELECT key_digest, params_digest, state, result, started_at, completed_at
    FROM authorizations;
DROP TABLE authorizations;
ALTER TABLE authorizations_v2 RENAME TO authorizations;
"""


def migrations(dialect: Dialect) -> dict[int, list[str]]:
    """Statements that take a database from version ``n`` to ``n + 1``, by ``n``."""
    if dialect.name != "sqlite":
        return {}
    return {1: _split(dialect.fill(_V1_TO_V2)) + schema(dialect)}


def _split(text: str) -> list[str]:
    code = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("--"))
    return [chunk.strip() for chunk in code.split(";") if chunk.strip()]
