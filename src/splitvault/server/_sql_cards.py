"""Cards, guesses and proofs in SQL: an evaluation spends from the card's budget
(after the presented share version is judged: the re-split), a proof settles it,
and a wallet's cards share one guess limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._sql_ledger import LedgerSql
from ._sql_risk import RiskSql
from ._store import (
    UNPROVEN_LIMIT,
    UNPROVEN_WINDOW,
    AuditEvent,
    CardRecord,
    ChallengeRecord,
    LedgerStart,
    ProofOutcome,
    RiskCheck,
    Spend,
)

if TYPE_CHECKING:
    from ._sql import Tx

__all__ = ["CardsSql"]


class CardsSql(LedgerSql, RiskSql):
    """The cards' part of :class:`~._sql.SqlStore`."""

    if TYPE_CHECKING:
        # In _sql.py, where ``judge`` is looked up (see there).
        def _judge_shares(self, tx: Tx, card_id: str, presented: int,
                          presented_key: bytes, now: float, proven: bool,
                          epoch_proven: bool, sent_at: float | None,
                          proof_floor: int | None) -> Spend: ...

    # -- cards, guesses and proofs ---------------------------------------------------

    def card(self, card_id: str) -> CardRecord | None:
        row = self._db.read(lambda tx: tx.one(
            "SELECT device_key, verifier, oprf_key, share, guesses_used, locked, "
            "share_version, share_floor, share_next, refresh_key, refreshed_at, cloned, "
            "wallet, share_token, share_next_token, committed_at, epoch_token, unproven "
            "FROM cards WHERE card_id = ? AND state = 'active'", card_id))
        if row is None:
            return None
        return CardRecord(card_id, bytes(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]),
                          int(row[4]), bool(row[5]), int(row[6]), int(row[7]),
                          _blob(row[8]), _blob(row[9]),
                          None if row[10] is None else float(row[10]), bool(row[11]),
                          share_token=_blob(row[13]), share_next_token=_blob(row[14]),
                          committed_at=None if row[15] is None else float(row[15]),
                          wallet=_blob(row[12]), epoch_token=_blob(row[16]),
                          unproven=int(row[17] or 0))

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

    def wallet_guesses(self, wallet: bytes) -> int:
        row = self._db.read(lambda tx: tx.one(
            "SELECT guesses FROM wallets WHERE wallet = ?", wallet))
        return 0 if row is None else int(row[0])

    def spend_guess(self, card_id: str, nonce: bytes, nonce_expires: float,
                    challenge: ChallengeRecord, limit: int, now: float, *,
                    unproven_limit: int = UNPROVEN_LIMIT,
                    unproven_window: float = UNPROVEN_WINDOW,
                    share_version: int = 0, refresh_key: bytes = b"",
                    wallet: bytes | None = None, proven: bool = True,
                    epoch_proven: bool = True, sent_at: float | None = None,
                    proof_floor: int | None = None) -> Spend:
        def go(tx: Tx) -> Spend:
            if not tx.all("INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
                          "ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
                          nonce, nonce_expires):
                return Spend("replayed")
            shares = self._judge_shares(tx, card_id, share_version, refresh_key, now,
                                        proven, epoch_proven, sent_at, proof_floor)
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
                return Spend("spent", max(used, spent), version, shares.resend)
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
            if self._insert_pending(tx, ledger, now):
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

    def advance_share(self, card_id: str, version: int, to_version: int, share: bytes,
                      token: bytes, now: float, event: AuditEvent) -> bool:
        def go(tx: Tx) -> bool:
            if not tx.run("UPDATE cards SET share = ?, share_token = ?, share_version = ?, "
                          "committed_at = ? WHERE card_id = ? AND state = 'active' "
                          "AND share_version = ? AND cloned = 0", share, token, to_version,
                          now, card_id, version):
                return False
            self._append(tx, event, now)
            return True
        return self._db.write(go)

    def reregister(self, card_id: str, version: int, oprf_key: bytes, share: bytes,
                   verifier: bytes, token: bytes, now: float, event: AuditEvent) -> bool:
        def go(tx: Tx) -> bool:
            if not tx.run("UPDATE cards SET oprf_key = ?, share = ?, verifier = ?, "
                          "share_token = ?, share_version = ?, share_floor = ?, "
                          "share_next = NULL, share_next_token = NULL, refresh_key = NULL, "
                          "guesses_used = 0, unproven = 0, locked = 0, cloned = 0, "
                          "committed_at = ? WHERE card_id = ? AND state = 'active' "
                          "AND share_floor < ?", oprf_key, share, verifier, token, version,
                          version, now, card_id, version):
                return False
            self._append(tx, event, now)
            return True
        return self._db.write(go)

    def mark_cloned(self, card_id: str, version: int, now: float, event: AuditEvent) -> bool:
        def go(tx: Tx) -> bool:
            if not tx.run("UPDATE cards SET cloned = 1 WHERE card_id = ? AND state = 'active' "
                          "AND share_version = ? AND cloned = 0", card_id, version):
                return False
            self._append(tx, event, now)
            return True
        return self._db.write(go)

    def use_nonce(self, nonce: bytes, nonce_expires: float) -> bool:
        """Take a device nonce for a request that changes nothing else (a status
        query); False if it was used before."""
        return bool(self._db.write(lambda tx: tx.all(
            "INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
            "ON CONFLICT (nonce) DO NOTHING RETURNING nonce", nonce, nonce_expires)))


def _blob(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]
