"""The append-only, MAC-chained audit log.

Each entry's MAC is BLAKE2b keyed with the server's audit key over the previous
entry's MAC and the entry's own fields (length-prefixed). Editing, deleting or
reordering any entry breaks every MAC from there on; forging a new chain needs the
audit key, which is wrapped under the KEK. What a chain alone cannot show is a
removed *tail*: :class:`AuditReport` gives the head MAC so an operator can anchor it
elsewhere (threat_model.md, residual risks).

Entries hold event names, random card ids and counts. Never a secret, never card data.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from dataclasses import dataclass

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from .._errors import TamperedData
from ..crypto.encoding import encode, u64

__all__ = ["EVENTS", "AuditReport", "append", "verify"]

EVENTS = frozenset(
    {
        "enrolled", "guess_used", "authorized", "declined", "locked", "deleted",
        "key_rotated", "pin_changed", "wrong_pin",
    }
)
_D_AUDIT = b"splitvault/v1/audit"
_GENESIS = bytes(32)


@dataclass(frozen=True)
class AuditReport:
    """A verified log: how many entries, and the MAC of the last one (anchor it)."""

    entries: int
    head: str


def _mac(key: bytes | bytearray, prev: bytes, seq: int, at: float, event: str,
         card_id: str, detail: str) -> bytes:
    msg = encode(
        _D_AUDIT, prev, u64(seq), repr(at).encode(), event.encode(), card_id.encode(),
        detail.encode(),
    )
    return bytes(blake2b(msg, digest_size=32, key=bytes(key), encoder=RawEncoder))


def append(conn: sqlite3.Connection, key: bytes | bytearray, event: str, card_id: str,
           at: float, **detail: int | str | bool) -> None:
    """Append one entry, inside the caller's write transaction."""
    if event not in EVENTS:
        raise ValueError("unknown audit event")
    row = conn.execute("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (1, _GENESIS) if row is None else (row[0] + 1, row[1])
    text = json.dumps(detail, sort_keys=True, separators=(",", ":"))
    conn.execute(
        "INSERT INTO audit (seq, at, event, card_id, detail, mac) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, at, event, card_id, text, _mac(key, prev, seq, at, event, card_id, text)),
    )


def verify(conn: sqlite3.Connection, key: bytes | bytearray) -> AuditReport:
    """Check the whole chain; ``TamperedData`` at the first entry that does not verify."""
    prev = _GENESIS
    expected_seq = 1
    for seq, at, event, card_id, detail, mac in conn.execute(
        "SELECT seq, at, event, card_id, detail, mac FROM audit ORDER BY seq"
    ):
        good = _mac(key, prev, expected_seq, at, event, card_id, detail)
        if seq != expected_seq or not _equal(good, mac):
            raise TamperedData(f"audit log does not verify at entry {expected_seq}")
        prev = mac
        expected_seq += 1
    return AuditReport(entries=expected_seq - 1, head=prev.hex())


def _equal(a: bytes, b: object) -> bool:
    return isinstance(b, bytes) and hmac.compare_digest(a, b)
