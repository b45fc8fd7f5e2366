"""What each side holds at rest: one card's row, read straight from each SQLite file.

The security lab shows these rows as stored bytes, not as the library describes them,
so a visitor sees the real thing. The readers open the files read-only, beside the
live connections (WAL lets readers and the writer share the file).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Field", "FileInfo", "files_of", "preview", "read_device_row", "read_only",
           "read_server_row"]

_HEAD = 5
"""Bytes shown from the start of a value: enough to see it is random, too few to use."""
_TAIL = 2
KEY_ID_LEN = 8
"""A value wrapped under the key-encryption key starts with that key's 8-byte id
(``server/_kek.py``: kid || nonce || ciphertext || tag), so every wrapped value of one
server begins alike. Shown apart, or it would look like a reused nonce."""


@dataclass(frozen=True)
class Field:
    """One column of a stored row, ready to show: the value is already cut short."""

    name: str
    value: str
    size: str = ""
    secret: bool = False
    """Random key material (shown as hex), as opposed to plain metadata."""


@dataclass(frozen=True)
class FileInfo:
    name: str
    size: int


def preview(data: bytes) -> str:
    """``8a1f03c2b4…a9f0``: the first and last bytes as hex, never a whole key."""
    if len(data) <= _HEAD + _TAIL:
        return data.hex()
    return f"{data[:_HEAD].hex()}…{data[-_TAIL:].hex()}"


def _blob(name: str, data: object) -> Field:
    if not isinstance(data, bytes):
        return Field(name, "(none)")
    return Field(name, preview(data), f"{len(data)} B", secret=True)


def _wrapped(name: str, data: object) -> Field:
    """A wrapped value without its key id (shown once, as ``wrapped by``): the preview
    starts at the nonce; the size is the whole stored value."""
    if not isinstance(data, bytes) or len(data) <= KEY_ID_LEN:
        return _blob(name, data)
    return Field(name, preview(data[KEY_ID_LEN:]), f"{len(data)} B", secret=True)


def _key_id(*values: object) -> Field:
    ids = {v[:KEY_ID_LEN] for v in values if isinstance(v, bytes) and len(v) > KEY_ID_LEN}
    shown = "(none)" if not ids else " ".join(sorted(kid.hex() for kid in ids))
    return Field("wrapped by", f"key {shown}")


def _text(name: str, value: object) -> Field:
    shown = "(none)" if value is None else str(value)
    if len(shown) > 15:  # a card id: enough to tell two apart
        shown = f"{shown[:8]}…{shown[-4:]}"
    return Field(name, shown)


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the SQLite file at ``path`` that cannot write to it (the lab
    only looks)."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        yield conn


def read_server_row(path: Path, card_id: str) -> list[Field]:
    """The server's ``cards`` row for ``card_id`` (empty if it has none)."""
    with read_only(path) as conn:
        row = conn.execute(
            "SELECT card_id, device_key, verifier, oprf_key, share, guesses_used, locked "
            "FROM cards WHERE card_id = ?", (card_id,)).fetchone()
    if row is None:
        return []
    return [
        _text("card_id", row[0]),
        _blob("device_key", row[1]),
        _blob("verifier", row[2]),
        _key_id(row[3], row[4]),
        _wrapped("oprf_key", row[3]),
        _wrapped("share", row[4]),
        _text("guesses_used", row[5]),
        _text("locked", "yes" if row[6] else "no"),
    ]


def read_device_row(path: Path, card_id: str) -> list[Field]:
    """The device's ``cards`` row for ``card_id`` (empty if it has none)."""
    with read_only(path) as conn:
        row = conn.execute(
            "SELECT card_id, brand, last4, expiry, sealed_record, device_share, sign_seed, "
            "device_secret, salt, kdf_t, kdf_m, kdf_p, server_key, security_phrase "
            "FROM cards WHERE card_id = ?", (card_id,)).fetchone()
    if row is None:
        return []
    return [
        _text("card_id", row[0]),
        Field("in clear", f"{row[1]} {row[2]} {row[3]}"),
        _blob("sealed_record", row[4]),
        _blob("device_share", row[5]),
        _blob("sign_seed", row[6]),
        _blob("device_secret", row[7]),
        _blob("salt", row[8]),
        _text("kdf", f"t={row[9]} {_memory(row[10])} p={row[11]}"),
        _blob("server_key", row[12]),
        Field("phrase", "(none)" if row[13] is None else f"“{row[13]}”"),
    ]


def _memory(kib: int) -> str:
    return f"{kib // 1024} MiB" if kib >= 1024 else f"{kib} KiB"


def files_of(paths: list[Path]) -> list[FileInfo]:
    return [FileInfo(path.name, path.stat().st_size) for path in paths if path.exists()]
