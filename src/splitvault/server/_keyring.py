"""The keyring: every key-encryption key a server may need, and which one is primary.

A stored wrapped value begins with the 8-byte id of the key that wrapped it, so
unwrapping routes by that prefix to whichever key in the ring has it. New values are
wrapped under the *primary*, which the store names (table ``keyring``), not this
process: so when ``splitvault keys rotate`` promotes a new key while servers run,
each of them sees it at its next refresh (every :data:`REFRESH_SECONDS`, and before
any wrap once that long has passed) and re-reads its key files to load it. A server
never wraps under a key the store does not call primary, and a key leaves the ring
(``keys retire``) only when no stored value still names it.

A key file holds one or more keys, one line each (``splitvault-kek-v1 <id> <key>``);
a ring may also hold HSM keys (``pkcs11:`` URIs), each a source of one key. A server
cannot pick up a *new* HSM key by itself (the store never names a module to load,
as that would let whoever writes the database choose a library this process runs):
it is given the key's URI at start, which is why an HSM rotation asks for servers
started with both sources.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .._errors import ConfigurationError
from ._kek import Kek
from ._keysource import KeySource, check_file_spec, is_pkcs11_spec, load_key_source

__all__ = ["REFRESH_SECONDS", "Keyring", "append_key", "load_file_keys", "remove_key"]

REFRESH_SECONDS = 2.0
"""How stale a server's view of the primary key may get: a rotation waits about this
long for every running server to report the new key before promoting it."""


class Keyring:
    """Key sources by id, and the primary one. Thread-safe."""

    def __init__(self, specs: Sequence[str], *, clock: Callable[[], float] = time.monotonic,
                 preloaded: Sequence[KeySource] = ()) -> None:
        self._specs = list(specs)
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[bytes, KeySource] = {}
        self._opened: set[str] = set()  # pkcs11 specs loaded: one key each, never changes
        for key in preloaded:
            self._keys[key.kid] = key
        try:
            self._load()
        except BaseException:
            for key in self._keys.values():  # log out of any token already opened
                key.wipe()
            raise
        if not self._keys:
            raise ConfigurationError("no key-encryption key given")
        self._primary: KeySource | None = None
        self.refreshed_at = float("-inf")

    @classmethod
    def of(cls, *keys: KeySource) -> Keyring:
        """A ring of keys already in memory (tests, the demo, a one-off tool)."""
        return cls((), preloaded=keys)

    def _load(self) -> None:
        for spec in self._specs:
            if spec in self._opened:
                continue
            keys = _load_spec(spec)
            if is_pkcs11_spec(spec):
                self._opened.add(spec)
            for key in keys:
                if key.kid in self._keys:
                    key.wipe()
                else:
                    self._keys[key.kid] = key

    def reload(self) -> None:
        """Re-read the key files: pick up keys added since (a rotation in progress)."""
        with self._lock:
            self._load()

    @property
    def kids(self) -> list[bytes]:
        with self._lock:
            return list(self._keys)

    def has(self, kid: bytes) -> bool:
        with self._lock:
            return kid in self._keys

    def get(self, kid: bytes) -> KeySource | None:
        with self._lock:
            return self._keys.get(kid)

    def add(self, key: KeySource) -> None:
        """Hold ``key`` too (a rotation's new HSM key, in the operator's process)."""
        with self._lock:
            if key.kid in self._keys:
                raise ConfigurationError(f"key {key.kid_hex} is already in the keyring")
            self._keys[key.kid] = key

    def newest(self) -> KeySource:
        """The key a new database starts with: the last one given."""
        with self._lock:
            return list(self._keys.values())[-1]

    def use_primary(self, kid: bytes) -> None:
        """Wrap new values under ``kid`` from now on (reloading files to find it)."""
        if not self.has(kid):
            self.reload()
        with self._lock:
            key = self._keys.get(kid)
            if key is None:
                raise ConfigurationError(
                    f"the database's primary key-encryption key is {kid.hex()}, which this "
                    f"server was not given ({', '.join(k.hex() for k in self._keys)}): "
                    "wrong key file?")
            self._primary = key

    @property
    def primary(self) -> KeySource:
        with self._lock:
            if self._primary is None:
                raise ConfigurationError("no primary key-encryption key chosen")
            return self._primary

    def wrap(self, purpose: str, row: str, secret: bytes | bytearray) -> bytes:
        return self.primary.wrap(purpose, row, secret)

    def unwrap(self, purpose: str, row: str, blob: bytes) -> bytearray:
        kid = bytes(blob[:8])
        with self._lock:
            key = self._keys.get(kid)
        if key is None:
            self.reload()
            with self._lock:
                key = self._keys.get(kid)
        if key is None:
            raise ConfigurationError(
                f"a stored value is wrapped under key id {kid.hex()}, which this server "
                "was not given: wrong key file?")
        return key.unwrap(purpose, row, blob)

    def material(self) -> dict[str, bytes]:
        """The raw bytes of every key held in memory, by id (file keys only: an HSM key
        never leaves its token). For the inspector's leak scans."""
        with self._lock:
            return {kid.hex(): key.material() for kid, key in self._keys.items()
                    if isinstance(key, Kek)}

    def wipe(self) -> None:
        with self._lock:
            for key in self._keys.values():
                key.wipe()

    def __repr__(self) -> str:
        primary = self._primary.kid_hex if self._primary is not None else "none"
        return f"<Keyring keys={len(self._keys)} primary={primary}>"


def _load_spec(spec: str) -> list[KeySource]:
    if is_pkcs11_spec(spec):
        return [load_key_source(spec)]
    check_file_spec(spec)
    return list(load_file_keys(Path(spec)))


def load_file_keys(path: Path) -> list[Kek]:
    """Every key in a key file (one per line); the file must be private (0600)."""
    return Kek.load_all(path)


def append_key(path: Path, key: Kek) -> None:
    """Add ``key`` to the key file at ``path``: written to a new file, fsynced, then
    renamed over the old one, so the file always holds either the old keys or the old
    keys plus the new one."""
    lines = path.read_text("ascii").splitlines() if path.exists() else []
    _rewrite(path, [*lines, key.line()])


def remove_key(path: Path, kid: bytes, *, delete_if_empty: bool = False) -> bool:
    """Drop the key ``kid`` from the key file (after ``keys retire`` verified it). If
    it was the last one, delete the file when ``delete_if_empty`` (the database's
    primary is elsewhere, an HSM key say), else refuse. True if the file was deleted."""
    lines = path.read_text("ascii").splitlines()
    kept = [ln for ln in lines if ln.split(" ")[1:2] != [kid.hex()]]
    if len(kept) == len(lines):
        raise ConfigurationError(f"key {kid.hex()} is not in {path}")
    if not kept:
        if not delete_if_empty:
            raise ConfigurationError(f"{path} would hold no key after removing {kid.hex()}")
        path.unlink()
        _fsync_dir(path.parent)
        return True
    _rewrite(path, kept)
    return False


def _rewrite(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, ("\n".join(lines) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
