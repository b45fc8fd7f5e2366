"""The exactly-once ledger: one row per (card, idempotency key).

A row is written as ``pending`` *before* the acquirer is called and completed after.
So a crash between the acquirer's answer and its recording leaves a pending row,
and a retry then refuses to call the acquirer again (``PaymentInDoubt``) instead of
charging twice. If the acquirer raises without answering, the pending row is removed:
nothing was charged, and a retry may try again.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from .._authorization import Authorization
from .._errors import TamperedData
from ..crypto.encoding import encode, u64
from ..crypto.memory import wipe
from ._kek import Kek

__all__ = ["Ledger", "LedgerEntry"]

_D_KEY = b"splitvault/v1/ledger-key"
_D_PARAMS = b"splitvault/v1/ledger-params"


@dataclass(frozen=True)
class LedgerEntry:
    state: str
    params_digest: bytes
    result: bytes | None


class Ledger:
    def __init__(self, mac_key: bytes | bytearray) -> None:
        self._mac_key = mac_key

    def _mac(self, msg: bytes) -> bytes:
        return bytes(blake2b(msg, digest_size=32, key=bytes(self._mac_key), encoder=RawEncoder))

    def key_digest(self, card_id: str, idempotency_key: str) -> bytes:
        return self._mac(encode(_D_KEY, card_id.encode(), idempotency_key.encode()))

    def params_digest(self, card_id: str, amount: int, currency: str, merchant: str) -> bytes:
        return self._mac(
            encode(_D_PARAMS, card_id.encode(), u64(amount), currency.encode(), merchant.encode())
        )

    @staticmethod
    def same_params(entry: LedgerEntry, digest: bytes) -> bool:
        return hmac.compare_digest(entry.params_digest, digest)

    @staticmethod
    def lookup(conn: sqlite3.Connection, key: bytes) -> LedgerEntry | None:
        row = conn.execute(
            "SELECT state, params_digest, result FROM authorizations WHERE key_digest = ?", (key,)
        ).fetchone()
        return None if row is None else LedgerEntry(row[0], row[1], row[2])

    @staticmethod
    def start(conn: sqlite3.Connection, key: bytes, params: bytes, now: float) -> None:
        conn.execute(
            "INSERT INTO authorizations (key_digest, params_digest, state, started_at) "
            "VALUES (?, ?, 'pending', ?)",
            (key, params, now),
        )

    @staticmethod
    def abandon(conn: sqlite3.Connection, key: bytes) -> None:
        conn.execute(
            "DELETE FROM authorizations WHERE key_digest = ? AND state = 'pending'", (key,)
        )

    @staticmethod
    def mark_in_doubt(conn: sqlite3.Connection, key: bytes) -> None:
        conn.execute(
            "UPDATE authorizations SET state = 'in_doubt' WHERE key_digest = ? "
            "AND state = 'pending'", (key,)
        )

    @staticmethod
    def finish(conn: sqlite3.Connection, kek: Kek, key: bytes, auth: Authorization,
               now: float) -> None:
        blob = kek.wrap("ledger", key.hex(), _dump(auth))
        conn.execute(
            "UPDATE authorizations SET state = ?, result = ?, completed_at = ? "
            "WHERE key_digest = ? AND state = 'pending'",
            ("approved" if auth.approved else "declined", blob, now, key),
        )

    @staticmethod
    def result(kek: Kek, key: bytes, entry: LedgerEntry) -> Authorization:
        if entry.result is None:
            raise TamperedData()
        raw = kek.unwrap("ledger", key.hex(), entry.result)
        try:
            return _load(raw)
        finally:
            wipe(raw)


def _dump(auth: Authorization) -> bytes:
    return json.dumps(
        {
            "approved": auth.approved,
            "approval_code": auth.approval_code,
            "decline_reason": auth.decline_reason,
            "masked_pan": auth.masked_pan,
            "amount": auth.amount,
            "currency": auth.currency,
            "merchant": auth.merchant,
            "idempotency_key": auth.idempotency_key,
            "timestamp": auth.timestamp.timestamp(),
        },
        sort_keys=True,
    ).encode()


def _load(raw: bytes | bytearray) -> Authorization:
    try:
        d = json.loads(bytes(raw))
        return Authorization(
            approved=d["approved"],
            approval_code=d["approval_code"],
            decline_reason=d["decline_reason"],
            masked_pan=d["masked_pan"],
            amount=d["amount"],
            currency=d["currency"],
            merchant=d["merchant"],
            idempotency_key=d["idempotency_key"],
            timestamp=datetime.fromtimestamp(d["timestamp"], UTC),
        )
    except (ValueError, KeyError, TypeError):
        raise TamperedData() from None
