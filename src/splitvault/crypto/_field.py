"""ristretto255 scalar-field and group operations for the threshold glue: all libsodium.

Every operation below is exactly one libsodium call (``crypto_core_ristretto255_scalar_*``,
``crypto_scalarmult_ristretto255[_base]``, ``crypto_core_ristretto255_add``), made through the
library handle pysodium already loaded (``pysodium.sodium``), as ``oprf.py`` uses it. Nothing
here computes on field elements or points in Python.

Why not pysodium's wrappers: each returns its result as immutable ``bytes`` built from a
ctypes buffer, two copies nobody can wipe. A Shamir polynomial's coefficients and every share
are secrets, so here libsodium writes each result straight into a ``bytearray`` (through a
ctypes view of its memory, the same trick as ``oprf._native``) that the caller wipes. Because
libsodium reads and writes exactly 32 (or 64) bytes through whatever pointer it gets, every
function checks its buffers' lengths before the call.
"""

from __future__ import annotations

import ctypes
import hmac
from collections.abc import Callable
from typing import Any

import pysodium

from ._threshold_errors import ThresholdError
from .memory import wipe

__all__ = [
    "SCALAR_LEN",
    "Rng",
    "add",
    "base_mult",
    "from_index",
    "invert",
    "is_canonical",
    "is_valid_point",
    "is_zero",
    "mul",
    "mult",
    "point_add",
    "random_scalar",
    "scalar_at",
    "sub",
]

SCALAR_LEN = 32
"""A ristretto255 scalar (and element) encoding: 32 bytes, little-endian for scalars."""

_WIDE_LEN = 64
"""Bytes reduced into one scalar: 512 bits mod L (about 2^252) leaves a bias below 2^-259,
the same wide reduction as RFC 9380 hash_to_field and RFC 9497 HashToScalar."""

_ZERO = bytes(SCALAR_LEN)

Rng = Callable[[int], bytes]
"""``rng(n)`` returns n random bytes; ``secrets.token_bytes`` unless a test injects one."""

_sodium: Any = pysodium.sodium


def _view(buf: bytes | bytearray) -> Any:
    # ctypes passes bytes as a pointer already; a bytearray needs a view of its own memory.
    if isinstance(buf, bytearray):
        return (ctypes.c_char * len(buf)).from_buffer(buf)
    return buf


def _need(length: int, *bufs: bytes | bytearray) -> None:
    for buf in bufs:
        if not isinstance(buf, bytes | bytearray):
            raise TypeError("expected bytes or bytearray")
        if len(buf) != length:
            raise ThresholdError(f"expected {length} bytes")


def _binary(name: str, a: bytes | bytearray, b: bytes | bytearray) -> bytearray:
    _need(SCALAR_LEN, a, b)
    out = bytearray(SCALAR_LEN)
    getattr(_sodium, name)(_view(out), _view(a), _view(b))  # void: cannot fail
    return out


def add(a: bytes | bytearray, b: bytes | bytearray) -> bytearray:
    """a + b mod L."""
    return _binary("crypto_core_ristretto255_scalar_add", a, b)


def sub(a: bytes | bytearray, b: bytes | bytearray) -> bytearray:
    """a - b mod L."""
    return _binary("crypto_core_ristretto255_scalar_sub", a, b)


def mul(a: bytes | bytearray, b: bytes | bytearray) -> bytearray:
    """a * b mod L."""
    return _binary("crypto_core_ristretto255_scalar_mul", a, b)


def invert(a: bytes | bytearray) -> bytearray:
    """1 / a mod L; ThresholdError for zero (libsodium returns -1)."""
    _need(SCALAR_LEN, a)
    out = bytearray(SCALAR_LEN)
    if _sodium.crypto_core_ristretto255_scalar_invert(_view(out), _view(a)) != 0:
        raise ThresholdError("zero has no inverse")
    return out


def _reduce(wide: bytes | bytearray) -> bytearray:
    _need(_WIDE_LEN, wide)
    out = bytearray(SCALAR_LEN)
    _sodium.crypto_core_ristretto255_scalar_reduce(_view(out), _view(wide))
    return out


def random_scalar(rng: Rng) -> bytearray:
    """A uniform scalar (possibly zero): 64 bytes of ``rng`` reduced mod L by libsodium.

    An injected rng that wants a given canonical scalar ``s`` returns ``s`` followed by 32
    zero bytes (the vectors and the RFC 9497 proof test do).
    """
    raw = rng(_WIDE_LEN)
    if not isinstance(raw, bytes | bytearray) or len(raw) != _WIDE_LEN:
        raise ThresholdError("rng returned the wrong number of bytes")
    wide = bytearray(raw)
    try:
        return _reduce(wide)
    finally:
        wipe(wide)


def scalar_at(value: bytes | bytearray, w: int) -> bytearray:
    """A wipeable copy of the ``w``-th 32-byte scalar of ``value``. A plain slice would leave
    a second, unreachable copy of a secret behind; a memoryview slice copies nothing."""
    if not (w >= 0 and (w + 1) * SCALAR_LEN <= len(value)):
        raise ThresholdError("scalar index out of range")
    out = bytearray(SCALAR_LEN)
    out[:] = memoryview(value)[w * SCALAR_LEN : (w + 1) * SCALAR_LEN]
    return out


def is_canonical(s: bytes | bytearray) -> bool:
    """32 bytes encoding a scalar below L (the only encoding libsodium's reduce returns)."""
    if not isinstance(s, bytes | bytearray) or len(s) != SCALAR_LEN:
        return False
    wide = bytearray(_WIDE_LEN)
    wide[:SCALAR_LEN] = s
    try:
        reduced = _reduce(wide)
        try:
            return hmac.compare_digest(reduced, s)
        finally:
            wipe(reduced)
    finally:
        wipe(wide)


def is_zero(s: bytes | bytearray) -> bool:
    """Constant-time test for the zero scalar (also the identity element's encoding)."""
    return hmac.compare_digest(s, _ZERO)


def from_index(index: int) -> bytes:
    """A public share index (a small positive int) as a scalar."""
    return index.to_bytes(SCALAR_LEN, "little")


def mult(s: bytes | bytearray, element: bytes) -> bytes:
    """s * element; ThresholdError if libsodium refuses (invalid element, identity result)."""
    _need(SCALAR_LEN, s, element)
    out = bytearray(SCALAR_LEN)
    if _sodium.crypto_scalarmult_ristretto255(_view(out), _view(s), element) != 0:
        raise ThresholdError("group operation failed")
    return bytes(out)


def base_mult(s: bytes | bytearray) -> bytes:
    """s * G; ThresholdError for s = 0 (libsodium refuses the identity result)."""
    _need(SCALAR_LEN, s)
    out = bytearray(SCALAR_LEN)
    if _sodium.crypto_scalarmult_ristretto255_base(_view(out), _view(s)) != 0:
        raise ThresholdError("group operation failed")
    return bytes(out)


def is_valid_point(element: bytes | bytearray) -> bool:
    """A canonical ristretto255 encoding (libsodium also accepts the identity here)."""
    if not isinstance(element, bytes | bytearray) or len(element) != SCALAR_LEN:
        return False
    return bool(_sodium.crypto_core_ristretto255_is_valid_point(_view(element)) == 1)


def point_add(p: bytes, q: bytes) -> bytes:
    """p + q; ThresholdError if either is not a valid encoding."""
    _need(SCALAR_LEN, p, q)
    out = bytearray(SCALAR_LEN)
    if _sodium.crypto_core_ristretto255_add(_view(out), p, q) != 0:
        raise ThresholdError("group operation failed")
    return bytes(out)
