"""Two-of-two XOR secret sharing of a data key.

Each share is full length: ``device = r`` for a uniformly random ``r`` and
``server = key XOR r``. Either share alone is uniformly distributed whatever the
key, so it carries no information about it (a one-time pad). Splitting a key into
*halves* would hand each side half the key bits; PCI DSS 3.6.1.2 forbids that.
"""

from __future__ import annotations

import operator
import secrets
from collections.abc import Callable

__all__ = ["KEY_LEN", "combine", "split"]

KEY_LEN = 32
"""A 256-bit data key for XChaCha20-Poly1305."""


def split(
    key: bytes | bytearray, *, rng: Callable[[int], bytes] = secrets.token_bytes
) -> tuple[bytearray, bytearray]:
    """Return ``(device_share, server_share)`` whose XOR is ``key``. Wipe both after use."""
    if len(key) != KEY_LEN:
        raise ValueError("key must be 32 bytes")
    pad = bytearray(rng(KEY_LEN))
    if len(pad) != KEY_LEN:
        raise ValueError("rng returned the wrong number of bytes")
    return pad, _xor(key, pad)


def combine(device_share: bytes | bytearray, server_share: bytes | bytearray) -> bytearray:
    """The key both shares were split from. Wipe it after use."""
    if len(device_share) != KEY_LEN or len(server_share) != KEY_LEN:
        raise ValueError("shares must be 32 bytes each")
    return _xor(device_share, server_share)


def _xor(a: bytes | bytearray, b: bytes | bytearray) -> bytearray:
    # Into a bytearray sized up front and written in place: built from an iterator it
    # would grow, leaving unwiped copies of its prefixes in freed blocks. Each byte's
    # XOR is one of CPython's shared small ints (0..255), so no new immutable object
    # holds the key, and the work does not depend on the values.
    if len(a) != len(b):
        raise ValueError("shares must be the same length")
    out = bytearray(len(a))
    for i, byte in enumerate(map(operator.xor, a, b)):
        out[i] = byte
    return out
