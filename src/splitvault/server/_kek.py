"""The server's key-encryption key (KEK): its file, its id, wrapping and rotation.

Every secret the server stores (per-card OPRF keys and shares, its own X25519 and MAC
keys, recorded payment results) is wrapped under the KEK with XChaCha20-Poly1305.
The associated data binds each wrapped value to the KEK id, its purpose and its row,
so a wrapped share moved to another card's row fails to open.

The KEK lives in its own file (mode 0600), ideally on other storage than the database
or in a KMS: a copy of the database alone then yields nothing but ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from .._errors import ConfigurationError, TamperedData
from ..crypto.encoding import encode
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.sealing import open_sealed, seal

__all__ = ["Kek"]

_MAGIC = "splitvault-kek-v1"
_KID_LEN = 8
_KEY_LEN = 32
_D_WRAP = b"splitvault/v1/kek-wrap"


class Kek:
    """A 256-bit key-encryption key with an 8-byte key id."""

    __slots__ = ("_key", "_path", "kid")

    def __init__(self, kid: bytes, key: bytearray) -> None:
        if len(kid) != _KID_LEN or len(key) != _KEY_LEN:
            raise ConfigurationError("key-encryption key has the wrong size")
        self.kid = kid
        self._key = key
        self._path: str | None = None

    @classmethod
    def generate(cls) -> Kek:
        return cls(secrets.token_bytes(_KID_LEN), bytearray(secrets.token_bytes(_KEY_LEN)))

    @property
    def kid_hex(self) -> str:
        return self.kid.hex()

    def __repr__(self) -> str:
        return f"<Kek id={self.kid_hex}>"

    def describe(self) -> str:
        """A non-secret label: the key file's path, if loaded from one."""
        return self._path if self._path is not None else f"key {self.kid_hex} (not from a file)"

    # -- files ---------------------------------------------------------------------------

    def write(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write the key to ``path`` with mode 0600, durably (fsync file and directory)."""
        path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        line = self.line() + "\n"
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise ConfigurationError(f"key file already exists: {path}") from None
        except OSError as exc:
            raise ConfigurationError(f"cannot write key file {path}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, line.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path.parent)

    def material(self) -> bytes:
        """The raw key (for the inspector's leak scans only)."""
        return bytes(self._key)

    def line(self) -> str:
        """This key as one key-file line (secret: goes only into a 0600 file)."""
        return f"{_MAGIC} {self.kid_hex} {base64.b64encode(self._key).decode('ascii')}"

    @classmethod
    def load(cls, path: str | Path) -> Kek:
        """Read a key file of one key; ``ConfigurationError`` if missing, readable by
        others, malformed, or holding several keys (a keyring: see :meth:`load_all`)."""
        keys = cls.load_all(path)
        if len(keys) != 1:
            for key in keys:
                key.wipe()
            raise ConfigurationError(f"key file {path} holds {len(keys)} keys; expected one")
        return keys[0]

    @classmethod
    def load_all(cls, path: str | Path) -> list[Kek]:
        """Every key in a key file, one per line, oldest first (a rotation appends)."""
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ConfigurationError(f"key file not found: {path}") from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read key file {path}: {exc.strerror}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"key file {path} is accessible by group or others; run: chmod 600 {path}"
            )
        try:
            text = path.read_bytes().decode("ascii")
        except (OSError, UnicodeDecodeError):
            raise ConfigurationError(f"key file {path} is malformed") from None
        keys: list[Kek] = []
        try:
            for line in text.strip().splitlines():
                parts = line.strip().split(" ")
                if len(parts) != 3 or parts[0] != _MAGIC:
                    raise ValueError
                kek = cls(bytes.fromhex(parts[1]),
                          bytearray(base64.b64decode(parts[2], validate=True)))
                kek._path = str(path)
                keys.append(kek)
            if not keys:
                raise ValueError
        except ConfigurationError:
            for key in keys:
                key.wipe()
            raise
        except (ValueError, binascii.Error):
            for key in keys:
                key.wipe()
            raise ConfigurationError(
                f"key file {path} is malformed (expected '{_MAGIC} <id> <key>' lines)"
            ) from None
        return keys

    # -- wrapping ------------------------------------------------------------------------

    def wrap(self, purpose: str, row: str, secret: bytes | bytearray) -> bytes:
        """``kid || nonce || ciphertext || tag`` of ``secret`` for this purpose and row."""
        return self.kid + seal(self._key, secret, self._aad(self.kid, purpose, row))

    def unwrap(self, purpose: str, row: str, blob: bytes) -> bytearray:
        """The secret; the caller wipes it. ``TamperedData`` if it was altered or moved,
        ``ConfigurationError`` if it was wrapped under another KEK."""
        kid = blob[:_KID_LEN]
        if not secrets.compare_digest(kid, self.kid):
            raise ConfigurationError(
                f"a stored value is wrapped under key id {kid.hex()}, "
                f"but the loaded key is {self.kid_hex}: wrong key file?"
            )
        try:
            return open_sealed(self._key, blob[_KID_LEN:], self._aad(kid, purpose, row))
        except AuthenticationFailed:
            raise TamperedData() from None

    @staticmethod
    def _aad(kid: bytes, purpose: str, row: str) -> bytes:
        return encode(_D_WRAP, kid, purpose.encode(), row.encode())

    def wipe(self) -> None:
        wipe(self._key)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
