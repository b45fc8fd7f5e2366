"""Online key rotation, as small explicit steps that a crash at any point cannot hurt.

``keys rotate`` runs them in order; each can also be run (or re-run) on its own:

1. **add**: the new key goes into the key file (the old ones stay) and into the store
   as ``pending``. Nothing is wrapped under it yet.
2. **wait**: every running server (a heartbeat in the last few seconds) must report
   that it holds the new key. One that cannot load it would fail to unwrap what
   others wrap under it, so rotation stops here and says which server lacks it.
3. **promote**: one transaction makes the new key primary. Servers follow within
   :data:`~._keyring.REFRESH_SECONDS`; until then one may still wrap under the old key,
   which is why the old key stays.
4. **rewrap**: every value not under the primary is re-wrapped, each by a
   compare-and-set, in batches; passes repeat until one finds nothing, after a grace
   period longer than a server's refresh interval.
5. **retire** (a separate command, ``keys retire``): refused while any stored value
   names the key; then the store marks it retired and the key file drops it.

Interrupted anywhere, every stored value is still wrapped under a key that is in the
key file and the store, so nothing is lost; re-running ``keys rotate`` resumes.

To or from an HSM key (``pkcs11:`` URI) the steps are the same; only step 1 and the
end of step 5 differ. :func:`add_hsm_key` creates the key in the token (refusing a
label that is taken) or, with ``existing``, takes one made before; either way it is
held by the operator's keyring and pending in the store. Servers never load an HSM
key on their own (see ``_keyring``): each must be started with the new URI beside
the old source, or step 2 stops. :func:`retire_hsm_key` retires it in the store and,
only when asked, destroys it in the token, after the store verified nothing names it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import ConfigurationError
from ..crypto.memory import wipe
from ._kek import Kek
from ._keyring import REFRESH_SECONDS, Keyring, append_key, remove_key
from ._keysource import KeySource, generate_key_source, is_pkcs11_spec, load_key_source
from ._store import AuditEvent, Store

if TYPE_CHECKING:
    from ._pkcs11 import Pkcs11Kek

__all__ = ["RotationReport", "add_hsm_key", "add_key", "promote", "retire", "retire_hsm_key",
           "rewrap", "wait_for_workers"]

LIVE_SECONDS = 3 * REFRESH_SECONDS
"""A server whose heartbeat is older than this is taken as stopped."""
BATCH = 500


@dataclass(frozen=True)
class RotationReport:
    old: str
    new: str
    rewrapped: int


def add_key(store: Store, keyring: Keyring, key_file: Path, now: float) -> Kek:
    """Step 1: a new key in the key file and, as pending, in the store. A pending key
    left by an interrupted rotation is resumed instead of adding another."""
    for record in store.key_records():
        if record.state == "pending" and keyring.has(record.kid):
            for kek in Kek.load_all(key_file):
                if kek.kid == record.kid:
                    return kek
    kek = Kek.generate()
    append_key(key_file, kek)
    keyring.reload()
    if not keyring.has(kek.kid):  # a key file new to this keyring (from an HSM key)
        keyring.add(kek)
    store.add_key(kek.kid, "pending", now,
                  AuditEvent("key_added", "", {"kid": kek.kid_hex}))
    return kek


def add_hsm_key(store: Store, keyring: Keyring, uri: str, now: float, *,
                existing: bool = False) -> KeySource:
    """Step 1 for a key in a PKCS#11 token: create it (``existing=False``; a label
    already taken is refused) or open one made before (``existing=True``: by ``keys
    generate --kek``, by the HSM's officers, or by a ``--to`` rotation being resumed).
    It joins ``keyring`` and, unless it is pending already, the store as pending."""
    if not is_pkcs11_spec(uri):
        raise ConfigurationError("the new key must be a pkcs11: URI (for a new file key, "
                                 "rotate without --to)")
    key = load_key_source(uri) if existing else generate_key_source(uri)
    try:
        record = next((r for r in store.key_records() if r.kid == key.kid), None)
        if record is not None and record.state != "pending":
            raise ConfigurationError(
                f"key {key.kid_hex} ({key.describe()}) is already {record.state} in this "
                "database; a rotation needs a key the database has not used")
        held = keyring.get(key.kid)
        if held is not None:  # also given with --kek: keep the ring's handle
            key.wipe()
            key = held
        else:
            keyring.add(key)
        if record is None:
            store.add_key(key.kid, "pending", now,
                          AuditEvent("key_added", "", {"kid": key.kid_hex, "kind": "pkcs11"}))
    except BaseException:
        if keyring.get(key.kid) is not key:
            key.wipe()
        raise
    return key


def wait_for_workers(store: Store, kid: bytes, *, timeout: float,
                     clock: Callable[[], float] = time.time,
                     sleep: Callable[[float], None] = time.sleep,
                     remedy: str | None = None) -> None:
    """Step 2: until every live server reports ``kid``; ``ConfigurationError`` naming
    those that do not after ``timeout`` seconds (and what to do: ``remedy``, or by
    default giving them the updated key file)."""
    deadline = time.monotonic() + timeout
    while True:
        lacking = [w.worker_id for w in store.workers(clock() - LIVE_SECONDS)
                   if kid not in w.kids]
        if not lacking:
            return
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"running servers do not have the new key {kid.hex()}: {', '.join(lacking)}; "
                + (remedy or "give every server the updated key file, then run "
                   "'splitvault keys rotate' again (nothing was changed yet)"))
        sleep(REFRESH_SECONDS / 4)


def promote(store: Store, keyring: Keyring, kid: bytes, now: float) -> str:
    """Step 3: ``kid`` becomes primary; returns the old primary's id."""
    old = next((k.kid.hex() for k in store.key_records() if k.state == "primary"), "")
    if not store.promote_key(kid, now, AuditEvent("key_rotated", "",
                                                  {"old": old, "new": kid.hex()})):
        raise ConfigurationError(f"key {kid.hex()} cannot be made primary")
    keyring.use_primary(kid)
    return old


def rewrap(store: Store, keyring: Keyring, *, grace: float = 2 * REFRESH_SECONDS,
           sleep: Callable[[float], None] = time.sleep) -> int:
    """Step 4: re-wrap every value not under the primary; how many were re-wrapped."""
    primary = keyring.primary.kid
    total = 0
    while True:
        done = _rewrap_pass(store, keyring, primary)
        total += done
        if done == 0:
            # A server that had not yet seen the promotion may have wrapped a value
            # under the old key since our pass began: wait past its refresh, look again.
            sleep(grace)
            if _rewrap_pass(store, keyring, primary) == 0:
                return total


def _rewrap_pass(store: Store, keyring: Keyring, primary: bytes) -> int:
    count = 0
    while True:
        refs = store.wrapped(not_under=primary, limit=BATCH)
        if not refs:
            return count
        progressed = 0
        for ref in refs:
            secret = keyring.unwrap(ref.purpose, ref.row, ref.blob)
            try:
                blob = keyring.wrap(ref.purpose, ref.row, secret)
            finally:
                wipe(secret)
            # Compare-and-set: a value a server rewrote meanwhile is left to it.
            if store.replace_wrapped(ref, blob):
                progressed += 1
        count += progressed
        if not progressed:
            return count


def retire(store: Store, key_file: Path | None, kid: bytes, now: float) -> bool:
    """Step 5: refuse while anything is wrapped under ``kid``; then retire it and drop
    it from the key file. True if that was the file's last key, so the file was deleted
    (the primary is elsewhere: an HSM key, another file)."""
    _retire_in_store(store, kid, now)
    if key_file is None:
        return False
    return remove_key(key_file, kid, delete_if_empty=True)


def retire_hsm_key(store: Store, key: Pkcs11Kek, now: float, *, destroy: bool = False) -> None:
    """Step 5 for a key in a token: retired in the store under the same checks; then,
    only if ``destroy``, deleted from the token (C_DestroyObject). Otherwise the key
    stays in the token for its officers to delete (``key.destroy_command()``)."""
    _retire_in_store(store, key.kid, now)
    if destroy:
        key.destroy()


def _retire_in_store(store: Store, kid: bytes, now: float) -> None:
    records = {k.kid: k for k in store.key_records()}
    if kid not in records:
        raise ConfigurationError(f"the database knows no key {kid.hex()}")
    if records[kid].state == "primary":
        raise ConfigurationError(f"key {kid.hex()} is the primary key; rotate first")
    remaining = store.count_by_kid().get(kid, 0)
    if remaining:
        raise ConfigurationError(
            f"{remaining} stored values are still wrapped under key {kid.hex()}; "
            "run 'splitvault keys rewrap' first (nothing was changed)")
    if records[kid].state != "retired" and not store.retire_key(
            kid, now, AuditEvent("key_retired", "", {"kid": kid.hex()})):
        raise ConfigurationError(f"key {kid.hex()} could not be retired; try again")
