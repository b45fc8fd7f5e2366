"""What one authorization costs, against the least it could cost.

One :func:`run` measures:

1. **In-process authorizations per second**: a ``ShareServer`` and a ``Device`` in one
   process, with the ``TEST_ONLY`` KDF so Argon2id does not hide the protocol's own cost.
2. **The floor**: the same library calls (same libraries, same number of each) and the
   same SQL statements and COMMITs (same schema and pragmas, same filesystem) in a bare
   loop, with none of the protocol's code around them.
3. **Their ratio**, in-process / floor. Target: at least 0.8 (issue 8).
4. **PIN-to-result latency** with the default ``INTERACTIVE`` KDF, split into Argon2id
   and everything else (each run's total less its own Argon2id call, timed in place;
   Argon2id is also timed alone with the same parameters). Target: the rest < 30 ms.

The floor, per authorization, read from the code (:func:`count_operations` checks it
against one real authorization, so the two cannot drift apart silently):

=======  ==============  ================================================================
device   blind           ristretto255 scalar_random, scalar_reduce (canonical check),
                         2 SHA-512 (expand_message_xmd), from_hash, scalarmult
device   sign            1 random (the request's nonce); Ed25519 keygen from the device
                         seed, sign (evaluate request, presenting the version of the
                         share staged by the last payment's re-split); its possession
                         proof over the signed bytes: BLAKE2b x2 (the version MAC under
                         T_v+1, the staged version's token: a derived key, the MAC),
                         BLAKE2b x2 (the epoch MAC under the epoch token, likewise)
server   evaluate        read: SELECT card; Ed25519 verify; the possession proof checked
                         (``_refresh.proven``): XChaCha decrypt (KEK unwrap of T_v+1,
                         the presented version's token; its MAC also shows the epoch),
                         BLAKE2b x2; XChaCha20-Poly1305 decrypt
                         x2 (KEK unwrap of the OPRF key, of the wallet reference);
                         scalar_reduce, is_valid_point, scalarmult (BlindEvaluate); 2
                         random (the proof's challenge);
                         **commit 1** (the evaluation counted against the card's
                         unproven budget, and the last re-split committed: the device
                         shows it holds D_v+1): INSERT nonce, SELECT card (its share
                         versions), UPDATE card (S_v+1 becomes the share and T_v+1 its
                         token; committed_at), UPDATE audit head x2, BLAKE2b, INSERT
                         audit (shares committed), SELECT wallet (not at its limit),
                         UPDATE card, INSERT challenge, UPDATE audit head x2, BLAKE2b,
                         INSERT audit
device   finalize        scalar_reduce, is_valid_point, scalar_invert, scalarmult, SHA-512
device   PIN key         Argon2id (TEST_ONLY), HKDF-SHA512
device   refresh key     1 random (this payment's refresh secret); **committed** on the
                         device store with the staged share's (and token's) promotion:
                         UPDATE cards; PRAGMA wal_checkpoint (the old share's pages out
                         of the WAL)
device   envelope        2 random; X25519 base and scalarmult, HKDF-SHA512, XChaCha encrypt
device   sign            X25519 base (the refresh key's public half, in the request);
                         Ed25519 keygen from the PIN seed, sign (authorize request); the
                         signature sealed to the server: 2 random, X25519 base and
                         scalarmult, HKDF-SHA512, XChaCha encrypt
server   authorize       read: SELECT challenge; read: SELECT card; X25519 scalarmult,
                         HKDF-SHA512, XChaCha decrypt (the sealed PIN signature); Ed25519
                         verify; BLAKE2b x2 (ledger digests); read: SELECT ledger; X25519
                         scalarmult, HKDF-SHA512, XChaCha decrypt (envelope); XChaCha
                         decrypt x2 (KEK unwrap of the share, card record); 1 random
                         (S_v+1, drawn while S_v is unwrapped), 1 random (T_v+1, the
                         next version's token), XChaCha decrypt (KEK unwrap of T_v, the
                         key of R's tag), 1 random, XChaCha encrypt (S_v+1's KEK wrap),
                         1 random, XChaCha encrypt (T_v+1's); BLAKE2b (the payment's
                         reference); 1 random, XChaCha encrypt (KEK wrap of the pending
                         row's intent); BLAKE2b
                         x2 (the fraud rules' merchant and device MACs; no rule is set by
                         default); **commit 2** (the proof and the pending ledger row):
                         UPDATE challenge, SELECT card, XChaCha decrypt (its wallet
                         reference), INSERT + UPDATE wallet and UPDATE card (held, in that
                         order), UPDATE card, INSERT ledger; 1
                         random, XChaCha encrypt (KEK wrap of the result); **commit 3**
                         (the outcome, and the approval's re-split): UPDATE ledger, UPDATE
                         card (S_v+1 and T_v+1 wrapped, the refresh key), UPDATE audit
                         head x2, BLAKE2b, INSERT audit; read: SELECT card (the re-split
                         for the reply); BLAKE2b (R's tag under T_v); R, T_v+1 and the
                         tag sealed to the refresh key: 2 random, X25519 base and
                         scalarmult, HKDF-SHA512, XChaCha encrypt
device   re-split        R opened: X25519 base (the secret's public half) and scalarmult,
                         HKDF-SHA512, XChaCha decrypt; its tag checked under T_v: BLAKE2b;
                         D_v+1 = D_v xor R staged with T_v+1 beside D_v, **committed**:
                         UPDATE cards
device   history         its own record of the answer (``Device.history``): INSERT
                         payments, **committed** (fsynced) on the device store
=======  ==============  ================================================================

Each read is its own ``BEGIN`` ... ``COMMIT`` (no fsync); each commit is a ``BEGIN
IMMEDIATE`` ... ``COMMIT`` through the server's own SQLite backend, fsynced. Three
durable commits per authorization on the server: the evaluation counted (with the last
re-split committed); the proof with the pending ledger row; the outcome (with this
payment's re-split): the re-split rides in commits the payment makes anyway. Three on
the device: the last re-split's share promoted (with this payment's refresh secret,
which must be on disk before the request whose reply R is sealed to it), this
payment's share staged, and its record of the answer; and one WAL checkpoint.

The re-split's own operations (those marked with a share, a token, a refresh key, R
or the possession proof above) are also left out of a second floor,
``_Floor(resplit=False)``: the same loop as before issue 12, whose time against the
full floor is what the re-split itself costs. The tokens and the possession proof are
the re-split's: only versioned shares give a copy of the device a version to claim.

Not in the floor, so counted as protocol overhead: the device's read of its own store,
message encoding, dataclasses, checks, the card record's parsing, the simulated acquirer.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import os
import platform
import re
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import nacl.bindings as nb
import pysodium
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.hashes import SHA512
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._authorization import Authorization
from .._card import Card
from .._pin import Pin
from .._profiles import KdfProfile
from ..device import Device, _pinkey
from ..hazmat import DeviceStore, SqliteBackend, SqlStore, Tx
from ..server import ShareServer
from ._disk import settle

__all__ = ["count_operations", "render", "run"]

#: The issues' targets: the protocol at least 0.8 as fast as its floor (issue 8), and
#: PIN to result within 30 ms of the Argon2id call itself.
TARGET_RATIO = 0.8
TARGET_REST_MS = 30.0
#: Cards enrolled for the throughput run, used in turn (as a wallet with a few cards).
CARDS = 4
#: In-process and floor alternate in this many slices, so a slow spell of the disk
#: (fsync time varies by +-30 % from one second to the next) falls on both rather than
#: on one.
ROUNDS = 10
_PIN = "739184"
#: The device's round trips to the server in one authorization, in order.
_ROUND_TRIPS = ("evaluate", "authorize")
_PAYMENT: dict[str, Any] = {"amount": 12000, "currency": "KRW", "merchant": "Gift Shop"}

# -- counting --------------------------------------------------------------------------

#: (module, function) of each library entry point on the authorization path -> op name.
_PY_OPS = {
    ("pysodium", "crypto_core_ristretto255_scalar_random"): "ristretto255 scalar_random",
    ("pysodium", "crypto_core_ristretto255_scalar_reduce"): "ristretto255 scalar_reduce",
    ("pysodium", "crypto_core_ristretto255_scalar_invert"): "ristretto255 scalar_invert",
    ("pysodium", "crypto_core_ristretto255_from_hash"): "ristretto255 from_hash",
    ("pysodium", "crypto_core_ristretto255_is_valid_point"): "ristretto255 is_valid_point",
    ("pysodium", "crypto_scalarmult_ristretto255"): "ristretto255 scalarmult",
    ("pysodium", "crypto_scalarmult_ristretto255_base"): "ristretto255 scalarmult_base",
    ("nacl.bindings.crypto_sign", "crypto_sign_seed_keypair"): "Ed25519 keygen",
    ("nacl.bindings.crypto_sign", "crypto_sign"): "Ed25519 sign",
    ("nacl.bindings.crypto_sign", "crypto_sign_open"): "Ed25519 verify",
    ("nacl.bindings.crypto_scalarmult", "crypto_scalarmult"): "X25519 scalarmult",
    ("nacl.bindings.crypto_scalarmult", "crypto_scalarmult_base"): "X25519 scalarmult_base",
    ("nacl.bindings.crypto_aead", "crypto_aead_xchacha20poly1305_ietf_encrypt"):
        "XChaCha20-Poly1305 encrypt",
    ("nacl.bindings.crypto_aead", "crypto_aead_xchacha20poly1305_ietf_decrypt"):
        "XChaCha20-Poly1305 decrypt",
    ("nacl.bindings.crypto_generichash", "generichash_blake2b_salt_personal"): "BLAKE2b",
    ("argon2.low_level", "hash_secret_raw"): "Argon2id",
    ("secrets", "token_bytes"): "random bytes",
}
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", re.IGNORECASE)


class _OpCounter:
    """Counts library calls (``sys.setprofile``) and SQL statements (trace callback):
    the server's, and the device store's writes (its reads of its own card are
    protocol overhead, not floor)."""

    def __init__(self, conn: sqlite3.Connection, device: sqlite3.Connection) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._conn = conn
        self._device = device

    def __enter__(self) -> _OpCounter:
        if sys.getprofile() is not None:
            raise RuntimeError("cannot count operations while a profiler is active")
        self._conn.set_trace_callback(self._statement)
        self._device.set_trace_callback(self._device_statement)
        sys.setprofile(self._event)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        self._conn.set_trace_callback(None)
        self._device.set_trace_callback(None)

    def _event(self, frame: FrameType, event: str, arg: object) -> None:
        name: str | None = None
        if event == "call":
            name = _PY_OPS.get((frame.f_globals.get("__name__", ""), frame.f_code.co_name))
        elif event == "c_call":
            if arg is hashlib.sha512:
                name = "SHA-512"
            elif getattr(arg, "__qualname__", "") == "HKDF.derive":
                name = "HKDF-SHA512"
        if name is not None:
            self.counts[name] += 1

    def _statement(self, sql: str) -> None:
        self.counts[f"SQL {_kind(sql)}"] += 1

    def _device_statement(self, sql: str) -> None:
        kind = _kind(sql)
        if not kind.startswith("SELECT"):
            self.counts[f"device SQL {kind}"] += 1


def _kind(sql: str) -> str:
    """A statement by verb and table: ``INSERT audit``, ``BEGIN IMMEDIATE``, ..."""
    verb = sql.split(None, 1)[0].upper()
    if sql.upper().startswith("BEGIN IMMEDIATE"):
        verb = "BEGIN IMMEDIATE"  # a write transaction: its COMMIT is fsynced
    table = _TABLE.search(sql)
    if table is not None and verb not in ("BEGIN", "COMMIT", "ROLLBACK"):
        verb = f"{verb} {table.group(1)}"
    return verb


def count_operations(workdir: Path) -> dict[str, dict[str, int]]:
    """Library calls and SQL statements of one real authorization and of one floor
    iteration, by name. They must be equal; ``tests/test_bench.py`` says so. Also
    ``floor_without_resplit``: one iteration of the floor less the re-split's
    operations (the test names what that leaves out, kind by kind)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _vault(Path(tempfile.mkdtemp(dir=workdir)), KdfProfile.TEST_ONLY, 1) as vault:
        vault.authorize(0, "count-warm")  # first use opens connections and caches
        # Heartbeat and sweep now, so the periodic refresh does not fall inside the count.
        vault.server.refresh()
        with _OpCounter(_traceable(_backend_of(vault.server)),
                        _device_connection(vault.device)) as real:
            vault.authorize(0, "count")
    bare: dict[str, dict[str, int]] = {}
    for name, resplit in (("floor", True), ("floor_without_resplit", False)):
        with _floor(Path(tempfile.mkdtemp(dir=workdir)), 1, resplit=resplit) as floor:
            floor.authorize(0, "count-warm")
            with _OpCounter(_traceable(floor.db), floor.device_db) as counter:
                floor.authorize(0, "count")
        bare[name] = dict(sorted(counter.counts.items()))
    return {"authorization": dict(sorted(real.counts.items())), **bare}


def _backend_of(server: ShareServer) -> SqliteBackend:
    """The SQLite backend under a server's store."""
    store = server.store
    backend = store._db if isinstance(store, SqlStore) else None
    if not isinstance(backend, SqliteBackend):
        raise RuntimeError("the benchmark counts statements on a SQLite store only")
    return backend


def _traceable(backend: SqliteBackend) -> sqlite3.Connection:
    """This thread's connection of ``backend``, to trace every statement and COMMIT on
    it. With :func:`_backend_of`, the benchmark's only reach behind the store's API:
    SQLite's statement trace has no public hook on the server."""
    return backend._connection()


def _device_connection(device: Device | DeviceStore) -> sqlite3.Connection:
    """The device store's connection, to trace its statements and for the floor to
    write its history row raw (same reason: no public hook)."""
    store = device._store if isinstance(device, Device) else device
    conn: sqlite3.Connection = store._conn
    return conn


# -- the in-process vault --------------------------------------------------------------


@dataclass
class _Vault:
    server: ShareServer
    device: Device
    card_ids: list[str]
    pin: Pin

    def authorize(self, n: int, key: str) -> Authorization:
        return self.device.authorize(self.card_ids[n % len(self.card_ids)], self.pin,
                                     idempotency_key=key, **_PAYMENT)


@contextmanager
def _vault(directory: Path, kdf: KdfProfile, cards: int) -> Iterator[_Vault]:
    directory.mkdir(parents=True, exist_ok=True)
    expiry = f"12/{(date.today().year + 5) % 100:02d}"
    card = Card(pan="4111 1111 1111 1111", expiry=expiry, holder="KIM MINSU")
    with (ShareServer.open(directory / "server.db") as server, Pin.from_digits(_PIN) as pin,
          Device.open(directory / "device.db", server=server, kdf=kdf) as device):
        yield _Vault(server, device, [device.enroll(card, pin) for _ in range(cards)], pin)


def _time_server(server: ShareServer, seconds: dict[str, float]) -> None:
    """Time the server's side of each round trip, by shadowing two methods on this one
    instance (the benchmark's own server; nothing else is touched)."""
    for name in _ROUND_TRIPS:
        setattr(server, name, _timed(getattr(server, name), name, seconds))


def _timed(method: Callable[[Any], Any], name: str,
           seconds: dict[str, float]) -> Callable[[Any], Any]:
    def timed(request: Any) -> Any:
        began = time.perf_counter()
        try:
            return method(request)
        finally:
            seconds[name] += time.perf_counter() - began
    return timed


# -- the floor -------------------------------------------------------------------------

_ZERO = bytes(32)
# expand_message_xmd (RFC 9380 sec 5.3.1) for HashToGroup, as crypto/oprf.py builds it.
_DST = b"HashToGroup-OPRFV1-\x00-ristretto255-SHA512"
_DST_PRIME = _DST + bytes([len(_DST)])
_XMD_HEAD = bytes(128)
_XMD_TAIL = (64).to_bytes(2, "big") + b"\x00" + _DST_PRIME
_KID = bytes(8)
_RECORD = json.dumps({"v": 1, "pan": "4111111111111111", "expiry": "12/30",
                      "holder": "KIM MINSU"}).encode()
# A recorded result of about the size Ledger.finish wraps.
_RESULT = json.dumps({"amount": 12000, "approval_code": "ABC234", "approved": True,
                      "currency": "KRW", "decline_reason": None, "idempotency_key": "bench-0",
                      "masked_pan": "•••• 1111", "merchant": "Gift Shop",
                      "timestamp": 1.7e9}).encode()
_GUESS_DETAIL = '{"guesses_used":1,"limit":5}'
# The statements of server/_sql*.py the floor makes, as those files spell them.
_SELECT_CARD = ("SELECT device_key, verifier, oprf_key, share, guesses_used, locked, "
                "share_version, share_floor, share_next, refresh_key, refreshed_at, cloned, "
                "wallet, share_token, share_next_token, committed_at, epoch_token, unproven "
                "FROM cards WHERE card_id = ? AND state = 'active'")
_SELECT_CHALLENGE = ("SELECT card_id, nonce, state, expires_at, new_oprf_key, share_version "
                     "FROM challenges WHERE challenge_id = ?")
_SELECT_SHARES = ("SELECT share_version, share_floor, refresh_key, cloned, refreshed_at, "
                  "share_next IS NOT NULL, committed_at FROM cards "
                  "WHERE card_id = ? AND state = 'active'")
_COMMIT_SHARES = ("UPDATE cards SET share = share_next, share_next = NULL, "
                  "share_token = share_next_token, share_next_token = NULL, "
                  "refresh_key = NULL, share_version = share_version + 1, "
                  "committed_at = ? "
                  "WHERE card_id = ? AND share_version = ? AND share_next IS NOT NULL")
_STAGE_SERVER_SHARE = ("UPDATE cards SET share_next = ?, share_next_token = ?, "
                       "refresh_key = ?, refreshed_at = ? "
                       "WHERE card_id = ? AND state = 'active' AND share_version = ? "
                       "AND share_next IS NULL")
# And those of device/_store.py: begin_refresh, promote_share, stage_share.
_DEVICE_BEGIN_REFRESH = "UPDATE cards SET refresh_secret = ? WHERE card_id = ?"
_DEVICE_PROMOTE = ("UPDATE cards SET device_share = next_share, next_share = NULL, "
                   "share_token = next_token, next_token = NULL, "
                   "share_version = ?, refresh_secret = coalesce(?, refresh_secret) "
                   "WHERE card_id = ? AND share_version = ? AND next_share IS NOT NULL")
_DEVICE_STAGE = ("UPDATE cards SET next_share = ?, next_token = ?, refreshed_at = ?, "
                 "refresh_secret = NULL "
                 "WHERE card_id = ? AND share_version = ? AND next_share IS NULL")
_SELECT_LEDGER = ("SELECT key_digest, state, params_digest, result, owner, lease_until, "
                  "reference, attempt FROM authorizations WHERE key_digest = ?")
# Evaluations without a proof: the budget and window of _store.UNPROVEN_LIMIT/_WINDOW.
_UNPROVEN_LIMIT, _UNPROVEN_WINDOW = 20, 900.0
# The domains of _resplit.py's MACs: the possession proof's two, and R's tag.
_D_POSSESSION = b"splitvault/v4/possession"
_D_EPOCH = b"splitvault/v4/epoch"
_D_REFRESH_TAG = b"splitvault/v4/refresh-tag"


def _blake2b(data: bytes, key: bytes) -> bytes:
    return nb.crypto_generichash_blake2b_salt_personal(data, digest_size=32, key=key)


def _hkdf(ikm: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=SHA512(), length=32, salt=salt, info=info).derive(ikm)


def _wrap(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(24)
    return _KID + nonce + nb.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce,
                                                                         key)


def _unwrap(key: bytes, blob: bytes, aad: bytes) -> bytes:
    return nb.crypto_aead_xchacha20poly1305_ietf_decrypt(blob[32:], aad, blob[8:32], key)


def _possession(epoch_token: bytes, token: bytes, message: bytes) -> bytes:
    """An evaluation's possession proof (``_resplit``): the epoch MAC, then the version
    MAC (no refresh key presented, so no X25519 in its key), each under a derived key."""
    version = _blake2b(message, _blake2b(_D_POSSESSION, token))
    return _blake2b(message, _blake2b(_D_EPOCH, epoch_token)) + version


def _refresh_tag(tag_key: bytes, card: _FloorCard, version_after: int, r: bytes,
                 token: bytes) -> bytes:
    """R's tag under the current version's token (``_resplit._tag``)."""
    return _blake2b(_D_REFRESH_TAG + card.id_bytes + version_after.to_bytes(8, "big") + r
                    + token, tag_key)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _hash_to_group(data: bytes) -> bytes:
    b_0 = hashlib.sha512(_XMD_HEAD + data + _XMD_TAIL).digest()
    uniform = hashlib.sha512(b_0 + b"\x01" + _DST_PRIME).digest()
    return bytes(pysodium.crypto_core_ristretto255_from_hash(uniform))


def _pin_seed(oprf_output: bytes, card: _FloorCard, kdf: KdfProfile) -> bytes:
    stretched = hash_secret_raw(oprf_output, card.salt, time_cost=kdf.time_cost,
                                memory_cost=kdf.memory_cost_kib, parallelism=kdf.parallelism,
                                hash_len=32, type=Type.ID)
    return _hkdf(bytes(stretched) + card.device_secret, None, b"pin-key" + card.id_bytes)


@dataclass
class _FloorCard:
    card_id: str
    device_seed: bytes
    pin_input: bytes
    salt: bytes
    device_secret: bytes
    device_share: bytes = b""
    sealed_record: bytes = b""
    # The device's side of the re-split, as its store keeps it (device/_store.py).
    share_version: int = 0
    next_share: bytes | None = None
    refresh_secret: bytes | None = None
    # Each version's token and the epoch token (_resplit.py); None without the re-split.
    share_token: bytes | None = None
    next_token: bytes | None = None
    epoch_token: bytes | None = None

    @property
    def id_bytes(self) -> bytes:
        return self.card_id.encode()


@dataclass
class _Floor:
    """The floor's state (a scratch server database, the keys a vault holds) and its loop
    body: each step below is one row of the module docstring's table. With ``resplit``
    False, the re-split's operations are left out (the loop as it was before it)."""

    db: SqliteBackend
    kek: bytes
    server_secret: bytes
    server_public: bytes
    audit_key: bytes
    ledger_key: bytes
    cards: list[_FloorCard]
    device_db: sqlite3.Connection
    kdf: KdfProfile = KdfProfile.TEST_ONLY
    resplit: bool = True
    wallet: bytes = b"W" * 16  # every floor card is in this wallet (the device's)

    def add_card(self, tx: Tx) -> None:
        """Enroll a card: the rows and keys the real enrollment leaves behind."""
        card = _FloorCard(secrets.token_hex(16), secrets.token_bytes(32), b"",
                          secrets.token_bytes(16), secrets.token_bytes(32))
        card.pin_input = b"pin-input" + card.id_bytes + _PIN.encode()
        oprf_key = pysodium.crypto_core_ristretto255_scalar_random()
        unblinded = pysodium.crypto_scalarmult_ristretto255(oprf_key,
                                                            _hash_to_group(card.pin_input))
        output = hashlib.sha512(card.pin_input + unblinded + b"Finalize").digest()
        verifier = nb.crypto_sign_seed_keypair(_pin_seed(output, card, self.kdf))[0]
        data_key, card.device_share = secrets.token_bytes(32), secrets.token_bytes(32)
        nonce = secrets.token_bytes(24)
        card.sealed_record = nonce + nb.crypto_aead_xchacha20poly1305_ietf_encrypt(
            _RECORD, b"card-record" + card.id_bytes, nonce, data_key)
        # The first version's token, which is also the epoch token (Device.enroll).
        token = secrets.token_bytes(32) if self.resplit else None
        card.share_token = card.epoch_token = token
        wrapped = None if token is None else _wrap(self.kek, token,
                                                   b"share-token" + card.id_bytes)
        tx.run("INSERT INTO cards (card_id, state, device_key, verifier, oprf_key, share, "
               "created_at, wallet, share_token, epoch_token) "
               "VALUES (?, 'active', ?, ?, ?, ?, ?, ?, ?, ?)",
               card.card_id, nb.crypto_sign_seed_keypair(card.device_seed)[0], verifier,
               _wrap(self.kek, oprf_key, b"oprf-key" + card.id_bytes),
               _wrap(self.kek, _xor(data_key, card.device_share), b"share" + card.id_bytes),
               time.time(), _wrap(self.kek, self.wallet, b"wallet" + card.id_bytes),
               wrapped, wrapped)
        # The device's row too: its re-split writes must change a row, as the real ones
        # do (an UPDATE that matches nothing commits without writing anything).
        self.device_db.execute(
            "INSERT INTO cards (card_id, state, brand, last4, expiry, sealed_record, "
            "device_share, sign_seed, device_secret, salt, kdf_t, kdf_m, kdf_p, server_key, "
            "share_token, epoch_token, created_at) VALUES (?, 'active', 'visa', '1111', "
            "'12/30', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (card.card_id, card.sealed_record, card.device_share, card.device_seed,
             card.device_secret, card.salt, self.kdf.time_cost, self.kdf.memory_cost_kib,
             self.kdf.parallelism, self.server_public, token, token, time.time()))
        self.cards.append(card)

    def authorize(self, n: int, key: str) -> None:
        card = self.cards[n % len(self.cards)]
        secret = secrets.token_bytes(32) if self.resplit else None
        blind, blinded, signature, message, possession = self.blind(card)
        challenge_id, nonce, evaluated = self.evaluate(card, blinded, signature, message,
                                                       possession)
        envelope, signature, message = self.prove(card, blind, evaluated, challenge_id, nonce,
                                                  key, secret)
        sealed = self.pay(card, challenge_id, envelope, signature, message, key)
        if secret is not None and sealed is not None:
            self.take_refresh(card, secret, sealed)
        self.remember(card, key)

    def remember(self, card: _FloorCard, key: str) -> None:
        """The device's own record of the answer: one durable commit on its store."""
        conn = self.device_db
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO payments (card_id, idempotency_key, at, amount, "
                     "currency, merchant, outcome, detail, attempts_left) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (card.card_id, key, time.time(), 12000, "KRW", "Gift Shop", "approved",
                      "ABC234", None))
        conn.execute("COMMIT")

    def keep_refresh_key(self, card: _FloorCard, secret: bytes) -> bytes:
        """This payment's refresh secret on disk before the request: in the write that
        promotes the staged share (the server has just committed its half), else its
        own (``Device._authorize_request``); its public half, for the request."""
        conn = self.device_db
        conn.execute("BEGIN IMMEDIATE")
        if card.next_share is not None:
            conn.execute(_DEVICE_PROMOTE, (card.share_version + 1, secret, card.card_id,
                                           card.share_version))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            card.device_share, card.next_share = card.next_share, None
            card.share_token, card.next_token = card.next_token, None
            card.share_version += 1
        else:
            conn.execute(_DEVICE_BEGIN_REFRESH, (secret, card.card_id))
            conn.execute("COMMIT")
        card.refresh_secret = secret
        return bytes(nb.crypto_scalarmult_base(secret))

    def take_refresh(self, card: _FloorCard, secret: bytes, sealed: bytes) -> None:
        """R and T_v+1 opened with the refresh secret, their tag checked under T_v, and
        D_v+1 staged with T_v+1 beside D_v: one commit."""
        public = nb.crypto_scalarmult_base(secret)
        version_after = card.share_version + 1
        plain = self.open_sealed(sealed, b"refresh" + card.id_bytes
                                 + version_after.to_bytes(8, "big"),
                                 secret=secret, public=public)
        r, token = plain[:32], plain[32:64]
        if card.share_token is None or len(plain) != 96 or not hmac.compare_digest(
                _refresh_tag(card.share_token, card, version_after, r, token), plain[64:]):
            raise RuntimeError("floor re-split refused by its tag")
        next_share = _xor(card.device_share, r)
        conn = self.device_db
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_DEVICE_STAGE, (next_share, token, time.time(), card.card_id,
                                     card.share_version))
        conn.execute("COMMIT")
        card.next_share, card.next_token, card.refresh_secret = next_share, token, None

    def blind(self, card: _FloorCard) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """The evaluate request: blinded, signed, and (with the re-split) its possession
        proof, under the presented version's token (the staged one's, if staged)."""
        blind = pysodium.crypto_core_ristretto255_scalar_random()
        pysodium.crypto_core_ristretto255_scalar_reduce(blind + _ZERO)
        blinded = pysodium.crypto_scalarmult_ristretto255(blind, _hash_to_group(card.pin_input))
        nonce, millis = secrets.token_bytes(16), int(time.time() * 1000)
        # The version presented: the staged share's, if the last payment left one.
        presented = card.share_version + (card.next_share is not None)
        message = (b"evaluate" + card.id_bytes + nonce + millis.to_bytes(8, "big") + blinded
                   + presented.to_bytes(8, "big"))
        secret = nb.crypto_sign_seed_keypair(card.device_seed)[1]
        signature = nb.crypto_sign(message, secret)[:64]
        token = card.next_token if card.next_share is not None else card.share_token
        possession = (b"" if not self.resplit or card.epoch_token is None or token is None
                      else _possession(card.epoch_token, token, message))
        return blind, blinded, signature, message, possession

    def evaluate(self, card: _FloorCard, blinded: bytes, signature: bytes,
                 message: bytes, possession: bytes) -> tuple[str, bytes, bytes]:
        row = self.db.read(lambda tx: tx.one(_SELECT_CARD, card.card_id))
        if row is None:
            raise RuntimeError("floor card missing")
        nb.crypto_sign_open(signature + message, row[0])
        if self.resplit:
            self.check_possession(card, row, possession, message)
        key = _unwrap(self.kek, row[2], b"oprf-key" + card.id_bytes)
        wallet = _unwrap(self.kek, row[12], b"wallet" + card.id_bytes)
        pysodium.crypto_core_ristretto255_scalar_reduce(key + _ZERO)
        pysodium.crypto_core_ristretto255_is_valid_point(blinded)
        evaluated: bytes = pysodium.crypto_scalarmult_ristretto255(key, blinded)
        challenge_id, nonce, now = secrets.token_hex(16), secrets.token_bytes(32), time.time()
        request_nonce = message[8 + len(card.id_bytes):][:16]

        def spend(tx: Tx) -> None:
            # The guess, the request's nonce and the proof's challenge: one commit.
            tx.all("INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) "
                   "ON CONFLICT (nonce) DO NOTHING RETURNING nonce", request_nonce,
                   now + 120.0)
            version = int(row[6])
            if self.resplit:
                version = self.commit_shares(tx, card, now)
            tx.one("SELECT guesses FROM wallets WHERE wallet = ?", wallet)  # not at its limit
            start = now - _UNPROVEN_WINDOW
            tx.one("UPDATE cards SET "
                   "unproven = CASE WHEN unproven_since < ? THEN 1 ELSE unproven + 1 END, "
                   "unproven_since = CASE WHEN unproven_since < ? THEN ? "
                   "ELSE unproven_since END "
                   "WHERE card_id = ? AND state = 'active' AND locked = 0 "
                   "AND guesses_used < ? AND (unproven_since < ? OR unproven < ?) "
                   "RETURNING guesses_used, unproven",
                   start, start, now, card.card_id, 5, start, _UNPROVEN_LIMIT)
            tx.run("INSERT INTO challenges (challenge_id, card_id, nonce, state, expires_at, "
                   "share_version) VALUES (?, ?, ?, 'evaluated', ?, ?)", challenge_id,
                   card.card_id, nonce, now + 60.0, version)
            self.audit(tx, "guess_used", card.card_id, _GUESS_DETAIL, now)
        self.db.write(spend)
        return challenge_id, nonce, evaluated

    def check_possession(self, card: _FloorCard, row: tuple[Any, ...], possession: bytes,
                         message: bytes) -> None:
        """The possession proof checked before anything is spent (``_refresh.proven``):
        the version MAC under the presented version's token (the waiting one's for a
        version one above), unwrapped; a version with a token needs no epoch check."""
        aad = b"share-token" + card.id_bytes
        presented = int.from_bytes(message[-8:], "big")
        wrapped = row[13] if presented == int(row[6]) else row[14]
        token = _unwrap(self.kek, bytes(wrapped), aad)
        if not hmac.compare_digest(
                _blake2b(message, _blake2b(_D_POSSESSION, token)), possession[32:]):
            raise RuntimeError("floor possession proof refused")

    def commit_shares(self, tx: Tx, card: _FloorCard, now: float) -> int:
        """The presented version judged (``_sql._judge_shares``): the device shows the
        staged share, so S_v+1 (and its token) becomes the server's (compare-and-set,
        audited)."""
        row = tx.one(_SELECT_SHARES, card.card_id)
        if row is None:
            raise RuntimeError("floor card missing")
        version = int(row[0])
        if row[5] and card.next_share is not None:
            if tx.run(_COMMIT_SHARES, now, card.card_id, version):
                self.audit(tx, "shares_committed", card.card_id,
                           f'{{"share_version":{version + 1}}}', now)
            version += 1
        return version

    def prove(self, card: _FloorCard, blind: bytes, evaluated: bytes, challenge_id: str,
              nonce: bytes, key: str, refresh_secret: bytes | None
              ) -> tuple[bytes, bytes, bytes]:
        pysodium.crypto_core_ristretto255_scalar_reduce(blind + _ZERO)
        pysodium.crypto_core_ristretto255_is_valid_point(evaluated)
        inverse = pysodium.crypto_core_ristretto255_scalar_invert(blind)
        unblinded = pysodium.crypto_scalarmult_ristretto255(inverse, evaluated)
        output = hashlib.sha512(card.pin_input + unblinded + b"Finalize").digest()
        pin_seed = _pin_seed(output, card, self.kdf)
        refresh_key = (b"" if refresh_secret is None
                       else self.keep_refresh_key(card, refresh_secret))
        envelope = self.seal(card.device_share + card.sealed_record,
                             b"authorize-envelope" + card.id_bytes + challenge_id.encode())
        message = (b"authorize" + card.id_bytes + challenge_id.encode() + nonce
                   + (12000).to_bytes(8, "big") + b"KRWGift Shop" + key.encode() + envelope
                   + refresh_key)
        secret = nb.crypto_sign_seed_keypair(pin_seed)[1]
        # The PIN signature travels sealed to the server (_protocol.proof_aad).
        signature = self.seal(nb.crypto_sign(message, secret)[:64],
                              b"sealed-proof" + b"authorize" + card.id_bytes)
        return envelope, signature, message

    def seal(self, plaintext: bytes, aad: bytes, recipient: bytes | None = None) -> bytes:
        recipient = self.server_public if recipient is None else recipient
        ephemeral = secrets.token_bytes(32)
        public = nb.crypto_scalarmult_base(ephemeral)
        key = _hkdf(nb.crypto_scalarmult(ephemeral, recipient), public + recipient,
                    b"envelope-key")
        nonce = secrets.token_bytes(24)
        return public + nonce + nb.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad,
                                                                               nonce, key)

    def pay(self, card: _FloorCard, challenge_id: str, envelope: bytes, signature: bytes,
            message: bytes, key: str) -> bytes | None:
        """The server's authorize; R sealed to the device's refresh key (None without
        the re-split)."""
        db, card_id = self.db, card.card_id
        db.read(lambda tx: tx.one(_SELECT_CHALLENGE, challenge_id))
        row = db.read(lambda tx: tx.one(_SELECT_CARD, card_id))
        if row is None:
            raise RuntimeError("floor card missing")
        nb.crypto_sign_open(self.open_sealed(signature, b"sealed-proof" + b"authorize"
                                             + card.id_bytes) + message, row[1])
        digest = _blake2b(b"ledger-key" + card.id_bytes + key.encode(), self.ledger_key)
        params = _blake2b(b"ledger-params" + card.id_bytes + b"12000KRWGift Shop",
                          self.ledger_key)
        db.read(lambda tx: tx.one(_SELECT_LEDGER, digest))
        _, server_share = self.open_card(card, row[3], envelope, challenge_id)
        # The re-split drawn while S_v is unwrapped (``_refresh.draw``): S_v+1 and R =
        # S_v xor S_v+1, for the request's refresh key (the signed message's last 32
        # bytes); T_v+1, the next version's token; T_v, the key of R's tag.
        version, refresh_key = int(row[6]), message[-32:]
        share_next = token_next = r = token = tag_key = b""
        if self.resplit:
            fresh = secrets.token_bytes(32)
            r = _xor(server_share, fresh)
            token = secrets.token_bytes(32)
            tag_key = _unwrap(self.kek, bytes(row[13]), b"share-token" + card.id_bytes)
            share_next = _wrap(self.kek, fresh, b"share" + card.id_bytes)
            token_next = _wrap(self.kek, token, b"share-token" + card.id_bytes)
        reference = "sv-" + _blake2b(b"payment-reference" + card.id_bytes + key.encode(),
                                     self.ledger_key)[:16].hex()
        # The pending row's intent: the payment's details, wrapped, for a reconciler.
        intent = _wrap(self.kek, _RESULT, b"ledger" + digest.hex().encode())
        # The fraud rules' view of the payment (merchant and device as MACs); with no
        # rule set, as a server has by default, nothing more.
        _blake2b(b"risk-merchant" + b"gift shop", self.ledger_key)
        _blake2b(b"risk-device" + row[0], self.ledger_key)
        now = time.time()

        def settle(tx: Tx) -> None:
            # The proof's challenge consumed, the count reset, the pending ledger row.
            tx.run("UPDATE challenges SET state = 'used' WHERE challenge_id = ? "
                   "AND card_id = ? AND state = 'evaluated' AND expires_at >= ?",
                   challenge_id, card_id, now)
            held = tx.one("SELECT guesses_used, locked, wallet FROM cards WHERE card_id = ? "
                          "AND state = 'active'", card_id)
            if held is None:
                raise RuntimeError("floor card missing")
            # The card's wallet held first, then the card (``_sql_cards._hold_wallet``).
            wallet = _unwrap(self.kek, bytes(held[2]), b"wallet" + card.id_bytes)
            tx.run("INSERT INTO wallets (wallet, guesses) VALUES (?, 0) "
                   "ON CONFLICT (wallet) DO NOTHING", wallet)
            tx.one("UPDATE wallets SET guesses = guesses WHERE wallet = ? RETURNING guesses",
                   wallet)
            tx.one("UPDATE cards SET locked = locked WHERE card_id = ? AND state = 'active' "
                   "RETURNING locked, guesses_used", card_id)
            tx.run("UPDATE cards SET guesses_used = 0, unproven = 0 WHERE card_id = ? "
                   "AND state = 'active' AND locked = 0", card_id)
            tx.all("INSERT INTO authorizations (key_digest, params_digest, state, "
                   "result, started_at, owner, lease_until, reference, attempt) "
                   "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (key_digest) DO NOTHING RETURNING key_digest",
                   digest, params, intent, now, "floor", now + 30.0, reference, 0)
        db.write(settle)
        result = _wrap(self.kek, _RESULT, b"ledger" + digest.hex().encode())

        def finish(tx: Tx) -> None:
            done = time.time()
            tx.run("UPDATE authorizations SET state = ?, result = ?, completed_at = ? "
                   "WHERE key_digest = ? AND owner = ? AND state IN ('pending', 'in_doubt')",
                   "approved", result, done, digest, "floor")
            if self.resplit:
                # With the approval: S_v+1 waits for the device to show D_v+1.
                tx.run(_STAGE_SERVER_SHARE, share_next, token_next, refresh_key, done, card_id,
                       version)
            self.audit(tx, "authorized", card_id, "{}", done)
        db.write(finish)
        if not self.resplit:
            return None
        # The reply reads the card once more, for the re-split waiting for this key.
        again = db.read(lambda tx: tx.one(_SELECT_CARD, card_id))
        if again is None or again[8] is None or bytes(again[8]) != share_next:
            raise RuntimeError("floor re-split not written")
        # R || T_v+1 || tag, sealed (``Resplit.seal``).
        tag = _refresh_tag(tag_key, card, version + 1, r, token)
        return self.seal(r + token + tag,
                         b"refresh" + card.id_bytes + (version + 1).to_bytes(8, "big"),
                         recipient=refresh_key)

    def open_sealed(self, envelope: bytes, aad: bytes, *, secret: bytes | None = None,
                    public: bytes | None = None) -> bytes:
        """An envelope sealed to the server's key (or to ``secret``, whose ``public``
        half the caller passes)."""
        secret = self.server_secret if secret is None else secret
        own = self.server_public if public is None else public
        ephemeral, nonce = envelope[:32], envelope[32:56]
        key = _hkdf(nb.crypto_scalarmult(secret, ephemeral), ephemeral + own,
                    b"envelope-key")
        return nb.crypto_aead_xchacha20poly1305_ietf_decrypt(envelope[56:], aad, nonce, key)

    def open_card(self, card: _FloorCard, wrapped_share: bytes, envelope: bytes,
                  challenge_id: str) -> tuple[bytes, bytes]:
        """The card record, recombined (it opens only if D_v and S_v are one version's
        halves: the floor's re-split checks itself here), and the server's share."""
        plain = self.open_sealed(envelope, b"authorize-envelope" + card.id_bytes
                                 + challenge_id.encode())
        server_share = _unwrap(self.kek, wrapped_share, b"share" + card.id_bytes)
        data_key = _xor(plain[:32], server_share)
        return nb.crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain[56:], b"card-record" + card.id_bytes, plain[32:56], data_key), server_share

    def audit(self, tx: Tx, event: str, card_id: str, detail: str, at: float) -> None:
        head = tx.one("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, mac")
        if head is None:
            raise RuntimeError("floor audit head missing")
        seq, previous = int(head[0]), bytes(head[1])
        mac = _blake2b(previous + seq.to_bytes(8, "big") + repr(at).encode() + event.encode()
                       + card_id.encode() + detail.encode(), self.audit_key)
        tx.run("UPDATE audit_head SET mac = ? WHERE id = 1", mac)
        tx.run("INSERT INTO audit (seq, at, event, card_id, detail, mac) "
               "VALUES (?, ?, ?, ?, ?, ?)", seq, at, event, card_id, detail, mac)


@contextmanager
def _floor(directory: Path, cards: int, *, resplit: bool = True) -> Iterator[_Floor]:
    # The server's own SQLite backend and schema: the same pragmas, connection settings
    # and transactions (BEGIN IMMEDIATE ... COMMIT, fsynced), without the rules.
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = SqliteBackend(directory / "floor.db", create=True)
    # A device store of the device's own making: its schema and pragmas, written raw.
    device_store = DeviceStore(directory / "floor-device.db")
    try:
        SqlStore(db).create()
        secret = secrets.token_bytes(32)
        floor = _Floor(db, secrets.token_bytes(32), secret, nb.crypto_scalarmult_base(secret),
                       secrets.token_bytes(32), secrets.token_bytes(32), [],
                       _device_connection(device_store), resplit=resplit)

        def enroll(tx: Tx) -> None:
            for _ in range(cards):
                floor.add_card(tx)
        db.write(enroll)
        yield floor
    finally:
        device_store.close()
        db.close()



# -- measuring -------------------------------------------------------------------------


def _time_loop(step: Callable[[int, str], object], seconds: float, start: int,
               cpu: list[float]) -> list[float]:
    """Seconds each call of ``step`` took, calling it for about ``seconds`` (at least
    once); the process's CPU seconds over the loop are appended to ``cpu``."""
    times: list[float] = []
    cpu_began = time.process_time()
    deadline = time.perf_counter() + seconds
    while not times or time.perf_counter() < deadline:
        key = f"bench-{start + len(times)}"
        began = time.perf_counter()
        step(start + len(times), key)
        times.append(time.perf_counter() - began)
    cpu.append(time.process_time() - cpu_began)
    return times


def _summary(times: list[float], cpu: list[float]) -> dict[str, float]:
    return {"per_s": round(len(times) / sum(times), 1),
            "mean_ms": round(statistics.fmean(times) * 1e3, 3),
            "median_ms": round(statistics.median(times) * 1e3, 3),
            # CPU (user + system) per authorization: the wall time less the waits
            # (fsync above all); the gap between the two loops is the protocol's code.
            "cpu_ms": round(sum(cpu) * 1e3 / len(times), 3),
            "count": len(times)}


def _throughput(directory: Path, seconds: float) -> dict[str, dict[str, float]]:
    """The in-process loop, the floor, and the floor less the re-split's operations
    (what the re-split itself costs), in alternating slices."""
    times: dict[str, list[float]] = {name: [] for name in _LOOPS}
    cpu: dict[str, list[float]] = {name: [] for name in _LOOPS}
    with (_vault(directory / "inprocess", KdfProfile.TEST_ONLY, CARDS) as vault,
          _floor(directory, CARDS) as floor,
          _floor(directory / "without-resplit", CARDS, resplit=False) as without):
        steps = dict(zip(_LOOPS, (vault.authorize, floor.authorize, without.authorize),
                         strict=True))
        for n in range(CARDS):  # warm: connections, statement caches, WAL pages, and
            for step in steps.values():  # each card's first re-split (its steady state)
                step(n, f"warm-{n}")
        for _ in range(ROUNDS):
            for name, step in steps.items():
                times[name] += _time_loop(step, seconds / ROUNDS, len(times[name]),
                                          cpu[name])
    return {name: _summary(times[name], cpu[name]) for name in _LOOPS}


#: The throughput loops, in the order their slices alternate.
_LOOPS = ("inprocess", "floor", "floor_without_resplit")


def _argon2id(profile: KdfProfile) -> float:
    """Seconds for one Argon2id with the device's parameters and input sizes."""
    secret, salt = secrets.token_bytes(64), secrets.token_bytes(16)
    began = time.perf_counter()
    hash_secret_raw(secret, salt, time_cost=profile.time_cost,
                    memory_cost=profile.memory_cost_kib, parallelism=profile.parallelism,
                    hash_len=32, type=Type.ID)
    return time.perf_counter() - began


#: The name device/_pinkey.py's derive_pin_seed calls Argon2id by.
_ARGON2ID = "argon2id"


@contextmanager
def _argon2id_in_flow(seconds: list[float]) -> Iterator[None]:
    """Time the device's own Argon2id call (the one name ``derive_pin_seed`` looks up),
    for as long as the block runs. Timed in place, the rest of an authorization is a
    clean difference; Argon2id timed alone varies too much between calls for that."""
    original: Callable[..., bytearray] = getattr(_pinkey, _ARGON2ID)

    def timed(*args: Any, **kwargs: Any) -> bytearray:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - began)

    setattr(_pinkey, _ARGON2ID, timed)
    try:
        yield
    finally:
        setattr(_pinkey, _ARGON2ID, original)


def _interactive(directory: Path, runs: int) -> dict[str, Any]:
    """PIN to result with the INTERACTIVE KDF, between Argon2id calls timed alone."""
    profile = KdfProfile.INTERACTIVE
    server: dict[str, float] = collections.defaultdict(float)
    totals: list[float] = []
    phases: list[dict[str, float]] = []
    in_flow: list[float] = []
    with _vault(directory, profile, 1) as vault:
        _time_server(vault.server, server)
        _argon2id(profile)  # warm: the first 64 MiB allocation faults in fresh pages
        alone = [_argon2id(profile)]
        with _argon2id_in_flow(in_flow):
            for n in range(runs):
                server.clear()
                began = time.perf_counter()
                vault.authorize(0, f"interactive-{n}")
                totals.append(time.perf_counter() - began)
                phases.append(dict(server))
                alone.append(_argon2id(profile))
    return _interactive_summary(profile, totals, in_flow, alone, phases)


def _interactive_summary(profile: KdfProfile, totals: list[float], in_flow: list[float],
                         alone: list[float], phases: list[dict[str, float]]) -> dict[str, Any]:
    def ms(values: Iterator[float] | list[float]) -> float:
        return round(statistics.median(values) * 1e3, 3)

    server = {name: ms(p[name] for p in phases) for name in _ROUND_TRIPS}
    return {
        "pin_to_result_ms": ms(totals),
        "argon2id_ms": ms(alone),
        "argon2id_in_flow_ms": ms(in_flow),
        # Each run's total less that run's own Argon2id call: no Argon2id jitter in it.
        "rest_ms": ms(t - a for t, a in zip(totals, in_flow, strict=True)),
        "server_ms": server,
        "device_ms": ms(t - a - sum(p.values())
                        for t, a, p in zip(totals, in_flow, phases, strict=True)),
        "samples_ms": {"pin_to_result": [round(t * 1e3, 1) for t in totals],
                       "argon2id_in_flow": [round(t * 1e3, 1) for t in in_flow],
                       "argon2id_alone": [round(t * 1e3, 1) for t in alone]},
        "kdf": {"time_cost": profile.time_cost, "memory_cost_kib": profile.memory_cost_kib,
                "parallelism": profile.parallelism},
        "runs": len(totals),
    }


def _machine(directory: Path) -> dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(affinity(0)) if affinity is not None else os.cpu_count(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        # pysodium (ristretto255) loads the system libsodium; PyNaCl bundles its own.
        "libsodium": pysodium.sodium.sodium_version_string().decode(),
        "pynacl": metadata.version("pynacl"),
        "argon2_cffi": metadata.version("argon2-cffi"),
        "cryptography": metadata.version("cryptography"),
        "sqlite": sqlite3.sqlite_version,
        "filesystem": _filesystem(directory),
    }


def _proc_field(path: str, name: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines
                 if line.startswith(name) and ":" in line), None)


def _filesystem(directory: Path) -> str:
    """The type of the filesystem the databases live on (fsync cost depends on it)."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    target = directory.resolve()
    best = max((m for m in mounts if target.is_relative_to(m[0])), default=None,
               key=lambda m: len(m[0]))
    return "unknown" if best is None else f"{best[1]} ({best[0]})"


@contextmanager
def _scratch(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="splitvault-bench-", dir=workdir))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- the public entry points -----------------------------------------------------------


def run(*, seconds: float = 3.0, workdir: Path | None = None,
        interactive_runs: int = 5) -> dict[str, Any]:
    """Measure everything once; a JSON-able dict (see benchmarks/README.md).

    In-process, floor and the floor less the re-split each run for about ``seconds``;
    their databases are created on ``workdir``'s filesystem (a temporary directory if
    None) and removed afterwards.
    """
    if not seconds > 0 or interactive_runs < 1:
        raise ValueError("seconds must be positive and interactive_runs at least 1")
    with _scratch(workdir) as directory:
        # Counting needs sys.setprofile, so it is skipped when run under a profiler.
        counts = count_operations(directory / "count") if sys.getprofile() is None else None
        settled = settle()  # other work's dirty pages written back first (_disk.py)
        throughput = _throughput(directory, seconds)
        interactive = _interactive(directory / "interactive", interactive_runs)
        machine = _machine(directory)
    inprocess, floor = throughput["inprocess"], throughput["floor"]
    ratio = inprocess["per_s"] / floor["per_s"]
    return {
        "inprocess_auth_per_s": inprocess["per_s"],
        "floor_auth_per_s": floor["per_s"],
        "ratio": round(ratio, 3),
        "resplit": _resplit_cost(throughput, counts),
        "latency_ms": {name: {"mean": stats["mean_ms"], "median": stats["median_ms"],
                              "cpu": stats["cpu_ms"]}
                       for name, stats in throughput.items()},
        "interactive": interactive,
        "targets": {"ratio_min": TARGET_RATIO, "ratio_met": ratio >= TARGET_RATIO,
                    "rest_ms_max": TARGET_REST_MS,
                    "rest_met": interactive["rest_ms"] < TARGET_REST_MS},
        "machine": {**machine, "disk_settle_s": settled},
        "counts": {
            "inprocess_authorizations": inprocess["count"],
            "floor_iterations": floor["count"],
            "floor_without_resplit_iterations": throughput["floor_without_resplit"]["count"],
            "interactive_runs": interactive_runs,
            "per_authorization": None if counts is None else counts["authorization"],
            "floor_matches": None if counts is None
            else counts["authorization"] == counts["floor"],
        },
    }


def _resplit_cost(throughput: dict[str, dict[str, float]],
                  counts: dict[str, dict[str, int]] | None) -> dict[str, Any]:
    """What the re-split after every payment costs: the floor against the same loop
    without the re-split's operations (both bare, so the difference is the operations
    themselves: the extra device commits and WAL checkpoint above all), and the
    in-process loop against that floor (what re-split and protocol cost together)."""
    inprocess, floor = throughput["inprocess"], throughput["floor"]
    without = throughput["floor_without_resplit"]
    cost = floor["mean_ms"] - without["mean_ms"]
    return {
        "floor_without_auth_per_s": without["per_s"],
        "cost_ms": round(cost, 3),
        "cost_cpu_ms": round(floor["cpu_ms"] - without["cpu_ms"], 3),
        "share_of_floor": round(cost / floor["mean_ms"], 3),
        "inprocess_ratio_to_floor_without": round(inprocess["per_s"] / without["per_s"], 3),
        # The re-split's operations, by kind: a real authorization's less the floor's
        # without them (None when not counted).
        "operations": None if counts is None else dict(
            collections.Counter(counts["authorization"])
            - collections.Counter(counts["floor_without_resplit"])),
    }


def render(result: dict[str, Any]) -> str:
    """``result`` of :func:`run` as a table for people."""
    m, i, t, lat = result["machine"], result["interactive"], result["targets"], result["latency_ms"]
    resplit = result["resplit"]
    kdf = i["kdf"]
    server = " / ".join(f"{i['server_ms'][k]:.1f}" for k in _ROUND_TRIPS)
    per_auth = result["counts"]["per_authorization"]
    matches = {True: "yes", False: "NO", None: "not checked (profiler active)"}
    lines = [
        f"splitvault bench: {m['usable_cores']} cores ({m['cpu']}), {m['python']}, "
        f"libsodium {m['libsodium']}, PyNaCl {m['pynacl']}, SQLite {m['sqlite']}, "
        f"{m['filesystem']}",
        "",
        _row("in-process authorizations, TEST_ONLY KDF", f"{result['inprocess_auth_per_s']:.1f}/s",
             _latency(lat["inprocess"])),
        _row("floor: same crypto and commits, bare loop", f"{result['floor_auth_per_s']:.1f}/s",
             _latency(lat["floor"])),
        _row("ratio in-process / floor", f"{result['ratio']:.2f}",
             _verdict(t["ratio_met"], f">= {t['ratio_min']}")),
        _row("floor less the re-split's operations",
             f"{resplit['floor_without_auth_per_s']:.1f}/s",
             _latency(lat["floor_without_resplit"])),
        _row("  the re-split after every payment costs",
             f"{resplit['cost_ms']:+.2f} ms",
             f"({resplit['share_of_floor']:.0%} of the floor; CPU "
             f"{resplit['cost_cpu_ms']:+.2f} ms)"),
        _row("  ratio in-process / floor less the re-split",
             f"{resplit['inprocess_ratio_to_floor_without']:.2f}"),
        "",
        _row(f"PIN to result, INTERACTIVE KDF (median of {i['runs']})",
             f"{i['pin_to_result_ms']:.1f} ms"),
        _row("  Argon2id, timed in the flow", f"{i['argon2id_in_flow_ms']:.1f} ms",
             f"(alone, t={kdf['time_cost']} m={kdf['memory_cost_kib'] // 1024} MiB "
             f"p={kdf['parallelism']}: {i['argon2id_ms']:.1f} ms)"),
        _row("  everything else", f"{i['rest_ms']:.1f} ms",
             _verdict(t["rest_met"], f"< {t['rest_ms_max']:g} ms")),
        _row("    server: evaluate / authorize", f"{server} ms"),
        _row("    device, less Argon2id", f"{i['device_ms']:.1f} ms"),
        "",
        f"floor performs the operations of one authorization: "
        f"{matches[result['counts']['floor_matches']]}"
        + ("" if per_auth is None else f" ({sum(per_auth.values())} library calls and SQL "
                                       f"statements, {per_auth.get('SQL BEGIN IMMEDIATE', 0)} "
                                       "durable commits)"),
    ]
    return "\n".join(lines)


def _row(label: str, value: str, note: str = "") -> str:
    return f"  {label:<50} {value:>14}   {note}".rstrip()


def _latency(stats: dict[str, float]) -> str:
    return (f"mean {stats['mean']:.2f} ms, median {stats['median']:.2f} ms, "
            f"CPU {stats['cpu']:.2f} ms")


def _verdict(met: bool, target: str) -> str:
    return f"target {target}: {'met' if met else 'NOT MET'}"
