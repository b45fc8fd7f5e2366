"""``ShareServer``: holds one share of each card's key, evaluates the PIN OPRF, counts
guesses, and authorizes payments exactly once.

The order of checks in every method is the security argument; each comment says why.
Nothing is raised inside a write transaction that should leave state behind: where a
failure must be recorded (a wrong PIN spends a guess), the error is built inside the
transaction and raised after COMMIT.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .._authorization import Authorization
from .._errors import (
    CardLocked,
    ConfigurationError,
    InvalidChallenge,
    MalformedRequest,
    TamperedData,
    UnknownCard,
    VaultError,
    WrongPin,
)
from .._profiles import ServerProfile
from .._protocol import (
    AuthorizeRequest,
    ChallengeReply,
    ChangePinBegin,
    ChangePinFinish,
    DeleteRequest,
    EnrollBegin,
    EnrollBeginReply,
    EnrollFinish,
    EvaluateReply,
    EvaluateRequest,
    ServerInfo,
)
from ..crypto import oprf
from ..crypto.envelope import open_envelope
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.signing import verify
from . import _audit
from ._acquirer import Acquirer, SimulatedAcquirer
from ._checks import check_bytes, check_id
from ._db import Database
from ._kek import Kek
from ._keys import ServerKeys, load_or_create, rewrap_all
from ._ledger import Ledger
from ._payments import PaymentFlow

__all__ = ["CardState", "ShareServer"]



@dataclass(frozen=True)
class CardState:
    """What the server knows about a card's PIN state (for operators and the demo)."""

    guesses_used: int
    guess_limit: int
    locked: bool

    @property
    def attempts_left(self) -> int:
        return 0 if self.locked else max(self.guess_limit - self.guesses_used, 0)


@dataclass(frozen=True)
class _Card:
    device_key: bytes
    verifier: bytes
    oprf_key: bytes
    share: bytes
    guesses_used: int
    locked: bool


class ShareServer:
    """The server role. Open with :meth:`open`; safe to share between threads."""

    def __init__(self, db: Database, kek: Kek, *, acquirer: Acquirer | None = None,
                 profile: ServerProfile = ServerProfile.DEFAULT,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._kek = kek
        self.profile = profile
        self._clock = clock
        self.acquirer: Acquirer = acquirer if acquirer is not None else SimulatedAcquirer()
        with db.write() as conn:
            self._keys: ServerKeys = load_or_create(conn, kek)
        self._ledger = Ledger(self._keys.ledger)
        self._payments = PaymentFlow(self)

    @classmethod
    def open(cls, path: str | Path, *, acquirer: Acquirer | None = None,
             kek_file: str | Path | None = None,
             profile: ServerProfile = ServerProfile.DEFAULT,
             clock: Callable[[], float] = time.time) -> ShareServer:
        """Open (or create) the server database at ``path``.

        ``kek_file`` is the key-encryption key file (``splitvault keys generate``). Left
        out, the key lives beside the database as ``<path>.kek``, created with a new
        database: convenient for the demo and tests; a production server keeps it apart.
        """
        path = Path(path)
        if kek_file is None:
            kek_file = Path(f"{path}.kek")
            if not kek_file.exists():
                if path.exists() and path.stat().st_size > 0:
                    raise ConfigurationError(
                        f"server database {path} exists but its key file {kek_file} is missing"
                    )
                Kek.generate().write(kek_file)
        try:
            db = Database(path)
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"cannot open server database {path}: {exc}") from None
        try:
            kek = _load_kek_recovering(Path(kek_file), db)
            return cls(db, kek, acquirer=acquirer, profile=profile, clock=clock)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        self._keys.wipe()
        self._kek.wipe()
        self._db.close()

    def __enter__(self) -> ShareServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ShareServer {self._db.path} kek={self._kek.kid_hex}>"

    # -- ShareService --------------------------------------------------------------------

    def info(self) -> ServerInfo:
        return ServerInfo(self.profile.guess_limit, self.profile.challenge_ttl)

    def enroll_begin(self, request: EnrollBegin) -> EnrollBeginReply:
        card_id = check_id(request.card_id, "card id")
        device_key = check_bytes(request.device_key, "device key", 32)
        blinded = check_bytes(request.blinded, "blinded element", 32)
        _verify(device_key, request.signed_bytes(), request.signature)  # proof of possession
        now = self._clock()
        key = oprf.generate_key()
        try:
            evaluated = _evaluate(key, blinded)
            with self._db.write() as conn:
                conn.execute("DELETE FROM cards WHERE state = 'pending' AND expires_at < ?",
                             (now,))
                try:
                    conn.execute(
                        "INSERT INTO cards (card_id, state, device_key, oprf_key, created_at, "
                        "expires_at) VALUES (?, 'pending', ?, ?, ?, ?)",
                        (card_id, device_key, self._kek.wrap("oprf-key", card_id, key), now,
                         now + self.profile.enrollment_ttl),
                    )
                except sqlite3.IntegrityError:
                    raise MalformedRequest("card id already in use") from None
        finally:
            wipe(key)
        return EnrollBeginReply(evaluated, self._keys.x25519_public)

    def enroll_finish(self, request: EnrollFinish) -> None:
        card_id = check_id(request.card_id, "card id")
        verifier = check_bytes(request.verifier, "verifier", 32)
        envelope = check_bytes(request.envelope, "envelope")
        signed = request.signed_bytes()
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT device_key FROM cards WHERE card_id = ? AND state = 'pending' "
                "AND expires_at >= ?", (card_id, self._clock())).fetchone()
            if row is None:
                raise UnknownCard()
            _verify(row[0], signed, request.device_signature)
            _verify(verifier, signed, request.pin_signature)  # the device knows the PIN key
            share = self._open_envelope(envelope, EnrollFinish.envelope_aad(card_id))
            try:
                if len(share) != 32:
                    raise TamperedData()
                conn.execute(
                    "UPDATE cards SET state = 'active', verifier = ?, share = ?, "
                    "expires_at = NULL WHERE card_id = ?",
                    (verifier, self._kek.wrap("share", card_id, share), card_id),
                )
            finally:
                wipe(share)
            self._audit(conn, "enrolled", card_id)

    def challenge(self, card_id: str) -> ChallengeReply:
        # Issued for any well-formed id, known or not, so challenges reveal nothing.
        card_id = check_id(card_id, "card id")
        now = self._clock()
        reply = ChallengeReply(secrets.token_hex(16), secrets.token_bytes(32),
                               now + self.profile.challenge_ttl)
        with self._db.write() as conn:
            conn.execute("DELETE FROM challenges WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO challenges (challenge_id, card_id, nonce, state, expires_at) "
                "VALUES (?, ?, ?, 'issued', ?)",
                (reply.challenge_id, card_id, reply.nonce, reply.expires_at),
            )
        return reply

    def evaluate(self, request: EvaluateRequest) -> EvaluateReply:
        card_id = check_id(request.card_id, "card id")
        blinded = check_bytes(request.blinded, "blinded element", 32)
        error: VaultError | None = None
        with self._db.write() as conn:
            # The device key check comes before anything is spent: a stranger who does not
            # hold the device key cannot use up the card's guesses (no malicious lockout).
            card = self._device_signed(conn, card_id, request.challenge_id,
                                       request.signed_bytes, request.signature)
            if card.locked:
                raise CardLocked()
            limit = self.profile.guess_limit
            if card.guesses_used >= limit:
                # Every guess is spent. If some are still waiting for their proof (a
                # device paying several times at once), they may yet succeed and reset
                # the count: refuse this one without locking. Otherwise they failed or
                # were abandoned: lock.
                if self._proofs_pending(conn, card_id):
                    raise InvalidChallenge(
                        "too many PIN checks in progress for this card; try again shortly")
                error = self._lock(conn, card_id)
            else:
                # Evaluate first (a malformed element rolls back and spends nothing), but
                # return only after COMMIT: the guess is durable before the PIN can be tried.
                key = self._kek.unwrap("oprf-key", card_id, card.oprf_key)
                try:
                    evaluated = _evaluate(key, blinded)
                finally:
                    wipe(key)
                used = card.guesses_used + 1
                conn.execute("UPDATE cards SET guesses_used = ? WHERE card_id = ?",
                             (used, card_id))
                self._set_challenge(conn, request.challenge_id, "evaluated")
                self._audit(conn, "guess_used", card_id, guesses_used=used, limit=limit)
        if error is not None:
            raise error
        return EvaluateReply(evaluated, limit - used)

    def authorize(self, request: AuthorizeRequest) -> Authorization:
        return self._payments.authorize(request)

    def change_pin_begin(self, request: ChangePinBegin) -> EvaluateReply:
        card_id = check_id(request.card_id, "card id")
        blinded = check_bytes(request.new_blinded, "blinded element", 32)
        with self._db.write() as conn:
            _, error = self.prove_pin(conn, card_id, request.challenge_id,
                                      request.signed_bytes, request.pin_signature)
            if error is None:
                key = oprf.generate_key()
                try:
                    evaluated = _evaluate(key, blinded)
                    wrapped = self._kek.wrap("oprf-key", request.challenge_id, key)
                finally:
                    wipe(key)
                conn.execute(
                    "UPDATE challenges SET state = 'pin_change', new_oprf_key = ? "
                    "WHERE challenge_id = ?", (wrapped, request.challenge_id))
        if error is not None:
            raise error
        return EvaluateReply(evaluated, self.profile.guess_limit)

    def change_pin_finish(self, request: ChangePinFinish) -> None:
        card_id = check_id(request.card_id, "card id")
        verifier = check_bytes(request.new_verifier, "verifier", 32)
        with self._db.write() as conn:
            nonce = self._challenge(conn, request.challenge_id, card_id, "pin_change")
            card = self._active_card(conn, card_id)
            signed = request.signed_bytes(nonce)
            try:
                verify(card.verifier, signed, request.old_pin_signature)
                verify(verifier, signed, request.new_pin_signature)
            except AuthenticationFailed:
                raise TamperedData() from None
            row = conn.execute("SELECT new_oprf_key FROM challenges WHERE challenge_id = ?",
                               (request.challenge_id,)).fetchone()
            key = self._kek.unwrap("oprf-key", request.challenge_id, row[0])
            try:
                conn.execute(
                    "UPDATE cards SET oprf_key = ?, verifier = ?, guesses_used = 0 "
                    "WHERE card_id = ?",
                    (self._kek.wrap("oprf-key", card_id, key), verifier, card_id))
            finally:
                wipe(key)
            conn.execute("UPDATE challenges SET state = 'used', new_oprf_key = NULL "
                         "WHERE challenge_id = ?", (request.challenge_id,))
            self._audit(conn, "pin_changed", card_id)

    def delete(self, request: DeleteRequest) -> None:
        card_id = check_id(request.card_id, "card id")
        with self._db.write() as conn:
            self._device_signed(conn, card_id, request.challenge_id, request.signed_bytes,
                                request.signature)
            conn.execute("DELETE FROM cards WHERE card_id = ?", (card_id,))
            conn.execute("DELETE FROM challenges WHERE card_id = ?", (card_id,))
            self._audit(conn, "deleted", card_id)
        # secure_delete zeroed the freed pages; the checkpoint moves them out of the WAL.
        self._db.checkpoint()

    # -- operations ----------------------------------------------------------------------

    def card_state(self, card_id: str) -> CardState:
        """Guesses used and lock state of an enrolled card (``UnknownCard`` otherwise)."""
        card = self._active_card(self._db.connection(), check_id(card_id, "card id"))
        return CardState(card.guesses_used, self.profile.guess_limit, card.locked)

    def ready(self) -> bool:
        """True if the database answers (for health checks)."""
        try:
            self._db.connection().execute("SELECT 1 FROM meta LIMIT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def verify_audit(self) -> _audit.AuditReport:
        """Verify the audit chain; ``TamperedData`` names the first entry that fails."""
        return _audit.verify(self._db.connection(), self._keys.audit)

    def rotate_kek(self, new_kek: Kek) -> int:
        """Re-wrap every stored secret under ``new_kek`` in one transaction; returns how many.

        The caller (``splitvault keys rotate``) then replaces the key file and the old
        key is retired: nothing stored can be opened with it any more.
        """
        with self._db.write() as conn:
            count = rewrap_all(conn, self._kek, new_kek)
            self._audit(conn, "key_rotated", "", old=self._kek.kid_hex, new=new_kek.kid_hex)
        self._kek.wipe()
        self._kek = new_kek
        return count

    # -- internals shared with the payment flow ------------------------------------------

    def now(self) -> float:
        return self._clock()

    def _active_card(self, conn: sqlite3.Connection, card_id: str) -> _Card:
        row = conn.execute(
            "SELECT device_key, verifier, oprf_key, share, guesses_used, locked FROM cards "
            "WHERE card_id = ? AND state = 'active'", (card_id,)).fetchone()
        if row is None:
            raise UnknownCard()
        return _Card(row[0], row[1], row[2], row[3], row[4], bool(row[5]))

    def _device_signed(self, conn: sqlite3.Connection, card_id: str, challenge_id: str,
                       signed_bytes: Callable[[bytes], bytes], signature: bytes) -> _Card:
        """The card, if the request carries a live fresh challenge for it and the card's
        device key signed it; ``UnknownCard`` (exactly as for a card that does not exist)
        if not. The challenge is checked first: they are issued for any id, so that
        check says nothing about whether the card exists."""
        nonce = self._challenge(conn, challenge_id, card_id, "issued")
        card = self._active_card(conn, card_id)
        try:
            verify(card.device_key, signed_bytes(nonce), signature)
        except AuthenticationFailed:
            raise UnknownCard() from None
        return card

    def _challenge(self, conn: sqlite3.Connection, challenge_id: object, card_id: str,
                   state: str) -> bytes:
        """The nonce of a live challenge for this card in this state, or InvalidChallenge."""
        challenge_id = check_id(challenge_id, "challenge id")
        row = conn.execute(
            "SELECT card_id, nonce, state, expires_at FROM challenges WHERE challenge_id = ?",
            (challenge_id,)).fetchone()
        if (row is None or row[0] != card_id or row[2] != state
                or row[3] < self._clock()):
            raise InvalidChallenge()
        return bytes(row[1])

    @staticmethod
    def _set_challenge(conn: sqlite3.Connection, challenge_id: str, state: str) -> None:
        conn.execute("UPDATE challenges SET state = ? WHERE challenge_id = ?",
                     (state, challenge_id))

    def prove_pin(self, conn: sqlite3.Connection, card_id: str, challenge_id: str,
                  signed_bytes: Callable[[bytes], bytes],
                  signature: bytes) -> tuple[_Card, VaultError | None]:
        """Inside a write transaction: consume an evaluated challenge and check the PIN
        signature. Returns the card and, if the PIN was wrong, the error to raise after
        COMMIT (the guess was already spent by evaluate())."""
        nonce = self._challenge(conn, challenge_id, card_id, "evaluated")
        card = self._active_card(conn, card_id)
        # Used whatever happens next: one evaluation, one proof.
        self._set_challenge(conn, challenge_id, "used")
        if card.locked:
            return card, CardLocked()
        try:
            verify(card.verifier, signed_bytes(nonce), signature)
        except AuthenticationFailed:
            left = self.profile.guess_limit - card.guesses_used
            if left <= 0:
                return card, self._lock(conn, card_id)
            self._audit(conn, "wrong_pin", card_id, attempts_left=left)
            return card, WrongPin(left)
        conn.execute("UPDATE cards SET guesses_used = 0 WHERE card_id = ?", (card_id,))
        return card, None

    def _proofs_pending(self, conn: sqlite3.Connection, card_id: str) -> bool:
        return conn.execute(
            "SELECT 1 FROM challenges WHERE card_id = ? AND state = 'evaluated' "
            "AND expires_at >= ? LIMIT 1", (card_id, self._clock())).fetchone() is not None

    def _lock(self, conn: sqlite3.Connection, card_id: str) -> CardLocked:
        conn.execute("UPDATE cards SET locked = 1 WHERE card_id = ?", (card_id,))
        self._audit(conn, "locked", card_id)
        return CardLocked()

    def _audit(self, conn: sqlite3.Connection, event: str, card_id: str,
               **detail: int | str | bool) -> None:
        _audit.append(conn, self._keys.audit, event, card_id, self._clock(), **detail)

    def _open_envelope(self, envelope: bytes, aad: bytes) -> bytearray:
        try:
            return open_envelope(self._keys.x25519_secret, envelope, aad,
                                 public=self._keys.x25519_public)
        except AuthenticationFailed:
            raise TamperedData() from None


def _verify(public: bytes, message: bytes, signature: object) -> None:
    if not isinstance(signature, bytes):
        raise MalformedRequest("malformed signature")
    try:
        verify(public, message, signature)
    except AuthenticationFailed:
        raise TamperedData() from None


def _evaluate(key: bytes | bytearray, blinded: bytes) -> bytes:
    try:
        return oprf.blind_evaluate(key, blinded)
    except oprf.OprfError:
        raise MalformedRequest("malformed blinded element") from None



def _load_kek_recovering(kek_file: Path, db: Database) -> Kek:
    """Load the KEK, finishing or undoing a rotation that was cut short.

    ``keys rotate`` writes the new key to ``<file>.new``, re-wraps everything in one
    transaction, then renames the new file over the old. If the process died between
    those steps, the database's own key id says which file is right: the rotation either
    committed (finish the rename) or did not (drop the unused new key).
    """
    pending = Path(f"{kek_file}.new")
    if pending.exists():
        row = db.connection().execute("SELECT wrapped FROM server_keys LIMIT 1").fetchone()
        candidate = Kek.load(pending)
        if row is not None and secrets.compare_digest(bytes(row[0][:8]), candidate.kid):
            os.replace(pending, kek_file)
            return candidate
        candidate.wipe()
        pending.unlink()
    return Kek.load(kek_file)
