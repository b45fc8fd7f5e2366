"""Tests for the RFC 9497 OPRF (mode 0, ristretto255-SHA512) in splitvault.crypto.oprf."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from splitvault.crypto import oprf
from splitvault.crypto.oprf import OprfError

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
RFC9497 = json.loads((VECTORS / "rfc9497_ristretto255_sha512.json").read_text())
RFC9380 = json.loads((VECTORS / "rfc9380_expand_message_xmd_sha512.json").read_text())

SUITES: list[dict[str, Any]] = RFC9497["suites"]
MODE0 = next(s for s in SUITES if s["mode"] == 0)
MODE0_VECTORS = [
    pytest.param(v, id=f"input={v['Input'][:8]}") for v in MODE0["vectors"] if v["Batch"] == 1
]

IDENTITY = bytes(32)
# Encodings libsodium must refuse: s >= p, s = p itself (non-canonical), s "negative" (odd).
BAD_ENCODINGS = [
    pytest.param(b"\xff" * 32, id="all-ff"),
    pytest.param(b"\xed" + b"\xff" * 30 + b"\x7f", id="field-prime"),
    pytest.param(b"\x01" + bytes(31), id="negative-s"),
]
WRONG_LENGTHS = [pytest.param(bytes(n), id=f"len{n}") for n in (0, 31, 33, 64)]
# The ristretto255 group order L, little-endian: the smallest non-canonical scalar.
GROUP_ORDER = bytes.fromhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
BAD_SCALARS = [
    pytest.param(bytes(32), id="zero"),
    pytest.param(GROUP_ORDER, id="order"),
    pytest.param(b"\x05" + bytes(30) + b"\x80", id="bit255-set"),
    pytest.param(b"\xff" * 32, id="all-ff"),
    pytest.param(b"\x01" * 31, id="len31"),
    pytest.param(b"\x01" * 33, id="len33"),
]

seeds = st.binary(min_size=32, max_size=32)
inputs = st.binary(max_size=80)
# Mostly invalid encodings from raw bytes, plus valid elements so the success path is exercised.
any_32_bytes = st.one_of(st.binary(min_size=32, max_size=32), seeds.map(oprf.hash_to_group))


def key_from(seed: bytes) -> bytearray:
    """Deterministic key from a Hypothesis seed, so failures shrink and replay."""
    return oprf.derive_key_pair(seed, b"test")[0]


def fixed(blind_hex: str) -> Any:
    """An rng returning the vector's fixed blind."""
    return lambda: bytes.fromhex(blind_hex)


# --- RFC 9497 Appendix A.1 vectors --------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: f"mode{s['mode']}")
def test_context_string_matches_vector_group_dst(suite: dict[str, Any]) -> None:
    """The contextString for every mode reproduces the vectors' HashToGroup DST."""
    assert b"HashToGroup-" + oprf.context_string(suite["mode"]) == bytes.fromhex(suite["groupDST"])


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: f"mode{s['mode']}")
def test_derive_key_pair_matches_vectors(suite: dict[str, Any]) -> None:
    """DeriveKeyPair(Seed, KeyInfo) gives skSm (and pkSm where published) in every mode."""
    sk, pk = oprf.derive_key_pair(
        bytes.fromhex(suite["seed"]), bytes.fromhex(suite["keyInfo"]), suite["mode"]
    )
    assert isinstance(sk, bytearray)
    assert sk.hex() == suite["skSm"]
    if "pkSm" in suite:
        assert pk.hex() == suite["pkSm"]


@pytest.mark.parametrize("vector", MODE0_VECTORS)
def test_blind_matches_vector(vector: dict[str, Any]) -> None:
    """Blind with the vector's fixed blind yields its BlindedElement byte for byte."""
    r, blinded = oprf.blind(bytes.fromhex(vector["Input"]), rng=fixed(vector["Blind"]))
    assert isinstance(r, bytearray)
    assert r.hex() == vector["Blind"]
    assert blinded.hex() == vector["BlindedElement"]


@pytest.mark.parametrize("vector", MODE0_VECTORS)
def test_blind_evaluate_matches_vector(vector: dict[str, Any]) -> None:
    """BlindEvaluate(skSm, BlindedElement) yields the vector's EvaluationElement."""
    sk = bytes.fromhex(MODE0["skSm"])
    evaluated = oprf.blind_evaluate(sk, bytes.fromhex(vector["BlindedElement"]))
    assert evaluated.hex() == vector["EvaluationElement"]


@pytest.mark.parametrize("vector", MODE0_VECTORS)
def test_finalize_matches_vector(vector: dict[str, Any]) -> None:
    """Finalize(Input, Blind, EvaluationElement) yields the vector's 64-byte Output."""
    out = oprf.finalize(
        bytes.fromhex(vector["Input"]),
        bytes.fromhex(vector["Blind"]),
        bytes.fromhex(vector["EvaluationElement"]),
    )
    assert isinstance(out, bytearray)
    assert len(out) == oprf.OUTPUT_LEN
    assert out.hex() == vector["Output"]


@pytest.mark.parametrize("vector", MODE0_VECTORS)
def test_evaluate_matches_vector(vector: dict[str, Any]) -> None:
    """Server-side Evaluate(skSm, Input) equals the vector's Output without any blinding."""
    out = oprf.evaluate(bytes.fromhex(MODE0["skSm"]), bytes.fromhex(vector["Input"]))
    assert out.hex() == vector["Output"]


@pytest.mark.parametrize("vector", MODE0_VECTORS)
def test_bytearray_secrets_match_vector(vector: dict[str, Any]) -> None:
    """bytearray keys, blinds and inputs give the same bytes and stay wipeable afterwards."""
    sk = bytearray.fromhex(MODE0["skSm"])
    r = bytearray.fromhex(vector["Blind"])
    data = bytearray.fromhex(vector["Input"])
    evaluated = oprf.blind_evaluate(sk, bytes.fromhex(vector["BlindedElement"]))
    assert oprf.finalize(data, r, evaluated).hex() == vector["Output"]
    assert oprf.evaluate(sk, data).hex() == vector["Output"]
    assert r.hex() == vector["Blind"] and sk.hex() == MODE0["skSm"]  # callers' buffers intact
    for buf in (sk, r, data):
        buf.clear()  # raises BufferError if a ctypes view still pinned the buffer


# --- RFC 9380 Appendix K.3 ----------------------------------------------------------------


@pytest.mark.parametrize(
    "vector",
    [pytest.param(v, id=f"{v['msg'][:5]}-{v['len_in_bytes']}") for v in RFC9380["vectors"]],
)
def test_expand_message_xmd_matches_rfc9380(vector: dict[str, Any]) -> None:
    """expand_message_xmd(SHA-512) reproduces RFC 9380 K.3, including the multi-block path."""
    out = oprf.expand_message_xmd(
        vector["msg"].encode(), RFC9380["dst"].encode(), vector["len_in_bytes"]
    )
    assert out.hex() == vector["uniform_bytes"]


@pytest.mark.parametrize(
    ("dst", "length"),
    [(b"DST", 0), (b"DST", 65536), (b"DST", 255 * 64 + 1), (b"", 32), (b"x" * 256, 32)],
    ids=["len0", "len65536", "ell256", "empty-dst", "dst256"],
)
def test_expand_message_xmd_rejects_bad_parameters(dst: bytes, length: int) -> None:
    """Lengths RFC 9380 sec 5.3.1 aborts on, and empty or oversize DSTs, raise OprfError."""
    with pytest.raises(OprfError):
        oprf.expand_message_xmd(b"msg", dst, length)


def test_expand_message_xmd_longest_output() -> None:
    """The largest allowed output (255 blocks) is produced at its exact length."""
    assert len(oprf.expand_message_xmd(b"msg", b"DST", 255 * 64)) == 255 * 64


# --- Hypothesis properties ----------------------------------------------------------------


@given(seed=seeds, data=inputs)
def test_protocol_output_equals_direct_evaluation(seed: bytes, data: bytes) -> None:
    """Blind, BlindEvaluate and Finalize always agree with the server's direct Evaluate."""
    sk = key_from(seed)
    r, blinded = oprf.blind(data)
    assert oprf.finalize(data, r, oprf.blind_evaluate(sk, blinded)) == oprf.evaluate(sk, data)


@given(seed=seeds, data=inputs)
def test_fresh_blinds_hide_input_but_keep_output(seed: bytes, data: bytes) -> None:
    """Two blindings of one input differ on the wire yet finalize to the same output."""
    sk = key_from(seed)
    r1, b1 = oprf.blind(data)
    r2, b2 = oprf.blind(data)
    assert r1 != r2 and b1 != b2
    out1 = oprf.finalize(data, r1, oprf.blind_evaluate(sk, b1))
    out2 = oprf.finalize(data, r2, oprf.blind_evaluate(sk, b2))
    assert out1 == out2


@given(seed1=seeds, seed2=seeds, data=inputs)
def test_different_keys_give_different_outputs(seed1: bytes, seed2: bytes, data: bytes) -> None:
    """The same input under two different keys gives two different outputs."""
    sk1, sk2 = key_from(seed1), key_from(seed2)
    if sk1 != sk2:
        assert oprf.evaluate(sk1, data) != oprf.evaluate(sk2, data)


@given(seed=seeds, data1=inputs, data2=inputs)
def test_different_inputs_give_different_outputs(seed: bytes, data1: bytes, data2: bytes) -> None:
    """Two different inputs under one key give two different outputs."""
    sk = key_from(seed)
    if data1 != data2:
        assert oprf.evaluate(sk, data1) != oprf.evaluate(sk, data2)


@given(element=any_32_bytes)
def test_blind_evaluate_total_on_32_byte_strings(element: bytes) -> None:
    """Any 32-byte string given to BlindEvaluate yields 32 bytes or OprfError, nothing else."""
    try:
        out = oprf.blind_evaluate(bytes.fromhex(MODE0["skSm"]), element)
    except OprfError:
        return
    assert isinstance(out, bytes) and len(out) == oprf.ELEMENT_LEN


@given(element=any_32_bytes)
def test_finalize_total_on_32_byte_strings(element: bytes) -> None:
    """Any 32-byte evaluated element yields a 64-byte output or OprfError, nothing else."""
    r = bytes.fromhex(MODE0["vectors"][0]["Blind"])
    try:
        out = oprf.finalize(b"x", r, element)
    except OprfError:
        return
    assert len(out) == oprf.OUTPUT_LEN


def test_generate_key_is_fresh_usable_bytearray() -> None:
    """generate_key returns distinct 32-byte bytearrays that BlindEvaluate accepts."""
    k1, k2 = oprf.generate_key(), oprf.generate_key()
    assert isinstance(k1, bytearray) and len(k1) == oprf.SCALAR_LEN and k1 != k2
    assert len(oprf.evaluate(k1, b"pin")) == oprf.OUTPUT_LEN


# --- must-fail rows -----------------------------------------------------------------------


def test_blind_evaluate_rejects_identity() -> None:
    """The server refuses the identity as a blinded element (RFC 9497 sec 3.3.1)."""
    with pytest.raises(OprfError, match="identity"):
        oprf.blind_evaluate(bytes.fromhex(MODE0["skSm"]), IDENTITY)


def test_finalize_rejects_identity() -> None:
    """The client refuses the identity as an evaluated element (RFC 9497 sec 3.3.1)."""
    with pytest.raises(OprfError, match="identity"):
        oprf.finalize(b"x", bytes.fromhex(MODE0["vectors"][0]["Blind"]), IDENTITY)


@pytest.mark.parametrize("element", BAD_ENCODINGS + WRONG_LENGTHS)
def test_blind_evaluate_rejects_bad_elements(element: bytes) -> None:
    """Invalid or wrong-length blinded elements raise OprfError on the server."""
    with pytest.raises(OprfError):
        oprf.blind_evaluate(bytes.fromhex(MODE0["skSm"]), element)


@pytest.mark.parametrize("element", BAD_ENCODINGS + WRONG_LENGTHS)
def test_finalize_rejects_bad_elements(element: bytes) -> None:
    """Invalid or wrong-length evaluated elements raise OprfError on the client."""
    with pytest.raises(OprfError):
        oprf.finalize(b"x", bytes.fromhex(MODE0["vectors"][0]["Blind"]), element)


@pytest.mark.parametrize("sk", BAD_SCALARS)
def test_bad_keys_rejected(sk: bytes) -> None:
    """Zero, non-canonical and wrong-length keys are refused by BlindEvaluate and Evaluate."""
    blinded = bytes.fromhex(MODE0["vectors"][0]["BlindedElement"])
    with pytest.raises(OprfError):
        oprf.blind_evaluate(sk, blinded)
    with pytest.raises(OprfError):
        oprf.evaluate(sk, b"x")


@pytest.mark.parametrize("r", BAD_SCALARS)
def test_bad_blinds_rejected(r: bytes) -> None:
    """Zero, non-canonical and wrong-length blinds are refused by Blind's rng and Finalize."""
    with pytest.raises(OprfError):
        oprf.blind(b"x", rng=lambda: r)
    evaluated = bytes.fromhex(MODE0["vectors"][0]["EvaluationElement"])
    with pytest.raises(OprfError):
        oprf.finalize(b"x", r, evaluated)


def test_input_longer_than_length_prefix_rejected() -> None:
    """Inputs of 2^16 bytes or more cannot be length-prefixed and raise OprfError."""
    sk = bytes.fromhex(MODE0["skSm"])
    vector = MODE0["vectors"][0]
    too_long = bytes(65536)
    with pytest.raises(OprfError):
        oprf.blind(too_long)
    with pytest.raises(OprfError):
        oprf.evaluate(sk, too_long)
    with pytest.raises(OprfError):
        oprf.finalize(
            too_long, bytes.fromhex(vector["Blind"]), bytes.fromhex(vector["EvaluationElement"])
        )
    assert len(oprf.evaluate(sk, bytes(65535))) == oprf.OUTPUT_LEN  # the boundary still works


@pytest.mark.parametrize("seed", [bytes(31), bytes(33), b""], ids=["len31", "len33", "empty"])
def test_derive_key_pair_rejects_bad_seed(seed: bytes) -> None:
    """DeriveKeyPair needs exactly a 32-byte seed."""
    with pytest.raises(OprfError):
        oprf.derive_key_pair(seed, b"info")


def test_derive_key_pair_rejects_long_info() -> None:
    """DeriveKeyPair info must fit its 2-byte length prefix."""
    with pytest.raises(OprfError):
        oprf.derive_key_pair(bytes(32), bytes(65536))


@pytest.mark.parametrize("mode", [-1, 3, 256])
def test_unknown_mode_rejected(mode: int) -> None:
    """Only modes 0, 1 and 2 have a context string."""
    with pytest.raises(OprfError):
        oprf.context_string(mode)


def test_error_messages_do_not_echo_input() -> None:
    """Two different bad elements give the same fixed message, with no input bytes in it."""
    sk = bytes.fromhex(MODE0["skSm"])
    messages = set()
    for bad in (b"\xff" * 32, b"\xfe" * 32):
        with pytest.raises(OprfError) as info:
            oprf.blind_evaluate(sk, bad)
        messages.add(str(info.value))
        assert "ff" not in str(info.value).lower() and "fe" not in str(info.value).lower()
    assert len(messages) == 1


def test_wrong_types_raise_type_error() -> None:
    """Non-bytes arguments are a programming error (TypeError), not silently coerced."""
    with pytest.raises(TypeError):
        oprf.evaluate("secret", b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        oprf.blind(b"x", rng=lambda: 7)  # type: ignore[arg-type, return-value]
