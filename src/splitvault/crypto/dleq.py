"""RFC 9497 sec 2.2 discrete-log-equality (Chaum-Pedersen) proofs, suite ristretto255-SHA512.

A realm holding an OPRF key share ``k_i`` with public key share ``pk_i = k_i * G`` proves that
its evaluation is ``E = k_i * B`` for the device's blinded element ``B``, i.e. that
``log_G(pk_i) = log_B(E)``, exactly as an RFC 9497 VOPRF server proves its evaluation: this
is the RFC's GenerateProof / VerifyProof with ComputeCompositesFast / ComputeComposites, its
transcripts and its DSTs (``contextString`` of mode 1, VOPRF), checked byte for byte against
the RFC's mode-1 vectors (Proof with its fixed ``r``, batch 1 and batch 2) in
``tests/crypto/test_threshold.py``. Only the transcript glue is ours; every scalar and group
operation is libsodium's (``_field``), every hash ``oprf.hash_to_scalar`` / SHA-512.

The statement only involves the realm's own key share, so the RFC's construction applies to a
share unchanged; the VOPRF context string keeps these proofs apart from anything hashed under
the mode-0 context the OPRF itself uses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from . import _field
from ._threshold_errors import ThresholdError
from .memory import wipe
from .oprf import context_string, hash_to_scalar

__all__ = ["MODE_VOPRF", "PROOF_LEN", "generate_proof", "verify_proof"]

MODE_VOPRF = 1
"""RFC 9497 sec 3.1: the proof's DSTs are those of the verifiable mode."""

PROOF_LEN = 64
"""SerializeScalar(c) || SerializeScalar(s) (sec 2.2.1)."""

_ELEMENT_LEN = 32
_GENERATOR = _field.base_mult(_field.from_index(1))
_ZERO = bytes(_ELEMENT_LEN)


def _lp(data: bytes) -> bytes:
    """I2OSP(len(data), 2) || data: every transcript field's framing."""
    return len(data).to_bytes(2, "big") + data


def _composite_scalars(b: bytes, cs: Sequence[bytes], ds: Sequence[bytes]) -> list[bytes]:
    """The d_i of ComputeComposites (sec 2.2.1), shared by the fast and the verifier's form."""
    seed_dst = b"Seed-" + context_string(MODE_VOPRF)
    seed = hashlib.sha512(_lp(b) + _lp(seed_dst)).digest()
    return [
        hash_to_scalar(
            _lp(seed) + i.to_bytes(2, "big") + _lp(ci) + _lp(di) + b"Composite", mode=MODE_VOPRF
        )
        for i, (ci, di) in enumerate(zip(cs, ds, strict=True))
    ]


def _weighted_sum(scalars: Sequence[bytes], elements: Sequence[bytes]) -> bytes:
    """sum(d_i * X_i), starting from the first term (libsodium refuses to multiply to, or
    from, the identity, so the RFC's ``M = G.Identity()`` start is folded away)."""
    total = _field.mult(scalars[0], elements[0])
    for d, x in zip(scalars[1:], elements[1:], strict=True):
        total = _field.point_add(total, _field.mult(d, x))
    return total


def _challenge(b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes) -> bytes:
    transcript = _lp(b) + _lp(m) + _lp(z) + _lp(t2) + _lp(t3) + b"Challenge"
    return hash_to_scalar(transcript, mode=MODE_VOPRF)


def _check_elements(*elements: bytes) -> bool:
    for e in elements:
        if not isinstance(e, bytes) or len(e) != _ELEMENT_LEN or e == _ZERO:
            return False
        if not _field.is_valid_point(e):
            return False
    return True


def generate_proof(
    k: bytes | bytearray,
    pk: bytes,
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    *,
    rng: _field.Rng = secrets.token_bytes,
) -> bytes:
    """GenerateProof(k, G, pk, C, D) (sec 2.2.1): proof that every D[i] = k * C[i].

    ``rng`` draws the proof's random scalar r (RandomScalar); inject one only for vectors.
    """
    if not _field.is_canonical(k) or _field.is_zero(k):
        raise ThresholdError("proof key must be a canonical non-zero scalar")
    if not blinded or len(blinded) != len(evaluated):
        raise ThresholdError("need as many evaluated as blinded elements, at least one")
    if not _check_elements(pk, *blinded, *evaluated):
        raise ThresholdError("invalid element")
    ds = _composite_scalars(pk, blinded, evaluated)
    m = _weighted_sum(ds, blinded)
    z = _field.mult(k, m)  # ComputeCompositesFast: the prover knows k
    r = _field.random_scalar(rng)
    ck = bytearray()
    try:
        t2 = _field.base_mult(r)
        t3 = _field.mult(r, m)
        c = _challenge(pk, m, z, t2, t3)
        ck = _field.mul(c, k)
        s = _field.sub(r, ck)
        return c + bytes(s)
    finally:
        wipe(r, ck)


def verify_proof(
    pk: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes], proof: bytes
) -> bool:
    """VerifyProof(G, pk, C, D, proof) (sec 2.2.2). False for anything malformed, never raises
    on content: every input but ``pk`` came from the (untrusted) prover."""
    if not isinstance(proof, bytes) or len(proof) != PROOF_LEN:
        return False
    if not blinded or len(blinded) != len(evaluated):
        return False
    if not _check_elements(pk, *blinded, *evaluated):
        return False
    c, s = proof[:32], proof[32:]
    if not (_field.is_canonical(c) and _field.is_canonical(s)):
        return False
    ds = _composite_scalars(pk, blinded, evaluated)
    try:
        m = _weighted_sum(ds, blinded)
        z = _weighted_sum(ds, evaluated)  # ComputeComposites: the verifier does not know k
        t2 = _field.point_add(_field.base_mult(s), _field.mult(c, pk))
        t3 = _field.point_add(_field.mult(s, m), _field.mult(c, z))
    except ThresholdError:  # a zero scalar or an identity sum: no honest proof gives one
        return False
    return hmac.compare_digest(_challenge(pk, m, z, t2, t3), c)
