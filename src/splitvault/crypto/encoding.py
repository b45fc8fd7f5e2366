"""Domain-separated, length-prefixed encoding of the byte strings we sign, MAC and bind.

Every signed or authenticated message is ``encode(domain, field, ...)``: a 2-byte
length and the domain tag, then each field as a 4-byte big-endian length and its
bytes. Length prefixes make the encoding injective (no two field lists give the same
bytes, so "ab"+"c" never collides with "a"+"bc"), and the domain tag keeps a
signature made for one purpose from verifying for another.
"""

from __future__ import annotations

from .errors import DecodeError

__all__ = ["decode", "encode", "u64"]

_MAX_FIELD = 2**32 - 1
_BYTES = (bytes, bytearray)  # a tuple: ``bytes | bytearray`` would be built per field


def u64(value: int) -> bytes:
    """An unsigned integer as 8 big-endian bytes (amounts, timestamps, counters)."""
    if not 0 <= value < 2**64:
        raise ValueError("integer out of range for u64")
    return value.to_bytes(8, "big")


def encode(domain: bytes, *fields: bytes | bytearray) -> bytes:
    """``len16(domain) || domain || (len32(field) || field)*``."""
    size = len(domain)
    if not 0 < size < 2**16:
        raise ValueError("domain tag must be 1 to 65535 bytes")
    # Appended into one buffer: every signed message of a payment goes through here
    # (about 40 per authorization), and this is a quarter faster than joining parts.
    out = bytearray(size.to_bytes(2, "big"))
    out += domain
    for field in fields:
        if not isinstance(field, _BYTES):
            raise TypeError("fields must be bytes")
        size = len(field)
        if size > _MAX_FIELD:
            raise ValueError("field too long")
        out += size.to_bytes(4, "big")
        out += field
    return bytes(out)


def decode(domain: bytes, data: bytes, count: int) -> list[bytes]:
    """The ``count`` fields of ``data``, which must have been encoded under ``domain``.

    Raises ``DecodeError`` for anything else: another domain, truncation, trailing
    bytes, or a different number of fields.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    view = memoryview(data)
    if len(view) < 2:
        raise DecodeError("truncated message")
    dlen = int.from_bytes(view[:2], "big")
    if bytes(view[2 : 2 + dlen]) != domain:
        raise DecodeError("wrong message domain")
    pos = 2 + dlen
    fields: list[bytes] = []
    for _ in range(count):
        if pos + 4 > len(view):
            raise DecodeError("truncated message")
        flen = int.from_bytes(view[pos : pos + 4], "big")
        pos += 4
        if pos + flen > len(view):
            raise DecodeError("truncated message")
        fields.append(bytes(view[pos : pos + flen]))
        pos += flen
    if pos != len(view):
        raise DecodeError("trailing bytes after message")
    return fields

