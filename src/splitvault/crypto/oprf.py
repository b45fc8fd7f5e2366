"""RFC 9497 OPRF, mode 0 (OPRF), suite ristretto255-SHA512.

Only the protocol glue lives here: every group and scalar operation is libsodium's ristretto255
(through pysodium) and every hash is ``hashlib.sha512``. Section numbers refer to RFC 9497 unless
they name RFC 9380.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from .memory import wipe

try:
    import pysodium
except (OSError, ValueError) as _exc:  # pysodium loads the system libsodium with ctypes
    raise ImportError(
        "splitvault needs the libsodium shared library (ristretto255 for the PIN OPRF): "
        "install it with 'apt-get install libsodium23' (Debian/Ubuntu), "
        "'dnf install libsodium' (Fedora), 'apk add libsodium' (Alpine) or "
        "'brew install libsodium' (macOS)"
    ) from _exc

SUITE_ID: str = "ristretto255-SHA512"
MODE_OPRF: int = 0
ELEMENT_LEN = 32
SCALAR_LEN = 32
OUTPUT_LEN = 64
SEED_LEN = 32

_MODES = (0, 1, 2)  # OPRF, VOPRF, POPRF: only the context string depends on the mode here
_HASH_LEN = 64  # b_in_bytes of SHA-512
_BLOCK_LEN = 128  # s_in_bytes of SHA-512
_MAX_LEN = 0xFFFF  # anything longer cannot carry the 2-byte length prefixes
_ZERO = bytes(32)  # the ristretto255 identity and the zero scalar share this encoding


class OprfError(ValueError):
    """An OPRF input was invalid. Messages are fixed and never contain input bytes."""


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")



def _native(buf: bytes | bytearray) -> Any:
    # pysodium hands its arguments straight to ctypes, which refuses bytearray. A ctypes view
    # shares the caller's memory, so a secret scalar reaches libsodium without leaving an
    # immutable (never wipeable) bytes copy behind.
    if isinstance(buf, bytearray):
        return (ctypes.c_char * len(buf)).from_buffer(buf)
    return buf


def _check_bytes(value: object) -> None:
    if not isinstance(value, bytes | bytearray):
        raise TypeError("expected bytes or bytearray")


def _check_input(data: bytes | bytearray) -> None:
    _check_bytes(data)
    if len(data) > _MAX_LEN:
        raise OprfError("input too long")


def _check_scalar(s: bytes | bytearray) -> None:
    """DeserializeScalar (sec 4.1): exactly 32 bytes, canonical (< group order) and non-zero."""
    _check_bytes(s)
    if len(s) != SCALAR_LEN:
        raise OprfError("scalar must be 32 bytes")
    # libsodium's scalar multiplication silently drops bit 255 and reduces the rest, so many
    # encodings would act as one key (or as another key). Reducing s mod L with libsodium
    # and comparing leaves exactly one accepted encoding per scalar.
    wide = bytearray(2 * SCALAR_LEN)
    wide[:SCALAR_LEN] = s
    try:
        reduced = pysodium.crypto_core_ristretto255_scalar_reduce(_native(wide))
    finally:
        wipe(wide)
    if not hmac.compare_digest(reduced, s):
        raise OprfError("scalar is not canonical")
    if hmac.compare_digest(s, _ZERO):
        raise OprfError("scalar is zero")


def _deserialize_element(data: bytes) -> bytes:
    """DeserializeElement (sec 2.1, 4.1): a canonical ristretto255 encoding, not the identity."""
    _check_bytes(data)
    # Length first: libsodium reads exactly 32 bytes from whatever pointer it is given.
    if len(data) != ELEMENT_LEN:
        raise OprfError("element must be 32 bytes")
    element = bytes(data)
    if not pysodium.crypto_core_ristretto255_is_valid_point(element):
        raise OprfError("invalid element encoding")
    # libsodium accepts the identity as a valid point; RFC 9497 requires rejecting it.
    if element == _ZERO:
        raise OprfError("identity element")
    return element


def _sodium(func: Callable[..., Any], *args: Any) -> bytes:
    """Call a pysodium function whose libsodium call can fail, mapping failure to OprfError."""
    out: bytes | None = None
    with contextlib.suppress(ValueError):  # pysodium raises a bare ValueError on a -1 return
        out = func(*args)
    # Raised outside any handler so the error does not chain a traceback whose frames still
    # reference a secret scalar.
    if out is None:
        raise OprfError("group operation failed")
    return out


def _mult(scalar: bytes | bytearray, element: bytes | None) -> bytes:
    """scalar * element, or scalar * generator when element is None."""
    if element is None:
        return _sodium(pysodium.crypto_scalarmult_ristretto255_base, _native(scalar))
    return _sodium(pysodium.crypto_scalarmult_ristretto255, _native(scalar), element)


def _finalize_hash(data: bytes | bytearray, element: bytes) -> bytearray:
    # Incremental hashing avoids building a concatenated copy of the (secret) input.
    h = hashlib.sha512()
    h.update(_i2osp(len(data), 2))
    h.update(data)
    h.update(_i2osp(len(element), 2))
    h.update(element)
    h.update(b"Finalize")
    return bytearray(h.digest())


def expand_message_xmd(msg: bytes | bytearray, dst: bytes, len_in_bytes: int) -> bytes:
    """expand_message_xmd with SHA-512 (RFC 9380 sec 5.3.1)."""
    _check_bytes(msg)
    _check_bytes(dst)
    if not 0 < len_in_bytes <= _MAX_LEN:
        raise OprfError("invalid output length")
    ell = -(-len_in_bytes // _HASH_LEN)
    if ell > 255:
        raise OprfError("invalid output length")
    # RFC 9380 sec 3.1 requires a non-empty tag; over-long tags need the oversize-DST rule,
    # which no RFC 9497 tag needs, so they are refused rather than silently truncated.
    if not 0 < len(dst) <= 255:
        raise OprfError("invalid DST length")
    dst_prime = bytes(dst) + _i2osp(len(dst), 1)
    h = hashlib.sha512()
    h.update(bytes(_BLOCK_LEN))  # Z_pad
    h.update(msg)
    h.update(_i2osp(len_in_bytes, 2) + b"\x00" + dst_prime)
    b_0 = h.digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    uniform = bytearray(b_i)
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + _i2osp(i, 1) + dst_prime).digest()
        uniform += b_i
    return bytes(uniform[:len_in_bytes])


def context_string(mode: int = MODE_OPRF) -> bytes:
    """contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier (sec 3.1)."""
    if mode not in _MODES:
        raise OprfError("unknown mode")
    return b"OPRFV1-" + _i2osp(mode, 1) + b"-" + SUITE_ID.encode("ascii")


def hash_to_group(msg: bytes | bytearray, mode: int = MODE_OPRF) -> bytes:
    """HashToGroup for ristretto255-SHA512 (sec 4.1): one-way map of a 64-byte XMD output."""
    dst = b"HashToGroup-" + context_string(mode)
    out: bytes = pysodium.crypto_core_ristretto255_from_hash(expand_message_xmd(msg, dst, 64))
    return out


def hash_to_scalar(
    msg: bytes | bytearray, dst: bytes | None = None, mode: int = MODE_OPRF
) -> bytes:
    """HashToScalar for ristretto255-SHA512 (sec 4.1): 64 XMD bytes reduced mod the order."""
    if dst is None:
        dst = b"HashToScalar-" + context_string(mode)
    out: bytes = pysodium.crypto_core_ristretto255_scalar_reduce(expand_message_xmd(msg, dst, 64))
    return out


def derive_key_pair(
    seed: bytes | bytearray, info: bytes, mode: int = MODE_OPRF
) -> tuple[bytearray, bytes]:
    """DeriveKeyPair (sec 3.2.1): deterministic (skS, pkS) from a 32-byte seed and info."""
    _check_bytes(seed)
    _check_bytes(info)
    if len(seed) != SEED_LEN:
        raise OprfError("seed must be 32 bytes")
    if len(info) > _MAX_LEN:
        raise OprfError("info too long")
    dst = b"DeriveKeyPair" + context_string(mode)
    # deriveInput || I2OSP(counter, 1), built in one preallocated (wipeable) buffer whose last
    # byte is the counter, rewritten each round.
    derive_input = bytearray(SEED_LEN + 2 + len(info) + 1)
    derive_input[:SEED_LEN] = seed
    derive_input[SEED_LEN:-1] = _i2osp(len(info), 2) + info
    try:
        for counter in range(256):
            derive_input[-1] = counter
            sk = bytearray(hash_to_scalar(derive_input, dst))
            if not hmac.compare_digest(sk, _ZERO):
                return sk, _mult(sk, None)
    finally:
        wipe(derive_input)
    raise OprfError("key derivation failed")


def generate_key() -> bytearray:
    """A fresh random non-zero OPRF private key (RandomScalar, sec 2.1)."""
    sk = bytearray(pysodium.crypto_core_ristretto255_scalar_random())
    _check_scalar(sk)  # libsodium already guarantees this; checking costs nothing
    return sk


def blind(
    input: bytes | bytearray, *, rng: Callable[[], bytes] | None = None
) -> tuple[bytearray, bytes]:
    """Blind (sec 3.3.1): returns (blind, blindedElement). rng overrides RandomScalar."""
    _check_input(input)
    raw = rng() if rng is not None else pysodium.crypto_core_ristretto255_scalar_random()
    _check_bytes(raw)
    r = bytearray(raw)
    try:
        # An injected rng is untrusted: hold its blind to the rules Finalize will apply.
        _check_scalar(r)
        element = hash_to_group(input)
        if element == _ZERO:
            raise OprfError("input maps to the identity element")
        return r, _mult(r, element)
    except BaseException:
        wipe(r)
        raise


def blind_evaluate(sk: bytes | bytearray, blinded_element: bytes) -> bytes:
    """BlindEvaluate (sec 3.3.1): server side, rejects invalid and identity elements."""
    _check_scalar(sk)
    return _mult(sk, _deserialize_element(blinded_element))


def finalize(
    input: bytes | bytearray, blind: bytes | bytearray, evaluated_element: bytes
) -> bytearray:
    """Finalize (sec 3.3.1): unblind the evaluated element and hash it with the input."""
    _check_input(input)
    _check_scalar(blind)
    element = _deserialize_element(evaluated_element)
    # pysodium returns an immutable copy; only this bytearray of it can be wiped.
    inverse = bytearray(_sodium(pysodium.crypto_core_ristretto255_scalar_invert, _native(blind)))
    try:
        return _finalize_hash(input, _mult(inverse, element))
    finally:
        wipe(inverse)


def evaluate(sk: bytes | bytearray, input: bytes | bytearray) -> bytearray:
    """Evaluate (sec 3.3.1): the server computing the OPRF output directly, without blinding."""
    _check_input(input)
    _check_scalar(sk)
    element = hash_to_group(input)
    if element == _ZERO:
        raise OprfError("input maps to the identity element")
    return _finalize_hash(input, _mult(sk, element))
