"""The server share shared t-of-n among realms, and its re-split (issue 13 with issue 12).

Representation: additive in the ristretto255 scalar field, not XOR. Today's 2-of-2 split is
``K = D xor S`` and the re-split is ``D ^= R, S ^= R``. With realms, S is Shamir-shared, and
each realm must re-randomize its share *alone*. That works only if the refresh is the same
operation the sharing is linear in: Shamir over the scalar field is linear in field addition,
not in XOR (``f(i) xor r_i`` is no share of ``S xor R``). So in t-of-n mode the whole relation
lives in the field:

- ``encode_secret`` maps the 32-byte data key ``K`` to two scalars, its 16-byte halves read
  little-endian (each below 2^128 < L ~ 2^252: canonical, and the map is injective);
- the device holds ``D``, two uniform scalars; the realms' side is ``Sigma = enc(K) - D``,
  Shamir-shared t-of-n (``split_data_key``); the key is ``dec(D + Sigma)``;
- a re-split deals a uniform ``rho`` (two scalars) and a fresh t-of-n sharing ``rho_i`` of it
  (``deal_refresh``): the device sets ``D' = D - rho``, realm ``i`` sets
  ``Sigma_i' = Sigma_i + rho_i``, so ``D' + Sigma' = D + Sigma`` and the key is unchanged.

What each side learns. ``D'`` is uniform whatever ``K``. Any ``t - 1`` realms see ``t - 1``
points of two independent random polynomials per version, which are uniform whatever
``Sigma`` and ``rho`` are (Shamir's perfect secrecy), before and after any number of refreshes.
A device copy from before a re-split gives ``dec(D + Sigma') = dec(enc(K) + rho)``: uniform,
and ``decode_secret`` refuses it unless both halves land below 2^128 (probability 2^-248),
so a stale part fails loudly rather than yielding a wrong key. Who deals ``rho`` (the device,
sealing ``rho_i`` to realm ``i``, or the gateway, which holds ``K`` during the payment anyway)
is the protocol's choice; this module only supplies the arithmetic.

Why not Shamir over GF(2^8), which is XOR-linear and would keep today's refresh: the only
GF(2^8) arithmetic in the package index (``galois``, ``pyfinite``, shamir-mnemonic's tables) is
table-driven Python, neither constant time nor among the vetted libraries, and writing our own
field is ruled out. The scalar field needs nothing but libsodium.

``split_secret`` / ``recover_secret`` share a 32-byte secret directly (``Sigma = enc(S)``),
for a secret that is never re-split.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import _field
from ._threshold_errors import ThresholdError
from .errors import DecodeError
from .memory import wipe
from .threshold import Share, add_shares, recover, split

__all__ = [
    "PART_LEN",
    "SECRET_LEN",
    "Refresh",
    "deal_refresh",
    "decode_secret",
    "encode_secret",
    "recover_data_key",
    "recover_secret",
    "refresh_device_part",
    "refresh_share",
    "split_data_key",
    "split_secret",
]

SECRET_LEN = 32
"""A data key (XChaCha20-Poly1305) or server share: 32 bytes."""

PART_LEN = 2 * _field.SCALAR_LEN
"""The device's part, a realm's share and a refresh delta: two scalars, 64 bytes."""

_HALF = SECRET_LEN // 2
_HIGH_ZERO = bytes(_field.SCALAR_LEN - _HALF)

refresh_share = add_shares
"""Realm side of a re-split: ``refresh_share(share, delta)`` is ``Sigma_i + rho_i``."""


@dataclass(frozen=True, eq=False)
class Refresh:
    """One re-split: ``device_delta`` (rho) for the device, ``share_deltas[i - 1]`` (rho_i)
    for realm ``i``. Secret; wipe it (``wipe()``) once every part has been sent."""

    device_delta: bytearray = field(repr=False)
    share_deltas: list[Share] = field(repr=False)

    def wipe(self) -> None:
        """Zero rho and every rho_i in place."""
        wipe(self.device_delta)
        for share in self.share_deltas:
            share.wipe()


def _check_len(value: object, length: int, what: str) -> None:
    if not isinstance(value, bytes | bytearray):
        raise TypeError("expected bytes or bytearray")
    if len(value) != length:
        raise ThresholdError(f"{what} must be {length} bytes")


def encode_secret(secret: bytes | bytearray) -> bytearray:
    """32 bytes as two canonical scalars (each half zero-extended). Wipe the result."""
    _check_len(secret, SECRET_LEN, "secret")
    view = memoryview(secret)  # slices of a view copy nothing
    out = bytearray(PART_LEN)
    out[:_HALF] = view[:_HALF]
    out[_field.SCALAR_LEN : _field.SCALAR_LEN + _HALF] = view[_HALF:]
    return out


def decode_secret(value: bytes | bytearray) -> bytearray:
    """The inverse of ``encode_secret``; DecodeError unless both scalars are below 2^128."""
    _check_len(value, PART_LEN, "encoded secret")
    # Both checks always run (no early exit on the first half) and compare in constant time.
    view = memoryview(value)
    low_ok = hmac.compare_digest(view[_HALF : _field.SCALAR_LEN], _HIGH_ZERO)
    high_ok = hmac.compare_digest(view[_field.SCALAR_LEN + _HALF :], _HIGH_ZERO)
    if not (low_ok & high_ok):
        raise DecodeError("shares do not combine to a secret")
    out = bytearray(SECRET_LEN)
    out[:_HALF] = view[:_HALF]
    out[_HALF:] = view[_field.SCALAR_LEN : _field.SCALAR_LEN + _HALF]
    return out


def _pairwise(name: str, a: bytes | bytearray, b: bytes | bytearray) -> bytearray:
    """a + b or a - b, scalar by scalar, over two-scalar values."""
    _check_len(a, PART_LEN, "device part")
    _check_len(b, PART_LEN, "delta")
    op = _field.add if name == "add" else _field.sub
    out = bytearray(PART_LEN)
    for w in range(2):
        x, y = _field.scalar_at(a, w), _field.scalar_at(b, w)
        try:
            if not (_field.is_canonical(x) and _field.is_canonical(y)):
                raise ThresholdError("not a canonical scalar")
            r = op(x, y)
            out[w * _field.SCALAR_LEN : (w + 1) * _field.SCALAR_LEN] = r
            wipe(r)
        except BaseException:
            wipe(out)
            raise
        finally:
            wipe(x, y)
    return out


def _random_pair(rng: _field.Rng) -> bytearray:
    lo, hi = _field.random_scalar(rng), _field.random_scalar(rng)
    try:
        return lo + hi
    finally:
        wipe(lo, hi)


def split_secret(
    secret: bytes | bytearray, threshold: int, shares: int, *, rng: _field.Rng = secrets.token_bytes
) -> list[Share]:
    """Shamir-share a 32-byte secret threshold-of-shares (64-byte shares). Wipe them."""
    encoded = encode_secret(secret)
    try:
        return split(encoded, threshold, shares, rng=rng)
    finally:
        wipe(encoded)


def recover_secret(shares: Sequence[Share], threshold: int) -> bytearray:
    """The 32-byte secret from at least ``threshold`` shares. Wipe it."""
    encoded = recover(shares, threshold)
    try:
        return decode_secret(encoded)
    finally:
        wipe(encoded)


def split_data_key(
    key: bytes | bytearray, threshold: int, shares: int, *, rng: _field.Rng = secrets.token_bytes
) -> tuple[bytearray, list[Share]]:
    """``(device_part D, realm shares of Sigma = enc(key) - D)``. Wipe all of them."""
    encoded = encode_secret(key)
    device_part = _random_pair(rng)
    sigma = bytearray()
    try:
        sigma = _pairwise("sub", encoded, device_part)
        return device_part, split(sigma, threshold, shares, rng=rng)
    except BaseException:
        wipe(device_part)
        raise
    finally:
        wipe(encoded, sigma)


def recover_data_key(
    device_part: bytes | bytearray, shares: Sequence[Share], threshold: int
) -> bytearray:
    """``dec(D + Sigma)`` from the device's part and at least ``threshold`` realm shares.

    DecodeError if they do not belong together (a stale part or share, a wrong share).
    """
    _check_len(device_part, PART_LEN, "device part")
    sigma = recover(shares, threshold)
    encoded = bytearray()
    try:
        encoded = _pairwise("add", device_part, sigma)
        return decode_secret(encoded)
    finally:
        wipe(sigma, encoded)


def deal_refresh(
    threshold: int, shares: int, *, rng: _field.Rng = secrets.token_bytes
) -> Refresh:
    """A uniform rho and a fresh threshold-of-shares sharing of it, for one re-split."""
    rho = _random_pair(rng)
    try:
        return Refresh(rho, split(rho, threshold, shares, rng=rng))
    except BaseException:
        wipe(rho)
        raise


def refresh_device_part(
    device_part: bytes | bytearray, device_delta: bytes | bytearray
) -> bytearray:
    """Device side of a re-split: ``D - rho``. Keep ``D`` until every realm confirmed."""
    return _pairwise("sub", device_part, device_delta)
