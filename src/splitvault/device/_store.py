"""The device's SQLite store: per card, its share, the sealed card record and its keys.

Nothing here is the card: the record is sealed under a data key that exists only as
this share XOR the server's. A full copy of this file lets a thief do nothing
offline: every PIN guess needs a fresh OPRF evaluation from the server, which counts it.

The files are still the device's: a local user who could read them would *be* the
thief with the device (burning the card's guesses with its own key), and one who could
write its folder could delete the card. So the store is created 0600 (WAL and SHM too)
in a folder created 0700, and an existing store open to group or others is refused
with the ``chmod`` to run (see :mod:`splitvault._files` for which bits and why).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from .._errors import ConfigurationError, UnknownCard
from .._files import check_sqlite, prepare_sqlite
from ._history import HISTORY_SCHEMA, PaymentRecord

__all__ = ["DeviceCard", "DeviceStore", "RealmPart"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    card_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    expiry TEXT NOT NULL,
    sealed_record BLOB NOT NULL,
    device_share BLOB NOT NULL,
    sign_seed BLOB NOT NULL,
    device_secret BLOB NOT NULL,
    salt BLOB NOT NULL,
    kdf_t INTEGER NOT NULL,
    kdf_m INTEGER NOT NULL,
    kdf_p INTEGER NOT NULL,
    server_key BLOB NOT NULL,
    security_phrase TEXT,
    created_at REAL NOT NULL,
    share_version INTEGER NOT NULL DEFAULT 0,
    next_share BLOB,
    refresh_secret BLOB,
    refreshed_at REAL,
    share_token BLOB,
    next_token BLOB,
    epoch_token BLOB,
    refresh_until REAL
) STRICT;
CREATE TABLE IF NOT EXISTS realm_parts (
    card_id TEXT NOT NULL,
    realm_key BLOB NOT NULL,
    idx INTEGER NOT NULL CHECK (idx BETWEEN 1 AND 255),
    public_share BLOB NOT NULL,
    commitment BLOB NOT NULL,
    registration BLOB,
    version INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (card_id, realm_key)
) STRICT;
CREATE TABLE IF NOT EXISTS realm_deltas (
    card_id TEXT NOT NULL,
    realm_key BLOB NOT NULL,
    version INTEGER NOT NULL,
    gateway_key BLOB NOT NULL,
    delta BLOB NOT NULL,
    PRIMARY KEY (card_id, realm_key, version)
) STRICT;
CREATE TABLE IF NOT EXISTS wallet (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seed BLOB NOT NULL,
    created_at REAL NOT NULL
) STRICT;
"""

# ``realm_parts``: for a card of a t-of-n deployment (``device/_realm_flow.py``), one row
# per realm: its Shamir index for this card, its public OPRF key share (the device
# checks the realm's DLEQ proofs against it), the device's commitment to the realm's
# share (the gateway checks the released share against it) and, until the realm has
# confirmed it, the registration to send it (sealed to the realm: nothing here opens
# it), and the version the realm was last seen at. ``realm_deltas``: the re-split steps
# (``_realm_refresh``) the device still has to carry to each realm, sealed by the
# gateway to that realm. Nothing here opens anything; the card's ``device_share`` is
# the device's part D (two scalars) at ``share_version``, ``share_token`` its token.

# ``wallet``: the seed of the device's one wallet key (Ed25519), made at the first
# enrollment that needs it. Every card enrolled since names its public key, so the
# server gives them one PIN-guess budget between them (``Device.enroll``). Cards are
# still unlinkable to anyone without the server's data: the server keeps only a keyed
# MAC of the key, wrapped per card. A store from before it gets the table on open; its
# older cards keep their own limit only.

# The re-split after every payment (``Device.authorize``): ``device_share`` is version
# ``share_version``; ``next_share`` is version + 1, taken from the server's R and kept
# beside the old one until the server confirms it holds its half of the same version
# (then it replaces it); ``refresh_secret`` is the X25519 key R is sealed to, kept
# from before the request that may bring R until the re-split is done. Added to a
# store made before them by _upgrade().
_SHARE_COLUMNS = (("share_version", "INTEGER NOT NULL DEFAULT 0"), ("next_share", "BLOB"),
                  ("refresh_secret", "BLOB"), ("refreshed_at", "REAL"),
                  ("share_token", "BLOB"), ("next_token", "BLOB"), ("epoch_token", "BLOB"),
                  ("refresh_until", "REAL"))


@dataclass(frozen=True)
class DeviceCard:
    card_id: str
    brand: str
    last4: str
    expiry: str
    sealed_record: bytes = field(repr=False)
    device_share: bytes = field(repr=False)
    sign_seed: bytes = field(repr=False)
    device_secret: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    kdf: tuple[int, int, int]
    server_key: bytes
    security_phrase: str | None = field(repr=False)
    share_version: int = 0
    next_share: bytes | None = field(default=None, repr=False)
    refresh_secret: bytes | None = field(default=None, repr=False)
    refreshed_at: float | None = None
    share_token: bytes | None = field(default=None, repr=False)  # _resplit.possession_mac
    next_token: bytes | None = field(default=None, repr=False)
    epoch_token: bytes | None = field(default=None, repr=False)
    refresh_until: float | None = None  # keep refresh_secret until then (begin_refresh)


@dataclass(frozen=True)
class RealmPart:
    """What the device keeps of one realm of a realm card (all public)."""

    realm_key: bytes
    index: int
    public_share: bytes
    commitment: bytes
    registration: bytes | None = field(default=None, repr=False)  # unconfirmed: to send
    version: int = 0  # the share version this realm was last seen at


_WHAT = "device store"
_COLUMNS = ("card_id, brand, last4, expiry, sealed_record, device_share, sign_seed, "
            "device_secret, salt, kdf_t, kdf_m, kdf_p, server_key, security_phrase, "
            "share_version, next_share, refresh_secret, refreshed_at, share_token, "
            "next_token, epoch_token, refresh_until")

_PROMOTE = (
    "UPDATE cards SET device_share = next_share, next_share = NULL, "  # noqa: S608 (fixed list)
    "share_token = next_token, next_token = NULL, "
    "share_version = ?, refresh_secret = coalesce(?, refresh_secret), "
    "refresh_until = coalesce(?, refresh_until) "
    "WHERE card_id = ? AND share_version = ? AND next_share IS NOT NULL "
    f"RETURNING {_COLUMNS}")  # nosec B608


class DeviceStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        prepare_sqlite(self.path, _WHAT)  # before SQLite creates anything with the umask
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False)
            for pragma in ("journal_mode = WAL", "synchronous = FULL", "secure_delete = ON",
                           "busy_timeout = 30000"):
                self._conn.execute(f"PRAGMA {pragma}")
            self._conn.executescript(_SCHEMA + HISTORY_SCHEMA)
            self._upgrade()
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"cannot open device store {path}: {exc}") from None
        try:
            check_sqlite(self.path, _WHAT)  # the WAL and SHM SQLite has just made
        except ConfigurationError:
            self._conn.close()
            raise

    def _upgrade(self) -> None:
        """Add the re-split's columns to a store made before them (0.2 and earlier)."""
        have = {row[1] for row in self._conn.execute("PRAGMA table_info(cards)")}
        for name, kind in _SHARE_COLUMNS:
            if name not in have:
                self._conn.execute(f"ALTER TABLE cards ADD COLUMN {name} {kind}")

    def _write(self) -> _Write:
        """``with store._write() as conn``: one ``BEGIN IMMEDIATE`` ... ``COMMIT`` under
        the store's lock, rolled back on any exception."""
        return _Write(self._lock, self._conn)

    def add_pending(self, card: DeviceCard, now: float) -> None:
        with self._write() as conn:
            _insert_pending(conn, card, now)

    def add_realm_card(self, card: DeviceCard, parts: list[RealmPart], now: float) -> None:
        """A realm card, pending, with its realms' rows, in one transaction."""
        with self._write() as conn:
            _insert_pending(conn, card, now)
            _insert_parts(conn, card.card_id, parts)

    def replace_realm_card(self, card: DeviceCard, parts: list[RealmPart]) -> None:
        """A re-enrolled realm card over the old one (same id and device key): its new
        part, keys and token at its new version, new realm rows with their
        registrations, no re-split steps left; then the old part is scrubbed."""
        with self._write() as conn:
            if conn.execute(
                    "UPDATE cards SET brand = ?, last4 = ?, expiry = ?, sealed_record = ?, "
                    "device_share = ?, device_secret = ?, salt = ?, kdf_t = ?, kdf_m = ?, "
                    "kdf_p = ?, share_version = ?, next_share = NULL, refresh_secret = NULL, "
                    "refreshed_at = NULL, share_token = ?, next_token = NULL, "
                    "epoch_token = NULL WHERE card_id = ? AND state = 'active'",
                    (card.brand, card.last4, card.expiry, card.sealed_record,
                     card.device_share, card.device_secret, card.salt, *card.kdf,
                     card.share_version, card.share_token, card.card_id)).rowcount != 1:
                raise UnknownCard()
            conn.execute("DELETE FROM realm_parts WHERE card_id = ?", (card.card_id,))
            conn.execute("DELETE FROM realm_deltas WHERE card_id = ?", (card.card_id,))
            _insert_parts(conn, card.card_id, parts)
        self._checkpoint()

    def realm_parts(self, card_id: str) -> list[RealmPart]:
        """The card's realms, by index (none for a card of a single server)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT realm_key, idx, public_share, commitment, registration, version "
                "FROM realm_parts WHERE card_id = ? ORDER BY idx", (card_id,)).fetchall()
        return [RealmPart(bytes(r[0]), int(r[1]), bytes(r[2]), bytes(r[3]),
                          None if r[4] is None else bytes(r[4]), int(r[5])) for r in rows]

    def realm_resplit(self, card_id: str, version: int, part: bytes, token: bytes,
                      deltas: list[tuple[bytes, bytes, bytes]],
                      commitments: dict[bytes, bytes], now: float) -> bool:
        """Take a re-split: the new part and token at ``version + 1``, each realm's delta
        (``realm_key, gateway_key, sealed``) to carry there and its new commitment, in
        one transaction (compare-and-set on ``version``); then scrub the old part."""
        with self._write() as conn:
            if conn.execute("UPDATE cards SET device_share = ?, share_token = ?, "
                            "share_version = ?, refreshed_at = ? WHERE card_id = ? "
                            "AND share_version = ?", (part, token, version + 1, now, card_id,
                                                      version)).rowcount != 1:
                return False
            conn.executemany(
                "INSERT OR REPLACE INTO realm_deltas (card_id, realm_key, version, "
                "gateway_key, delta) VALUES (?, ?, ?, ?, ?)",
                [(card_id, key, version + 1, gateway, sealed)
                 for key, gateway, sealed in deltas])
            conn.executemany("UPDATE realm_parts SET commitment = ? WHERE card_id = ? "
                             "AND realm_key = ?",
                             [(c, card_id, key) for key, c in commitments.items()])
        self._checkpoint()
        return True

    def realm_deltas(self, card_id: str, realm_key: bytes) -> list[tuple[int, bytes, bytes]]:
        """The steps still to carry to one realm: ``(version, gateway_key, sealed)``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT d.version, d.gateway_key, d.delta FROM realm_deltas d "
                "JOIN realm_parts p USING (card_id, realm_key) WHERE d.card_id = ? "
                "AND d.realm_key = ? AND d.version > p.version ORDER BY d.version",
                (card_id, realm_key)).fetchall()
        return [(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def realm_seen(self, card_id: str, realm_key: bytes, version: int) -> None:
        """The realm answered at ``version``: the steps up to it are done."""
        with self._write() as conn:
            conn.execute("UPDATE realm_parts SET version = max(version, ?) WHERE card_id = ? "
                         "AND realm_key = ?", (version, card_id, realm_key))
            conn.execute("DELETE FROM realm_deltas WHERE card_id = ? AND realm_key = ? "
                         "AND version <= ?", (card_id, realm_key, version))

    def realm_registered(self, card_id: str, realm_key: bytes) -> None:
        """The realm confirmed the card: its registration need not be sent again."""
        with self._write() as conn:
            conn.execute("UPDATE realm_parts SET registration = NULL WHERE card_id = ? "
                         "AND realm_key = ?", (card_id, realm_key))

    def unregistered(self) -> list[tuple[str, RealmPart]]:
        """Every active card's realms that have not confirmed it yet (catch-up)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT p.card_id, p.realm_key, p.idx, p.public_share, p.commitment, "
                "p.registration FROM realm_parts p JOIN cards c USING (card_id) "
                "WHERE c.state = 'active' AND p.registration IS NOT NULL "
                "ORDER BY p.card_id, p.idx").fetchall()
        return [(r[0], RealmPart(bytes(r[1]), int(r[2]), bytes(r[3]), bytes(r[4]),
                                 bytes(r[5]))) for r in rows]

    def wallet_seed(self, now: float) -> bytearray:
        """The device's wallet key seed, made (once, atomically) if there is none."""
        with self._write() as conn:
            conn.execute("INSERT INTO wallet (id, seed, created_at) VALUES (1, ?, ?) "
                         "ON CONFLICT (id) DO NOTHING", (secrets.token_bytes(32), now))
            row = conn.execute("SELECT seed FROM wallet WHERE id = 1").fetchone()
        return bytearray(row[0])

    def forget_wallet(self) -> None:
        """Drop the wallet key: the next enrollment starts a new wallet, and the cards
        enrolled so far stay in theirs (the server bound each at its enrollment)."""
        with self._write() as conn:
            conn.execute("DELETE FROM wallet")

    def activate(self, card_id: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE cards SET state = 'active' WHERE card_id = ?", (card_id,))

    def replace(self, card: DeviceCard) -> None:
        """Store a re-enrolled card over the old one (same id, same device key), at
        its new share version, with no re-split left over."""
        with self._write() as conn:
            conn.execute(
                "UPDATE cards SET brand = ?, last4 = ?, expiry = ?, sealed_record = ?, "
                "device_share = ?, device_secret = ?, salt = ?, kdf_t = ?, kdf_m = ?, "
                "kdf_p = ?, share_version = ?, next_share = NULL, refresh_secret = ?, "
                "refreshed_at = NULL, share_token = ?, next_token = NULL, epoch_token = ? "
                "WHERE card_id = ? AND state = 'active'",
                (card.brand, card.last4, card.expiry, card.sealed_record, card.device_share,
                 card.device_secret, card.salt, *card.kdf, card.share_version,
                 card.refresh_secret, card.share_token, card.epoch_token, card.card_id))
        self._checkpoint()

    def _checkpoint(self) -> None:
        # secure_delete zeroed the old share's pages; move them out of the WAL as well.
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- the re-split (Device.authorize) ----------------------------------------------

    def begin_refresh(self, card_id: str, secret: bytes, until: float) -> None:
        """Keep ``secret``, the key this payment's re-split will be sealed to, before
        the request that may bring it (a crash after the server sealed R to it must
        not lose what opens it), and keep it ``until`` the last request sent with it
        can no longer be settled (its challenge expired): an authorization whose
        outcome is unknown (held back on the network, or slow) may still be approved,
        and its R is sealed to this key. Drawn fresh for a payment once that time has
        passed (and dropped when R is staged), so a copy of the device taken before the
        payment, and more than a challenge's life after the one before, never has it."""
        with self._write() as conn:
            if conn.execute("UPDATE cards SET refresh_secret = ?, refresh_until = ? "
                            "WHERE card_id = ?", (secret, until, card_id)).rowcount != 1:
                raise UnknownCard()

    def stage_share(self, card_id: str, version: int, next_share: bytes, next_token: bytes,
                    now: float) -> bool:
        """Keep ``next_share`` (and its token) as version ``version + 1`` beside version
        ``version`` (compare-and-set: only if the card is at ``version`` with none
        staged), and drop the key R came sealed to."""
        with self._write() as conn:
            return conn.execute(
                "UPDATE cards SET next_share = ?, next_token = ?, refreshed_at = ?, "
                "refresh_secret = NULL, refresh_until = NULL "
                "WHERE card_id = ? AND share_version = ? AND next_share IS NULL",
                (next_share, next_token, now, card_id, version)).rowcount == 1

    def promote_share(self, card_id: str, version: int,
                      refresh_secret: bytes | None = None,
                      refresh_until: float | None = None) -> DeviceCard | None:
        """The server holds version ``version`` now: the staged share replaces the old
        one, whose bytes are then scrubbed from the file; ``refresh_secret``, if given,
        becomes the refresh key in the same write (:meth:`begin_refresh`). Returns the
        card as promoted (read back by the update itself, which spares the payment a
        read of its own), or None if it was not at ``version - 1`` with one staged."""
        with self._write() as conn:
            row = conn.execute(_PROMOTE, (version, refresh_secret, refresh_until, card_id,
                                          version - 1)).fetchone()
        if row is None:
            return None
        self._checkpoint()
        return _card(row)

    def drop_staged(self, card_id: str, version: int) -> bool:
        """The server never made version ``version + 1`` (it lost its half: a restore):
        forget the staged share and go on with version ``version``."""
        with self._write() as conn:
            return conn.execute(
                "UPDATE cards SET next_share = NULL, next_token = NULL WHERE card_id = ? "
                "AND share_version = ? AND next_share IS NOT NULL",
                (card_id, version)).rowcount == 1

    def remove(self, card_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM cards WHERE card_id = ?", (card_id,))
            conn.execute("DELETE FROM payments WHERE card_id = ?", (card_id,))
            conn.execute("DELETE FROM realm_parts WHERE card_id = ?", (card_id,))
            conn.execute("DELETE FROM realm_deltas WHERE card_id = ?", (card_id,))
        # secure_delete zeroed the row's pages; move them out of the WAL as well.
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def get(self, card_id: object) -> DeviceCard:
        if not isinstance(card_id, str):
            raise UnknownCard()
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM cards WHERE card_id = ? AND state = 'active'",  # noqa: S608 (fixed column list)  # nosec B608
                (card_id,),
            ).fetchone()
        if row is None:
            raise UnknownCard()
        return _card(row)

    def pending(self) -> list[DeviceCard]:
        """Enrollments begun and never seen finished by the server (a lost reply or a
        crash): each must be cancelled with the server before it is forgotten here."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM cards WHERE state = 'pending' "  # noqa: S608 (fixed column list)  # nosec B608
                "ORDER BY created_at, card_id").fetchall()
        return [_card(row) for row in rows]

    def active(self) -> list[tuple[str, str, str, str, int, float | None]]:
        """Each card's id, brand, last 4 digits, expiry, and the version of its share
        (the staged one counts once taken) with when it was last re-split."""
        with self._lock:
            return self._conn.execute(
                "SELECT card_id, brand, last4, expiry, "
                "share_version + (next_share IS NOT NULL), refreshed_at FROM cards "
                "WHERE state = 'active' ORDER BY created_at, card_id"
            ).fetchall()

    def record_payment(self, record: PaymentRecord) -> None:
        """Keep this answer; a retry of the same payment replaces the older one."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO payments (card_id, idempotency_key, at, amount, "
                "currency, merchant, outcome, detail, attempts_left) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.card_id, record.idempotency_key, record.at, record.amount,
                 record.currency, record.merchant, record.outcome, record.detail,
                 record.attempts_left))

    def payments(self, card_id: str) -> list[PaymentRecord]:
        """The card's recorded payments, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT card_id, idempotency_key, at, amount, currency, merchant, outcome, "
                "detail, attempts_left FROM payments WHERE card_id = ? ORDER BY at, rowid",
                (card_id,)).fetchall()
        return [PaymentRecord(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Write:
    """The store's write transaction. A class rather than ``@contextmanager``: a
    payment makes three or four, and the generator machinery was a measurable part of
    the device's own time (``benchmarks/README.md``)."""

    __slots__ = ("_conn", "_lock")

    def __init__(self, lock: threading.RLock, conn: sqlite3.Connection) -> None:
        self._lock = lock
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if kind is not None:
                if self._conn.in_transaction:  # SQLite may have rolled back already
                    self._conn.execute("ROLLBACK")
                return
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (disk full, I/O error) may leave the transaction
                # open, and the next BEGIN IMMEDIATE would fail: roll it back, if it is.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        finally:
            self._lock.release()


def _insert_parts(conn: sqlite3.Connection, card_id: str, parts: list[RealmPart]) -> None:
    conn.executemany(
        "INSERT INTO realm_parts (card_id, realm_key, idx, public_share, commitment, "
        "registration, version) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(card_id, p.realm_key, p.index, p.public_share, p.commitment, p.registration,
          p.version) for p in parts])


def _insert_pending(conn: sqlite3.Connection, card: DeviceCard, now: float) -> None:
    conn.execute(
        f"INSERT INTO cards ({_COLUMNS}, state, created_at) "  # noqa: S608 (fixed column list)  # nosec B608
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "'pending', ?)",
        (card.card_id, card.brand, card.last4, card.expiry, card.sealed_record,
         card.device_share, card.sign_seed, card.device_secret, card.salt, *card.kdf,
         card.server_key, card.security_phrase, card.share_version, card.next_share,
         card.refresh_secret, card.refreshed_at, card.share_token, card.next_token,
         card.epoch_token, card.refresh_until, now),
    )


def _card(row: Any) -> DeviceCard:
    # The columns of _COLUMNS, in that order.
    return DeviceCard(
        card_id=row[0], brand=row[1], last4=row[2], expiry=row[3], sealed_record=row[4],
        device_share=row[5], sign_seed=row[6], device_secret=row[7], salt=row[8],
        kdf=(row[9], row[10], row[11]), server_key=row[12], security_phrase=row[13],
        share_version=row[14], next_share=row[15], refresh_secret=row[16],
        refreshed_at=row[17], share_token=row[18], next_token=row[19],
        epoch_token=row[20], refresh_until=row[21],
    )
