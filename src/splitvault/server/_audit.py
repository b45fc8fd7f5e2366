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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from .._errors import TamperedData
from ..crypto.encoding import encode, u64
from ._store import AuditMac, AuditRow

__all__ = ["EVENTS", "AuditReport", "chain", "entry_json", "verify"]

EVENTS = frozenset(
    {
        "enrolled", "guess_used", "authorized", "declined", "locked", "deleted",
        "key_rotated", "pin_changed", "wrong_pin", "key_added", "key_retired",
        "reenrolled", "enrollment_cancelled",
        "reconciled", "reversed", "risk_declined",
        # the re-split of the shares (_refresh.py)
        "shares_committed", "clone_detected", "stale_copy_refused", "share_version_ahead",
        "share_proof_failed",
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


def chain(key: bytes | bytearray) -> AuditMac:
    """The link function the store calls for each new entry (it holds the key)."""
    def link(prev: bytes, seq: int, at: float, event: str, card_id: str, detail: str) -> bytes:
        if event not in EVENTS:
            raise ValueError("unknown audit event")
        return _mac(key, prev, seq, at, event, card_id, detail)
    return link


def verify(rows: Iterable[AuditRow], key: bytes | bytearray) -> AuditReport:
    """Check the whole chain; ``TamperedData`` at the first entry that does not verify."""
    prev = _GENESIS
    expected_seq = 1
    for row in rows:
        good = _mac(key, prev, expected_seq, row.at, row.event, row.card_id, row.detail)
        if row.seq != expected_seq or not _equal(good, row.mac):
            raise TamperedData(f"audit log does not verify at entry {expected_seq}")
        prev = row.mac
        expected_seq += 1
    return AuditReport(entries=expected_seq - 1, head=prev.hex())


def entry_json(row: AuditRow) -> dict[str, Any]:
    """One verified entry as a JSON object for a SIEM: seq, event, card_id, at (ISO
    8601 UTC and epoch seconds) and the event's details (counts; never a secret)."""
    from datetime import UTC, datetime

    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = {}
    return {
        "seq": row.seq,
        "event": row.event,
        "card_id": row.card_id or None,
        "at": datetime.fromtimestamp(row.at, UTC).isoformat(timespec="milliseconds"),
        "at_epoch": row.at,
        "detail": detail if isinstance(detail, dict) else {},
        "mac": row.mac.hex(),
    }


def _equal(a: bytes, b: object) -> bool:
    return isinstance(b, bytes) and hmac.compare_digest(a, b)
