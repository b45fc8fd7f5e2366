"""Tests for the threshold glue: Shamir over the ristretto255 scalar field, the threshold OPRF,
RFC 9497's DLEQ proofs, the shared server share and its re-split (issue 13, its core).

What ties the glue to external vectors: the DLEQ proofs reproduce RFC 9497's mode-1 proofs
byte for byte; the threshold OPRF, for every t-subset, equals our RFC-vector-tested OPRF under
the whole key, and in the known-answer file its combination reproduces the RFC's own
EvaluationElement and Output. tests/vectors/threshold.json (from make_threshold_vectors.py)
pins the glue's own bytes for ports. Hypothesis runs derandomized so a run cannot flake.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pysodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitvault.crypto import dleq, oprf, threshold, threshold_secret
from splitvault.crypto.errors import AuthenticationFailed, DecodeError
from splitvault.crypto.threshold import Evaluation, InvalidEvaluation, Share, ThresholdError

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
RFC9497 = json.loads((VECTORS / "rfc9497_ristretto255_sha512.json").read_text())
MODE1 = next(s for s in RFC9497["suites"] if s["mode"] == 1)
KAT = json.loads((VECTORS / "threshold.json").read_text())

_spec = importlib.util.spec_from_file_location("make_threshold_vectors",
                                               VECTORS / "make_threshold_vectors.py")
assert _spec is not None and _spec.loader is not None
make_vectors: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_vectors)

DETERMINISTIC = settings(derandomize=True, deadline=None, max_examples=40)
"""Fixed example sequence, no per-example deadline (each example does many group ops)."""

PAIRS = [(t, n) for n in range(1, 6) for t in range(1, n + 1)]
"""Every (threshold, shares) with n up to 5."""

seeds = st.binary(min_size=32, max_size=32)
pins = st.binary(min_size=0, max_size=12)
secrets32 = st.binary(min_size=32, max_size=32)
pairs = st.sampled_from(PAIRS)


def key_from(seed: bytes) -> bytearray:
    """A random OPRF key from a Hypothesis seed (RFC 9497 DeriveKeyPair), so failures replay."""
    return oprf.derive_key_pair(seed, b"threshold test")[0]


def rng_from(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic rng for a Hypothesis example (SHAKE-256 stream of the seed)."""
    return make_vectors.ShakeRng(seed.hex())  # type: ignore[no-any-return]


def deal(seed: bytes, t: int, n: int) -> tuple[bytearray, list[Share], dict[int, bytes]]:
    key = key_from(seed)
    shares = threshold.split_key(key, t, n, rng=rng_from(seed))
    return key, shares, {s.index: threshold.public_key_share(s) for s in shares}


def share(index: int, value: str) -> Share:
    return Share(index, bytearray.fromhex(value))


# --- Shamir over the scalar field ---------------------------------------------------------


@DETERMINISTIC
@given(seed=seeds, tn=pairs, width=st.integers(1, 3))
def test_every_t_subset_recovers_the_secret(seed: bytes, tn: tuple[int, int], width: int) -> None:
    """split then recover gives the secret back from every t-subset (and from all n)."""
    t, n = tn
    secret = b"".join(oprf.hash_to_scalar(seed + bytes([w])) for w in range(width))
    shares = threshold.split(secret, t, n, rng=rng_from(seed))
    assert [s.index for s in shares] == list(range(1, n + 1))
    if t > 1:  # a real polynomial: no share is the secret, no two shares agree
        values = [bytes(s.value) for s in shares]
        assert secret not in values and len(set(values)) == n
    for subset in itertools.combinations(shares, t):
        assert threshold.recover(list(subset), t) == secret
    assert threshold.recover(shares, t) == secret


@DETERMINISTIC
@given(seed=seeds, tn=pairs)
def test_share_at_rebuilds_every_other_share(seed: bytes, tn: tuple[int, int]) -> None:
    """From any t shares, share_at gives each realm's own share exactly (what a gateway
    commits every realm's next share with), and fewer than t are refused."""
    t, n = tn
    secret = oprf.hash_to_scalar(seed) + oprf.hash_to_scalar(seed + b"2")
    shares = threshold.split(secret, t, n, rng=rng_from(seed))
    for subset in itertools.combinations(shares, t):
        for target in shares:
            assert threshold.share_at(list(subset), t, target.index).value == target.value
    with pytest.raises(ThresholdError, match="too few shares"):
        threshold.share_at(shares[: t - 1], t, 1)


@DETERMINISTIC
@given(seed=seeds, tn=pairs)
def test_fewer_than_t_shares_are_refused(seed: bytes, tn: tuple[int, int]) -> None:
    """recover with t - 1 shares raises, never interpolates a wrong secret."""
    t, n = tn
    shares = threshold.split(key_from(seed), t, n, rng=rng_from(seed))
    with pytest.raises(ThresholdError, match="too few shares"):
        threshold.recover(shares[: t - 1], t)


@DETERMINISTIC
@given(seed=seeds, tn=pairs)
def test_t_minus_one_shares_fit_any_secret(seed: bytes, tn: tuple[int, int]) -> None:
    """Any t - 1 shares of one secret, plus a suitable t-th point, recover a *different*
    secret: t - 1 shares are consistent with every secret (Shamir's secrecy, constructively)."""
    t, n = tn
    first, second = key_from(seed), key_from(bytes(b ^ 0xFF for b in seed))
    known = threshold.split(second, t, n, rng=rng_from(seed))[: t - 1]
    lambdas = threshold.lagrange_coefficients([*[s.index for s in known], t])
    # Solve first = sum(lambda_i * y_i) + lambda_t * y_t for y_t, in libsodium.
    partial = bytes(32)
    for s in known:
        term = pysodium.crypto_core_ristretto255_scalar_mul(lambdas[s.index], bytes(s.value))
        partial = pysodium.crypto_core_ristretto255_scalar_add(partial, term)
    y_t = pysodium.crypto_core_ristretto255_scalar_mul(
        pysodium.crypto_core_ristretto255_scalar_sub(bytes(first), partial),
        pysodium.crypto_core_ristretto255_scalar_invert(lambdas[t]),
    )
    assert threshold.recover([*known, Share(t, bytearray(y_t))], t) == first
    assert first != second


@DETERMINISTIC
@given(seed=seeds, indices=st.lists(st.integers(1, 255), min_size=1, max_size=6, unique=True))
def test_lagrange_coefficients_interpolate_constants(seed: bytes, indices: list[int]) -> None:
    """The coefficients at zero of any index set sum to one (they interpolate f = 1)."""
    lambdas = threshold.lagrange_coefficients(indices)
    assert list(lambdas) == indices
    total = bytes(32)
    for value in lambdas.values():
        total = pysodium.crypto_core_ristretto255_scalar_add(total, value)
    assert total == (1).to_bytes(32, "little")


@DETERMINISTIC
@given(seed=seeds, tn=pairs)
def test_shares_of_zero_refresh_without_changing_the_secret(
    seed: bytes, tn: tuple[int, int]
) -> None:
    """Adding shares of zero changes every share (n > 1 or t > 1) yet keeps the secret."""
    t, n = tn
    key = key_from(seed)
    shares = threshold.split_key(key, t, n, rng=rng_from(seed))
    zeros = threshold.split_zero(t, n, rng=rng_from(bytes(b ^ 0xFF for b in seed)))
    fresh = [threshold.add_shares(a, b) for a, b in zip(shares, zeros, strict=True)]
    if t > 1:
        assert all(a.value != b.value for a, b in zip(shares, fresh, strict=True))
    for subset in itertools.combinations(fresh, t):
        assert threshold.recover(list(subset), t) == key


def test_split_key_draws_again_when_a_share_would_be_zero() -> None:
    """An rng that makes f(1) = 0 (a_1 = -k) gets a second polynomial, all shares non-zero;
    one that always does is refused after a few tries."""
    key = key_from(b"\x07" * 32)
    minus_key = pysodium.crypto_core_ristretto255_scalar_negate(bytes(key)) + bytes(32)
    stream = make_vectors.ShakeRng("zero share")
    draws = iter([minus_key])
    shares = threshold.split_key(key, 2, 3, rng=lambda n: next(draws, None) or stream(n))
    assert all(s.value != bytes(32) for s in shares)
    assert threshold.recover(shares[:2], 2) == key
    with pytest.raises(ThresholdError, match="zero key share"):
        threshold.split_key(key, 2, 3, rng=lambda n: minus_key)


# --- the threshold OPRF -------------------------------------------------------------------


@pytest.mark.parametrize(("t", "n"), PAIRS, ids=lambda v: str(v))
@settings(derandomize=True, deadline=None, max_examples=10)
@given(seed=seeds, pin=pins)
def test_threshold_oprf_equals_the_oprf_under_the_whole_key(
    t: int, n: int, seed: bytes, pin: bytes
) -> None:
    """For every t-subset of the n realms, finalizing the combined (proof-checked) evaluation
    gives oprf.evaluate under the whole key: the RFC-vector-tested OPRF."""
    key, shares, public = deal(seed, t, n)
    blind, blinded = oprf.blind(pin)
    evaluations = [threshold.evaluate(s, blinded) for s in shares]
    expected = oprf.evaluate(key, pin)
    for subset in itertools.combinations(evaluations, t):
        combined = threshold.combine_verified(blinded, list(subset), public, t)
        assert oprf.finalize(pin, blind, combined) == expected
        assert threshold.combine({e.index: e.element for e in subset}) == combined
    assert threshold.combine_verified(blinded, evaluations, public, t) == oprf.blind_evaluate(
        key, blinded
    )


FAULTS = ["other element", "other realm's answer", "random element", "proof flipped",
          "garbage element", "identity", "short proof"]


def fault(kind: str, e: Evaluation, other: Evaluation, seed: bytes) -> Evaluation:
    """Realm e's answer, corrupted the way ``kind`` says."""
    if kind == "other element":
        return Evaluation(e.index, other.element, e.proof)
    if kind == "other realm's answer":
        return Evaluation(e.index, other.element, other.proof)
    if kind == "random element":
        return Evaluation(e.index, oprf.hash_to_group(seed), e.proof)
    if kind == "proof flipped":
        return Evaluation(e.index, e.element, e.proof[:-1] + bytes([e.proof[-1] ^ 1]))
    if kind == "garbage element":
        return Evaluation(e.index, b"\xff" * 32, e.proof)
    if kind == "identity":
        return Evaluation(e.index, bytes(32), e.proof)
    return Evaluation(e.index, e.element, e.proof[:63])


@DETERMINISTIC
@given(seed=seeds, pin=pins, tn=st.sampled_from([(t, n) for t, n in PAIRS if t > 1]),
       data=st.data())
def test_faulty_realms_are_named_never_a_wrong_pin(
    seed: bytes, pin: bytes, tn: tuple[int, int], data: st.DataObject
) -> None:
    """Any corrupted answers among the ones combined raise InvalidEvaluation naming exactly
    the faulty realms; no output (hence no "wrong PIN") is produced. (t > 1: with t = 1
    every realm holds the whole key, so "another realm's element" would be a right one.)"""
    t, n = tn
    _, shares, public = deal(seed, t, n)
    _, blinded = oprf.blind(pin)
    evaluations = [threshold.evaluate(s, blinded) for s in shares]
    answered = data.draw(st.lists(st.sampled_from(evaluations), min_size=t, max_size=n,
                                  unique_by=lambda e: e.index))
    bad = data.draw(st.sets(st.sampled_from([e.index for e in answered]), min_size=1))
    kind = data.draw(st.sampled_from(FAULTS))
    # Realm i's stand-in answer comes from realm i + 1 (mod n), a different key share.
    sent = [fault(kind, e, evaluations[e.index % n], seed) if e.index in bad else e
            for e in answered]
    with pytest.raises(InvalidEvaluation) as caught:
        threshold.combine_verified(blinded, sent, public, t)
    assert caught.value.indices == tuple(sorted(bad))
    assert not isinstance(caught.value, AuthenticationFailed | ValueError)  # no wrong-PIN path


def test_combine_verified_refuses_bad_calls() -> None:
    """Too few answers, duplicates, an unknown realm and a bad blinded element are caller
    mistakes (ThresholdError), not faulty realms."""
    _, shares, public = deal(b"\x01" * 32, 2, 3)
    _, blinded = oprf.blind(b"1234")
    e1, e2, _ = (threshold.evaluate(s, blinded) for s in shares)
    cases = [
        (blinded, [e1], public, "too few evaluations"),
        (blinded, [e1, e1], public, "duplicate share index"),
        (blinded, [e1, e2], {1: public[1]}, "no public key share"),
        (bytes(32), [e1, e2], public, "invalid blinded element"),
    ]
    for b, evs, pks, message in cases:
        with pytest.raises(ThresholdError, match=message):
            threshold.combine_verified(b, evs, pks, 2)


# --- RFC 9497 DLEQ proofs -----------------------------------------------------------------


@pytest.mark.parametrize("vector", MODE1["vectors"], ids=lambda v: f"batch{v['Batch']}")
def test_dleq_proof_matches_rfc9497_vectors(vector: dict[str, Any]) -> None:
    """GenerateProof with the vector's r reproduces the RFC's proof; VerifyProof accepts it."""
    sk, pk = oprf.derive_key_pair(bytes.fromhex(MODE1["seed"]), bytes.fromhex(MODE1["keyInfo"]),
                                  dleq.MODE_VOPRF)
    assert pk.hex() == MODE1["pkSm"]
    cs = [bytes.fromhex(x) for x in vector["BlindedElement"].split(",")]
    ds = [bytes.fromhex(x) for x in vector["EvaluationElement"].split(",")]
    r = bytes.fromhex(vector["Proof"]["r"])
    proof = dleq.generate_proof(sk, pk, cs, ds, rng=lambda n: r + bytes(32))
    assert proof.hex() == vector["Proof"]["proof"]
    assert dleq.verify_proof(pk, cs, ds, proof)


@pytest.mark.parametrize("vector", MODE1["vectors"], ids=lambda v: f"batch{v['Batch']}")
def test_dleq_rejects_any_changed_byte(vector: dict[str, Any]) -> None:
    """Every single-bit change of the RFC proof, element or key is rejected."""
    pk = bytes.fromhex(MODE1["pkSm"])
    cs = [bytes.fromhex(x) for x in vector["BlindedElement"].split(",")]
    ds = [bytes.fromhex(x) for x in vector["EvaluationElement"].split(",")]
    proof = bytes.fromhex(vector["Proof"]["proof"])

    def flipped(data: bytes, at: int) -> bytes:
        return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]

    for at in range(len(proof)):
        assert not dleq.verify_proof(pk, cs, ds, flipped(proof, at))
    for at in range(32):
        assert not dleq.verify_proof(flipped(pk, at), cs, ds, proof)
        assert not dleq.verify_proof(pk, cs, [flipped(ds[0], at), *ds[1:]], proof)
        assert not dleq.verify_proof(pk, [flipped(cs[0], at), *cs[1:]], ds, proof)
    assert not dleq.verify_proof(pk, cs, ds[:-1], proof)
    assert not dleq.verify_proof(pk, [], [], proof)


@DETERMINISTIC
@given(seed=seeds, pin=pins)
def test_dleq_round_trip_and_wrong_key(seed: bytes, pin: bytes) -> None:
    """A realm's proof verifies under its own public key share and under no other."""
    _, shares, public = deal(seed, 2, 3)
    _, blinded = oprf.blind(pin)
    e = threshold.evaluate(shares[0], blinded)
    assert dleq.verify_proof(public[1], [blinded], [e.element], e.proof)
    assert not dleq.verify_proof(public[2], [blinded], [e.element], e.proof)


def test_generate_proof_refuses_bad_input() -> None:
    """Bad prover input is a caller mistake: ThresholdError, not a bogus proof."""
    sk, pk = oprf.derive_key_pair(b"\x02" * 32, b"x")
    b = oprf.hash_to_group(b"b")
    d = oprf.blind_evaluate(sk, b)
    cases: list[tuple[bytes | bytearray, list[bytes], str]] = [
        (bytes(32), [d], "canonical non-zero"),
        (sk, [], "as many evaluated"),
        (sk, [bytes(32)], "invalid element"),
    ]
    for key, evaluated, message in cases:
        with pytest.raises(ThresholdError, match=message):
            dleq.generate_proof(key, pk, [b], evaluated)


# --- the server share and its re-split ----------------------------------------------------


@DETERMINISTIC
@given(secret=secrets32, tn=pairs, seed=seeds)
def test_secret_round_trip_every_t_subset(secret: bytes, tn: tuple[int, int], seed: bytes) -> None:
    """split_secret / recover_secret give any 32 bytes back from every t-subset."""
    t, n = tn
    shares = threshold_secret.split_secret(secret, t, n, rng=rng_from(seed))
    assert all(len(s.value) == threshold_secret.PART_LEN for s in shares)
    for subset in itertools.combinations(shares, t):
        assert threshold_secret.recover_secret(list(subset), t) == secret


@DETERMINISTIC
@given(secret=secrets32)
def test_encoding_is_injective_and_canonical(secret: bytes) -> None:
    """encode_secret gives two canonical scalars, and decode_secret inverts it."""
    encoded = threshold_secret.encode_secret(secret)
    assert pysodium.crypto_core_ristretto255_scalar_reduce(bytes(encoded[:32]) + bytes(32)) == \
        encoded[:32]
    assert pysodium.crypto_core_ristretto255_scalar_reduce(bytes(encoded[32:]) + bytes(32)) == \
        encoded[32:]
    assert threshold_secret.decode_secret(encoded) == secret


@pytest.mark.parametrize("at", [16, 31, 48, 63])
def test_decode_refuses_a_half_at_or_above_2_to_128(at: int) -> None:
    """A scalar with any of its high 16 bytes set is no encoded half: DecodeError."""
    encoded = threshold_secret.encode_secret(bytes(range(32)))
    encoded[at] = 1
    with pytest.raises(DecodeError):
        threshold_secret.decode_secret(encoded)


@DETERMINISTIC
@given(key=secrets32, tn=pairs, seed=seeds,
       rounds=st.lists(st.integers(0, 2**16), min_size=1, max_size=4))
def test_re_splits_keep_the_key_and_kill_old_parts(
    key: bytes, tn: tuple[int, int], seed: bytes, rounds: list[int]
) -> None:
    """After any number of re-splits, the current device part with any t current realm shares
    is the key; the previous device part, or one previous realm share, is refused."""
    t, n = tn
    rng = rng_from(seed)
    device, shares = threshold_secret.split_data_key(key, t, n, rng=rng)
    for pick in rounds:
        refresh = threshold_secret.deal_refresh(t, n, rng=rng)
        new_device = threshold_secret.refresh_device_part(device, refresh.device_delta)
        new_shares = [threshold_secret.refresh_share(a, b)
                      for a, b in zip(shares, refresh.share_deltas, strict=True)]
        subsets = list(itertools.combinations(range(n), t))
        subset = subsets[pick % len(subsets)]
        current = [new_shares[i] for i in subset]
        assert threshold_secret.recover_data_key(new_device, current, t) == key
        with pytest.raises(DecodeError):
            threshold_secret.recover_data_key(device, current, t)
        stale = [shares[subset[0]], *current[1:]]
        with pytest.raises(DecodeError):
            threshold_secret.recover_data_key(new_device, stale, t)
        device, shares = new_device, new_shares
        refresh.wipe()
        assert refresh.device_delta == bytes(64)


def test_wipe_zeroes_shares() -> None:
    """Share.wipe and Refresh.wipe overwrite the secret bytes in place."""
    shares = threshold.split_key(key_from(b"\x03" * 32), 2, 3)
    shares[0].wipe()
    assert shares[0].value == bytes(32)
    refresh = threshold_secret.deal_refresh(2, 3)
    refresh.wipe()
    assert all(s.value == bytes(64) for s in refresh.share_deltas)
    assert "value" not in repr(shares[1])  # the secret never reaches a log line


# --- caller mistakes ----------------------------------------------------------------------

KEY = bytes(oprf.derive_key_pair(b"\x04" * 32, b"k")[0])
ORDER = bytes.fromhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: threshold.split(KEY, 4, 3), "threshold <= shares"),
    (lambda: threshold.split(KEY, 0, 3), "threshold must be between"),
    (lambda: threshold.split(KEY, 2, 256), "threshold <= shares <= 255"),
    (lambda: threshold.split(KEY[:31], 2, 3), "multiple of 32"),
    (lambda: threshold.split(b"", 2, 3), "multiple of 32"),
    (lambda: threshold.split(ORDER, 2, 3), "not a canonical"),
    (lambda: threshold.split(KEY, 2, 3, rng=lambda n: bytes(n - 1)), "wrong number of bytes"),
    (lambda: threshold.split_key(bytes(32), 2, 3), "non-zero"),
    (lambda: threshold.split_key(KEY + KEY, 2, 3), "one canonical"),
    (lambda: threshold.split_zero(2, 3, width=0), "width"),
    (lambda: threshold.lagrange_coefficients([]), "no shares"),
    (lambda: threshold.lagrange_coefficients([1, 1]), "duplicate"),
    (lambda: threshold.lagrange_coefficients([0, 1]), "between 1 and 255"),
    (lambda: threshold.lagrange_coefficients([1, 256]), "between 1 and 255"),
    (lambda: threshold.recover([share(1, KEY.hex())], 2), "too few"),
    (lambda: threshold.recover([share(1, KEY.hex()), share(1, KEY.hex())], 2), "duplicate"),
    (lambda: threshold.recover([share(1, KEY.hex()), share(2, (KEY + KEY).hex())], 2),
     "differ in length"),
    (lambda: threshold.recover([share(1, KEY.hex()), share(2, ORDER.hex())], 2),
     "not a canonical"),
    (lambda: threshold.add_shares(share(1, KEY.hex()), share(2, KEY.hex())), "different indices"),
    (lambda: threshold.public_key_share(share(1, "00" * 32)), "non-zero"),
    (lambda: threshold.combine({1: bytes(32)}), "invalid evaluated"),
    (lambda: threshold_secret.split_secret(bytes(31), 2, 3), "must be 32 bytes"),
    (lambda: threshold_secret.split_data_key(bytes(33), 2, 3), "must be 32 bytes"),
    (lambda: threshold_secret.recover_data_key(bytes(32), [], 1), "must be 64 bytes"),
    (lambda: threshold_secret.refresh_device_part(bytes(64), ORDER + bytes(32)),
     "not a canonical"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_caller_mistakes_raise_threshold_error(call: Callable[[], object], message: str) -> None:
    """Each bad input raises ThresholdError (a ValueError) with its exact reason."""
    with pytest.raises(ThresholdError, match=message) as caught:
        call()
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("bad", [True, 2.0, "2"])
def test_non_int_threshold_is_a_type_error(bad: object) -> None:
    """bool, float and str thresholds are refused, not coerced."""
    with pytest.raises(TypeError):
        threshold.split(KEY, bad, 3)  # type: ignore[arg-type]


def test_realm_refuses_a_bad_blinded_element() -> None:
    """evaluate on the identity or a non-canonical encoding raises the OPRF's error."""
    s = threshold.split_key(KEY, 1, 1)[0]
    for bad in (bytes(32), b"\xff" * 32, bytes(31)):
        with pytest.raises(oprf.OprfError):
            threshold.evaluate(s, bad)


# --- known-answer vectors (tests/vectors/threshold.json) -------------------------------------


def test_vector_file_is_what_the_script_writes() -> None:
    """Regenerating the vectors gives the committed file byte for byte."""
    text = (VECTORS / "threshold.json").read_text()
    assert json.dumps(make_vectors.build(), indent=1) + "\n" == text


@pytest.mark.parametrize("case", KAT["key_split"] + KAT["threshold_oprf"],
                         ids=lambda c: c["label"])
def test_key_split_vectors(case: dict[str, Any]) -> None:
    """split_key with the case's rng gives the recorded shares and public key shares."""
    key = bytes.fromhex(case["key"])
    shares = threshold.split_key(key, case["threshold"], case["shares"],
                                 rng=make_vectors.ShakeRng(case["label"]))
    assert [{"index": s.index, "value": s.value.hex()} for s in shares] == case["key_shares"]
    for s in shares:
        assert threshold.public_key_share(s).hex() == case["public_key_shares"][str(s.index)]


@pytest.mark.parametrize("case", KAT["lagrange"], ids=lambda c: str(c["indices"]))
def test_lagrange_vectors(case: dict[str, Any]) -> None:
    """The recorded coefficients at zero, in the recorded order."""
    got = threshold.lagrange_coefficients(case["indices"])
    assert [got[i].hex() for i in case["indices"]] == case["coefficients"]


@pytest.mark.parametrize("case", KAT["threshold_oprf"], ids=lambda c: c["label"])
def test_threshold_oprf_vectors(case: dict[str, Any]) -> None:
    """Recorded evaluations and proofs reproduce and verify; every recorded combination gives
    the recorded element and output, which are RFC 9497's EvaluationElement and Output."""
    blinded = bytes.fromhex(case["blinded"])
    public = {int(i): bytes.fromhex(pk) for i, pk in case["public_key_shares"].items()}
    for row in case["evaluations"]:
        s = share(row["index"], next(k["value"] for k in case["key_shares"]
                                     if k["index"] == row["index"]))
        e = threshold.evaluate(s, blinded,
                               rng=make_vectors.ShakeRng(f"{case['label']}/proof/{s.index}"))
        assert (e.element.hex(), e.proof.hex()) == (row["element"], row["proof"])
    evaluations = {r["index"]: Evaluation(r["index"], bytes.fromhex(r["element"]),
                                          bytes.fromhex(r["proof"]))
                   for r in case["evaluations"]}
    pin, blind = bytes.fromhex(case["input"]), bytes.fromhex(case["blind"])
    assert len(case["combinations"]) == len(list(itertools.combinations(evaluations,
                                                                        case["threshold"])))
    for row in case["combinations"]:
        combined = threshold.combine_verified(
            blinded, [evaluations[i] for i in row["indices"]], public, case["threshold"])
        assert combined.hex() == row["combined"] == case["rfc_evaluation_element"]
        assert oprf.finalize(pin, blind, combined).hex() == row["output"] == case["rfc_output"]


@pytest.mark.parametrize("case", KAT["dleq"], ids=lambda c: c["label"])
def test_dleq_vectors(case: dict[str, Any]) -> None:
    """The recorded proof for a key outside the RFC's reproduces and verifies."""
    b = {k: bytes.fromhex(case[k]) for k in ("key", "public_key", "blinded", "element", "proof")}
    assert threshold.public_key_share(Share(1, bytearray(b["key"]))) == b["public_key"]
    proof = dleq.generate_proof(b["key"], b["public_key"], [b["blinded"]], [b["element"]],
                                rng=make_vectors.ShakeRng(case["label"]))
    assert proof == b["proof"]
    assert dleq.verify_proof(b["public_key"], [b["blinded"]], [b["element"]], b["proof"])


@pytest.mark.parametrize("case", KAT["secret_split"], ids=lambda c: c["label"])
def test_secret_split_vectors(case: dict[str, Any]) -> None:
    """split_secret gives the recorded encoding and shares; every t-subset recovers."""
    secret = bytes.fromhex(case["secret"])
    assert threshold_secret.encode_secret(secret).hex() == case["encoded"]
    shares = threshold_secret.split_secret(secret, case["threshold"], case["shares"],
                                           rng=make_vectors.ShakeRng(case["label"]))
    assert [{"index": s.index, "value": s.value.hex()} for s in shares] == case["secret_shares"]
    recorded = [share(r["index"], r["value"]) for r in case["secret_shares"]]
    for subset in itertools.combinations(recorded, case["threshold"]):
        assert threshold_secret.recover_secret(list(subset), case["threshold"]) == secret


@pytest.mark.parametrize("case", KAT["data_key"], ids=lambda c: c["label"])
def test_data_key_and_refresh_vectors(case: dict[str, Any]) -> None:
    """The recorded device part, shares, refresh and refreshed parts, all combining to the key."""
    rows = make_vectors.data_key_case(case["label"], case["threshold"], case["shares"])
    assert rows == case
    key, t = bytes.fromhex(case["key"]), case["threshold"]
    for version in (case, case["refresh"]):
        device = bytes.fromhex(version["device_part"])
        recorded = [share(r["index"], r["value"]) for r in version["realm_shares"]]
        for subset in itertools.combinations(recorded, t):
            assert threshold_secret.recover_data_key(device, list(subset), t) == key
    new = [threshold_secret.refresh_share(share(a["index"], a["value"]),
                                          share(d["index"], d["value"]))
           for a, d in zip(case["realm_shares"], case["refresh"]["share_deltas"], strict=True)]
    assert [s.value.hex() for s in new] == [r["value"] for r in case["refresh"]["realm_shares"]]


def _must_fail(row: dict[str, Any]) -> None:
    op = row["operation"]
    if op == "verify_proof":
        b = {k: bytes.fromhex(row[k]) for k in ("public_key", "blinded", "element", "proof")}
        if not dleq.verify_proof(b["public_key"], [b["blinded"]], [b["element"]], b["proof"]):
            raise AuthenticationFailed("false")
    elif op == "combine_verified":
        case = next(c for c in KAT["threshold_oprf"] if c["label"] == row["label"])
        evs = {r["index"]: Evaluation(r["index"], bytes.fromhex(r["element"]),
                                      bytes.fromhex(r["proof"])) for r in case["evaluations"]}
        for i, repl in row["replace"].items():
            evs[int(i)] = Evaluation(int(i), bytes.fromhex(repl["element"]),
                                     bytes.fromhex(repl["proof"]))
        public = {int(i): bytes.fromhex(pk) for i, pk in case["public_key_shares"].items()}
        threshold.combine_verified(bytes.fromhex(case["blinded"]),
                                   [evs[i] for i in row["indices"]], public, case["threshold"])
    elif op == "recover_data_key":
        threshold_secret.recover_data_key(
            bytes.fromhex(row["device_part"]),
            [share(r["index"], r["value"]) for r in row["realm_shares"]], row["threshold"])
    elif op == "lagrange_coefficients":
        threshold.lagrange_coefficients(row["indices"])
    elif op == "split":
        threshold.split(KEY, row["threshold"], row["shares"])


@pytest.mark.parametrize("row", KAT["must_fail"], ids=lambda r: r["why"])
def test_must_fail_vectors(row: dict[str, Any]) -> None:
    """Every must-fail row is refused with the recorded error (and faulty realms named)."""
    errors: dict[str, type[Exception]] = {
        "false": AuthenticationFailed, "DecodeError": DecodeError,
        "ThresholdError": ThresholdError,
    }
    kind, _, named = row["error"].partition(" ")
    expected = InvalidEvaluation if kind == "InvalidEvaluation" else errors[kind]
    with pytest.raises(expected) as caught:
        _must_fail(row)
    if named:
        assert isinstance(caught.value, InvalidEvaluation)
        assert list(caught.value.indices) == json.loads(named)
