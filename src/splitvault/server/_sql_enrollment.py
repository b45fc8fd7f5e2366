"""Enrollment in SQL: a card pending until the device finishes it (capped per origin
and in total), its deletion, and its re-enrollment."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal

from ._refresh import REENROLL_STEP
from ._sql_audit import AuditSql
from ._store import AuditEvent, ChallengeRecord, PendingCard

if TYPE_CHECKING:
    from ._sql import Tx

__all__ = ["EnrollmentSql"]


class EnrollmentSql(AuditSql):
    """The enrollment part of :class:`~._sql.SqlStore`."""

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

    def finish_enrollment(self, card_id: str, verifier: bytes, share: bytes, now: float,
                          event: AuditEvent, token: bytes | None = None) -> bool:
        def go(tx: Tx) -> bool:
            if not tx.run("UPDATE cards SET state = 'active', verifier = ?, share = ?, "
                          "share_token = ?, epoch_token = ?, expires_at = NULL, "
                          "origin = NULL WHERE card_id = ? AND state = 'pending' "
                          "AND expires_at >= ?", verifier, share, token, token, card_id,
                          now):
                return False
            self._append(tx, event, now)
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
            if gone:
                # A tombstone, so that nothing brings the id back (a realm registration
                # kept on a device and sent again would restore its old shares with its
                # counts at zero). Kept with the nonces: a value used once, never expiring.
                tx.run("INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
                       "ON CONFLICT (nonce) DO NOTHING", tombstone(card_id), NEVER)
            # A pending row is an enrollment the device gave up on (it never saw the
            # server finish it): audited as such, not as a card's deletion.
            event = "enrollment_cancelled" if gone and gone[0] == "pending" else "deleted"
            self._append(tx, AuditEvent(event, card_id), now)
            return True
        return self._db.write(go)

    def deleted(self, card_id: str) -> bool:
        return self._db.read(lambda tx: tx.one(
            "SELECT 1 FROM nonces WHERE nonce = ?", tombstone(card_id))) is not None

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
                            event: AuditEvent, token: bytes | None = None) -> bool:
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
                          "share_token = ?, share_next_token = NULL, committed_at = ?, "
                          "epoch_token = ?, share_version = ?, share_floor = ?, wallet = NULL "
                          "WHERE card_id = ? AND state = 'active' AND share_version = ?",
                          oprf_key, verifier, share, token, now, token, began + REENROLL_STEP,
                          began + REENROLL_STEP, card_id, began):
                return False
            # Proofs in flight were made under the old OPRF key: none may settle now.
            tx.run("DELETE FROM challenges WHERE card_id = ? AND challenge_id <> ?", card_id,
                   challenge_id)
            self._append(tx, event, now)
            return True
        return self._db.write(go)


NEVER = 1e18
"""A tombstone's expiry: past any sweep."""


def tombstone(card_id: str) -> bytes:
    """The nonces row that marks ``card_id`` deleted (a hash: nonces are 16 bytes, these 32)."""
    return hashlib.blake2b(b"splitvault/v1/deleted-card\x00" + card_id.encode("ascii"),
                           digest_size=32).digest()
