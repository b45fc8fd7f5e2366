"""Threshold OPRF: the card's OPRF key Shamir-shared among n realms (issue 13, its core).

Sharing. ``split_key`` picks a random polynomial ``f`` of degree ``t - 1`` over the ristretto255
scalar field with ``f(0) = k`` and gives realm ``i`` (index ``1..n``) the share ``k_i = f(i)``.
Any ``t`` shares give ``k = sum(lambda_i * k_i)`` with the Lagrange coefficients at zero,
``lambda_i = prod_{j != i} x_j / (x_j - x_i)``; fewer than ``t`` are uniform whatever ``k`` is.
``split`` does the same for a vector of scalars (one polynomial per scalar; ``threshold_secret``
shares the server share that way) and ``split_zero`` gives shares of zero, whose addition to
every share (``add_shares``) re-randomizes a sharing without changing its secret.

Threshold evaluation. The device blinds the PIN once (``oprf.blind``); realm ``i`` answers
``E_i = k_i * B`` (``oprf.blind_evaluate`` with its share as the key: a share is a canonical
non-zero scalar like any RFC 9497 key), and the device combines
``sum(lambda_i * E_i) = (sum lambda_i * k_i) * B = k * B``, which ``oprf.finalize`` turns into
exactly the RFC 9497 output under the whole key (Lagrange interpolation in the exponent).

Faulty realms: DLEQ proofs, not Juicebox's commitment. Each realm proves with RFC 9497's own
VOPRF proof (``dleq``) that ``log_G(pk_i) = log_B(E_i)`` for its public key share
``pk_i = k_i * G``, which the device keeps from enrollment (public, like a VOPRF ``pkS``). The
device checks every proof before combining, so a wrong evaluation is caught *per realm* and
named (``InvalidEvaluation.indices``) even when exactly ``t`` realms answered. A commitment to
the unlock key only says the combination is wrong: with exactly ``t`` answers a faulty realm
and a wrong PIN then look the same, and finding the culprit takes trying subsets. The proof
costs a realm two scalar multiplications and the device four per realm, and it is checked
against the RFC's vectors byte for byte.

Every scalar and group operation is one libsodium call (``_field``); only the interpolation and
the bookkeeping are ours. Randomness is ``rng(n) -> bytes`` (``secrets.token_bytes``), 64 bytes
reduced mod L per scalar; vectors inject a deterministic one.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import _field, dleq, oprf
from ._threshold_errors import InvalidEvaluation, ThresholdError
from .memory import wipe

__all__ = [
    "MAX_SHARES",
    "SCALAR_LEN",
    "Evaluation",
    "InvalidEvaluation",
    "Share",
    "ThresholdError",
    "add_shares",
    "combine",
    "combine_verified",
    "evaluate",
    "lagrange_coefficients",
    "public_key_share",
    "recover",
    "share_at",
    "split",
    "split_key",
    "split_zero",
]

MAX_SHARES = 255
"""Share indices are 1..255: one byte in any encoding, far above any realm count."""

SCALAR_LEN = _field.SCALAR_LEN

_KEY_TRIES = 8
"""A share of a random polynomial is zero with probability about 2^-252 per realm; a zero
share is not a usable OPRF key, so ``split_key`` draws a new polynomial (8 failures in a row
mean a broken rng, not bad luck)."""


@dataclass(frozen=True, eq=False)
class Share:
    """Realm ``index``'s share: ``value`` is one canonical scalar per shared scalar (32 bytes
    each). Secret: wipe it (``wipe()``) when done. Compared by identity, never by value."""

    index: int
    value: bytearray = field(repr=False)

    def wipe(self) -> None:
        """Zero the share's value in place."""
        wipe(self.value)


@dataclass(frozen=True)
class Evaluation:
    """Realm ``index``'s answer: ``element = k_i * B`` and its RFC 9497 DLEQ ``proof``."""

    index: int
    element: bytes
    proof: bytes


def _check_index(index: object) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError("share index must be an int")
    if not 1 <= index <= MAX_SHARES:
        raise ThresholdError(f"share index must be between 1 and {MAX_SHARES}")
    return index


def _check_indices(indices: Sequence[int]) -> list[int]:
    checked = [_check_index(i) for i in indices]
    if not checked:
        raise ThresholdError("no shares")
    if len(set(checked)) != len(checked):
        raise ThresholdError("duplicate share index")
    return checked


def _check_threshold(threshold: object) -> int:
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise TypeError("threshold must be an int")
    if not 1 <= threshold <= MAX_SHARES:
        raise ThresholdError(f"threshold must be between 1 and {MAX_SHARES}")
    return threshold


def _check_parameters(threshold: int, shares: int) -> None:
    _check_threshold(threshold)
    if not isinstance(shares, int) or isinstance(shares, bool):
        raise TypeError("share count must be an int")
    if not threshold <= shares <= MAX_SHARES:
        raise ThresholdError("need threshold <= shares <= 255")


def _check_scalars(value: bytes | bytearray, what: str) -> int:
    """``value`` is one or more canonical scalars; returns how many."""
    if not isinstance(value, bytes | bytearray):
        raise TypeError("expected bytes or bytearray")
    if not value or len(value) % SCALAR_LEN:
        raise ThresholdError(f"{what} must be a non-empty multiple of 32 bytes")
    width = len(value) // SCALAR_LEN
    for w in range(width):
        chunk = _field.scalar_at(value, w)
        canonical = _field.is_canonical(chunk)
        wipe(chunk)
        if not canonical:
            raise ThresholdError(f"{what} is not a canonical scalar")
    return width


def _horner(coefficients: Sequence[bytearray], x: bytes) -> bytearray:
    """f(x) for f = sum(coefficients[j] * x^j); every intermediate wiped."""
    y = bytearray(coefficients[-1])
    for a in reversed(coefficients[:-1]):
        yx = _field.mul(y, x)
        wipe(y)
        y = _field.add(yx, a)
        wipe(yx)
    return y


def split(
    secret: bytes | bytearray,
    threshold: int,
    shares: int,
    *,
    rng: _field.Rng = secrets.token_bytes,
) -> list[Share]:
    """Shamir-share ``secret`` (one or more canonical scalars, zero allowed) ``threshold``-of-
    ``shares``; share ``i`` goes to index ``i``. Wipe the shares after use."""
    _check_parameters(threshold, shares)
    width = _check_scalars(secret, "secret")
    out = [Share(i, bytearray(width * SCALAR_LEN)) for i in range(1, shares + 1)]
    for w in range(width):
        coefficients = [_field.scalar_at(secret, w)]
        try:
            coefficients += [_field.random_scalar(rng) for _ in range(threshold - 1)]
            for share in out:
                y = _horner(coefficients, _field.from_index(share.index))
                share.value[w * SCALAR_LEN : (w + 1) * SCALAR_LEN] = y
                wipe(y)
        except BaseException:
            for share in out:
                share.wipe()
            raise
        finally:
            wipe(*coefficients)
    return out


def split_zero(
    threshold: int, shares: int, *, width: int = 1, rng: _field.Rng = secrets.token_bytes
) -> list[Share]:
    """Fresh shares of zero (``width`` scalars each), to re-randomize a sharing in place."""
    if not isinstance(width, int) or not 1 <= width <= 8:
        raise ThresholdError("width must be between 1 and 8 scalars")
    return split(bytes(width * SCALAR_LEN), threshold, shares, rng=rng)


def split_key(
    key: bytes | bytearray,
    threshold: int,
    shares: int,
    *,
    rng: _field.Rng = secrets.token_bytes,
) -> list[Share]:
    """Shamir-share an OPRF key (a canonical non-zero scalar); every share is non-zero too."""
    if _check_scalars(key, "key") != 1 or _field.is_zero(key):
        raise ThresholdError("key must be one canonical non-zero scalar")
    for _ in range(_KEY_TRIES):
        out = split(key, threshold, shares, rng=rng)
        if not any(_field.is_zero(s.value) for s in out):
            return out
        for share in out:
            share.wipe()
    raise ThresholdError("rng keeps producing a zero key share")


def lagrange_coefficients(indices: Sequence[int], at: int = 0) -> dict[int, bytes]:
    """lambda_i at ``at`` (zero: the secret; an index: that index's share) for each index of
    the set: ``prod_{j != i} (at - x_j) / (x_i - x_j)`` (public values, not secrets)."""
    xs = _check_indices(indices)
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at <= MAX_SHARES:
        raise ThresholdError(f"interpolation point must be between 0 and {MAX_SHARES}")
    x = bytes(SCALAR_LEN) if at == 0 else _field.from_index(at)
    out: dict[int, bytes] = {}
    for i in xs:
        num = bytearray(_field.from_index(1))
        den = bytearray(_field.from_index(1))
        for j in xs:
            if j != i:
                num = _field.mul(num, _field.sub(x, _field.from_index(j)))
                den = _field.mul(den, _field.sub(_field.from_index(i), _field.from_index(j)))
        out[i] = bytes(_field.mul(num, _field.invert(den)))
    return out


def recover(shares: Sequence[Share], threshold: int) -> bytearray:
    """The shared secret from at least ``threshold`` shares (all of them are used). Wipe it."""
    return _interpolate(shares, threshold, 0)


def share_at(shares: Sequence[Share], threshold: int, index: int) -> Share:
    """Realm ``index``'s share, from at least ``threshold`` others of the same sharing (the
    polynomial they fix, evaluated at ``index``). A gateway holding t shares during a
    payment uses it to commit to every realm's next share. Wipe it."""
    return Share(_check_index(index), _interpolate(shares, threshold, index))


def _interpolate(shares: Sequence[Share], threshold: int, at: int) -> bytearray:
    _check_threshold(threshold)
    if len(shares) < threshold:
        raise ThresholdError("too few shares")
    lambdas = lagrange_coefficients([s.index for s in shares], at)
    widths = {_check_scalars(s.value, "share") for s in shares}
    if len(widths) != 1:
        raise ThresholdError("shares differ in length")
    width = widths.pop()
    secret = bytearray(width * SCALAR_LEN)
    for w in range(width):
        acc = bytearray(SCALAR_LEN)
        for s in shares:
            y = _field.scalar_at(s.value, w)
            term = _field.mul(lambdas[s.index], y)
            total = _field.add(acc, term)
            wipe(acc, term, y)
            acc = total
        secret[w * SCALAR_LEN : (w + 1) * SCALAR_LEN] = acc
        wipe(acc)
    return secret


def add_shares(a: Share, b: Share) -> Share:
    """A share of (secret_a + secret_b): the refresh step (``b`` from ``split_zero`` or from
    ``threshold_secret.deal_refresh``). Wipe ``a`` once the new share is stored."""
    if _check_index(a.index) != _check_index(b.index):
        raise ThresholdError("shares have different indices")
    width = _check_scalars(a.value, "share")
    if _check_scalars(b.value, "share") != width:
        raise ThresholdError("shares differ in length")
    out = bytearray(width * SCALAR_LEN)
    for w in range(width):
        part = slice(w * SCALAR_LEN, (w + 1) * SCALAR_LEN)
        x, y = _field.scalar_at(a.value, w), _field.scalar_at(b.value, w)
        total = _field.add(x, y)
        out[part] = total
        wipe(total, x, y)
    return Share(a.index, out)


def public_key_share(share: Share) -> bytes:
    """pk_i = k_i * G, the realm's public key share the device checks proofs against."""
    _check_index(share.index)
    if _check_scalars(share.value, "key share") != 1 or _field.is_zero(share.value):
        raise ThresholdError("key share must be one canonical non-zero scalar")
    return _field.base_mult(share.value)


def evaluate(
    share: Share, blinded: bytes, *, rng: _field.Rng = secrets.token_bytes
) -> Evaluation:
    """Realm side: ``k_i * B`` with an RFC 9497 DLEQ proof (``rng`` draws its scalar).

    Raises ``oprf.OprfError`` for an invalid or identity blinded element.
    """
    pk = public_key_share(share)
    element = oprf.blind_evaluate(share.value, blinded)
    proof = dleq.generate_proof(share.value, pk, [blinded], [element], rng=rng)
    return Evaluation(share.index, element, proof)


def combine(evaluations: Mapping[int, bytes]) -> bytes:
    """sum(lambda_i * E_i) over the given realms' evaluations, *unverified*: use
    ``combine_verified`` on anything a realm sent. Pass the result to ``oprf.finalize``."""
    lambdas = lagrange_coefficients(list(evaluations))
    total: bytes | None = None
    for i, element in evaluations.items():
        if not _field.is_valid_point(element) or _field.is_zero(element):
            raise ThresholdError("invalid evaluated element")
        term = _field.mult(lambdas[i], element)
        total = term if total is None else _field.point_add(total, term)
    if total is None:  # unreachable: lagrange_coefficients refuses an empty set
        raise ThresholdError("no evaluations")
    return total


def combine_verified(
    blinded: bytes,
    evaluations: Sequence[Evaluation],
    public_shares: Mapping[int, bytes],
    threshold: int,
) -> bytes:
    """Device side: check every realm's proof, then combine; the element for ``oprf.finalize``.

    Raises ``InvalidEvaluation`` naming every realm whose proof fails (drop them and retry
    with others), ``ThresholdError`` for fewer than ``threshold`` evaluations, duplicate
    indices or a realm without a public key share.
    """
    _check_threshold(threshold)
    if not _field.is_valid_point(blinded) or _field.is_zero(blinded):
        raise ThresholdError("invalid blinded element")
    if len(evaluations) < threshold:
        raise ThresholdError("too few evaluations")
    indices = _check_indices([e.index for e in evaluations])
    if any(i not in public_shares for i in indices):
        raise ThresholdError("no public key share for a realm")
    faulty = tuple(
        sorted(
            e.index
            for e in evaluations
            if not dleq.verify_proof(public_shares[e.index], [blinded], [e.element], e.proof)
        )
    )
    if faulty:
        raise InvalidEvaluation(faulty)
    return combine({e.index: e.element for e in evaluations})
