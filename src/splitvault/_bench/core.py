"""What one authorization costs, against the least it could cost.

One :func:`run` measures:

1. **In-process authorizations per second**: a ``ShareServer`` and a ``Device`` in one
   process, with the ``TEST_ONLY`` KDF so Argon2id does not hide the protocol's own cost.
2. **The floor**: the same library calls (same libraries, same number of each) and the
   same SQL statements and COMMITs (same schema and pragmas, same filesystem) in a bare
   loop, with none of the protocol's code around them.
3. **Their ratio**, in-process / floor. Target: at least 0.5.
4. **PIN-to-result latency** with the default ``INTERACTIVE`` KDF, split into Argon2id
   (timed alone with the same parameters) and everything else. Target: the rest < 30 ms.

The floor, per authorization, read from the code (:func:`count_operations` checks it
against one real authorization, so the two cannot drift apart silently):

=======  ==============  ================================================================
server   challenge       2 random; BEGIN, DELETE expired challenges, INSERT challenge,
                         COMMIT
device   blind           ristretto255 scalar_random, scalar_reduce (canonical check),
                         2 SHA-512 (expand_message_xmd), from_hash, scalarmult
device   sign            Ed25519 keygen from the device seed, sign (evaluate request)
server   evaluate        BEGIN, SELECT card, SELECT challenge; Ed25519 verify;
                         XChaCha20-Poly1305 decrypt (KEK unwrap of the OPRF key);
                         scalar_reduce, is_valid_point, scalarmult (BlindEvaluate);
                         UPDATE card, UPDATE challenge, SELECT audit head, BLAKE2b,
                         INSERT audit, COMMIT
device   finalize        scalar_reduce, is_valid_point, scalar_invert, scalarmult, SHA-512
device   PIN key         Argon2id (TEST_ONLY), HKDF-SHA512
device   envelope        2 random; X25519 base and scalarmult, HKDF-SHA512, XChaCha encrypt
device   sign            Ed25519 keygen from the PIN seed, sign (authorize request)
server   authorize       BLAKE2b x2 (ledger digests); BEGIN, SELECT card, SELECT challenge,
                         UPDATE challenge, Ed25519 verify, UPDATE card, SELECT ledger,
                         COMMIT; X25519 base (the server's own public key, recomputed) and
                         scalarmult, HKDF-SHA512, XChaCha decrypt (envelope); XChaCha
                         decrypt x2 (KEK unwrap of the share, card record); BEGIN, INSERT
                         ledger, COMMIT; 1 random, XChaCha encrypt (KEK wrap of the result);
                         BEGIN, UPDATE ledger, SELECT audit head, BLAKE2b, INSERT audit,
                         COMMIT
=======  ==============  ================================================================

Not in the floor, so counted as protocol overhead: the device's read of its own store,
message encoding, dataclasses, checks, the card record's parsing, the simulated acquirer.
"""

from __future__ import annotations

import collections
import hashlib
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
from ..device import Device
from ..server import ShareServer
from ..server._db import Database

__all__ = ["count_operations", "render", "run"]

#: The issue's targets: the protocol at least half as fast as its floor, and PIN to
#: result within 30 ms of the Argon2id call itself.
TARGET_RATIO = 0.5
TARGET_REST_MS = 30.0
#: Cards enrolled for the throughput run, used in turn (as a wallet with a few cards).
CARDS = 4
#: In-process and floor alternate in this many slices, so a slow spell of the disk
#: (fsync time varies) falls on both rather than on one.
ROUNDS = 3
_PIN = "739184"
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
    """Counts library calls (``sys.setprofile``) and SQL statements (trace callback)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._conn = conn

    def __enter__(self) -> _OpCounter:
        if sys.getprofile() is not None:
            raise RuntimeError("cannot count operations while a profiler is active")
        self._conn.set_trace_callback(self._statement)
        sys.setprofile(self._event)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        self._conn.set_trace_callback(None)

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
        verb = sql.split(None, 1)[0].upper()
        table = _TABLE.search(sql)
        if table is not None and verb not in ("BEGIN", "COMMIT", "ROLLBACK"):
            verb = f"{verb} {table.group(1)}"
        self.counts[f"SQL {verb}"] += 1


def count_operations(workdir: Path) -> dict[str, dict[str, int]]:
    """Library calls and SQL statements of one real authorization and of one floor
    iteration, by name. They must be equal; ``tests/test_bench.py`` says so."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _vault(Path(tempfile.mkdtemp(dir=workdir)), KdfProfile.TEST_ONLY, 1) as vault:
        vault.authorize(0, "count-warm")  # first use opens connections and caches
        with _OpCounter(vault.server._db.connection()) as real:
            vault.authorize(0, "count")
    with _floor(Path(tempfile.mkdtemp(dir=workdir)), 1) as floor:
        floor.authorize(0, 0)
        with _OpCounter(floor.conn) as bare:
            floor.authorize(0, 1)
    return {"authorization": dict(sorted(real.counts.items())),
            "floor": dict(sorted(bare.counts.items()))}


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


