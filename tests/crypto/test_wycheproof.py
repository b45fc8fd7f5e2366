"""Every Wycheproof case for our primitives, run through splitvault's own crypto wrappers.

Vectors: C2SP/wycheproof ``testvectors_v1`` at commit dac1dd4 (see
``tests/vectors/wycheproof/SOURCE.md``). Each case becomes its own test, named by file and
``tcId``, and each file has a count test so a group the loader skipped fails loudly.

What libsodium does with X25519's "acceptable" cases: it computes the RFC 7748 result for
twist points, non-canonical u-coordinates and every other special public key, and refuses
only the low-order points, whose shared secret is all zero (``crypto_scalarmult`` returns
-1; our ``x25519`` turns that into ``AuthenticationFailed``). The tests pin exactly that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from splitvault.crypto.envelope import x25519
from splitvault.crypto.errors import AuthenticationFailed
from splitvault.crypto.kdf import hkdf
from splitvault.crypto.sealing import TAG_LEN, aead_decrypt, aead_encrypt
from splitvault.crypto.signing import verify

WYCHEPROOF = Path(__file__).resolve().parent.parent / "vectors" / "wycheproof"
RESULTS = {"valid", "invalid", "acceptable"}

Case = dict[str, Any]


def load(name: str) -> dict[str, Any]:
    """One Wycheproof file, parsed."""
    data: dict[str, Any] = json.loads((WYCHEPROOF / name).read_text())
    return data


def cases(data: dict[str, Any]) -> list[Any]:
    """Every test of every group as a ``pytest.param((group, test), id="tcN")``."""
    return [
        pytest.param(group, test, id=f"tc{test['tcId']}")
        for group in data["testGroups"]
        for test in group["tests"]
    ]


def h(value: str) -> bytes:
    """Hex to bytes."""
    return bytes.fromhex(value)


AEAD = load("xchacha20_poly1305_test.json")
EDDSA = load("ed25519_test.json")
XDH = load("x25519_test.json")
HKDF = {"sha256": load("hkdf_sha256_test.json"), "sha512": load("hkdf_sha512_test.json")}

AEAD_CASES = cases(AEAD)
EDDSA_CASES = cases(EDDSA)
XDH_CASES = cases(XDH)
HKDF_CASES = [
    pytest.param(alg, *p.values, id=f"{alg}-{p.id}") for alg, d in HKDF.items() for p in cases(d)
]

FILES = [
    pytest.param(AEAD, AEAD_CASES, "XCHACHA20-POLY1305", id="xchacha20_poly1305"),
    pytest.param(EDDSA, EDDSA_CASES, "EDDSA", id="ed25519"),
    pytest.param(XDH, XDH_CASES, "XDH", id="x25519"),
    pytest.param(
        HKDF["sha256"],
        [p for p in HKDF_CASES if p.values[0] == "sha256"],
        "HKDF-SHA-256",
        id="hkdf_sha256",
    ),
    pytest.param(
        HKDF["sha512"],
        [p for p in HKDF_CASES if p.values[0] == "sha512"],
        "HKDF-SHA-512",
        id="hkdf_sha512",
    ),
]


@pytest.mark.parametrize(("data", "params", "algorithm"), FILES)
def test_every_case_of_the_file_is_collected(
    data: dict[str, Any], params: list[Any], algorithm: str
) -> None:
    """The parametrized cases are exactly the file's ``numberOfTests``, unique and classified."""
    assert data["algorithm"] == algorithm
    assert len(params) == data["numberOfTests"]
    tests = [p.values[-1] for p in params]
    assert len({t["tcId"] for t in tests}) == len(tests)
    assert {t["result"] for t in tests} <= RESULTS


# --- XChaCha20-Poly1305 ---------------------------------------------------------------------

# Only these two kinds of invalid case exist in the file; a new kind must get its own branch.
AEAD_INVALID_FLAGS = {"ModifiedTag", "InvalidNonceSize"}


@pytest.mark.parametrize(("group", "test"), AEAD_CASES)
def test_xchacha20_poly1305(group: Case, test: Case) -> None:
    """aead_encrypt/aead_decrypt accept every valid case and reject every invalid one correctly."""
    key, nonce, aad = h(test["key"]), h(test["iv"]), h(test["aad"])
    msg, ct, tag = h(test["msg"]), h(test["ct"]), h(test["tag"])
    assert group["tagSize"] == TAG_LEN * 8
    assert len(nonce) * 8 == group["ivSize"]
    if test["result"] == "valid":
        assert aead_encrypt(key, nonce, msg, aad) == ct + tag
        assert aead_decrypt(key, nonce, ct + tag, aad) == msg
        return
    assert test["result"] == "invalid"
    flags = set(test["flags"])
    assert flags <= AEAD_INVALID_FLAGS, f"unhandled invalid case {flags}"
    if "InvalidNonceSize" in flags:
        # A nonce that is not 24 bytes is a caller mistake, refused before any crypto.
        assert len(nonce) != 24
        with pytest.raises(ValueError, match="nonce must be 24 bytes"):
            aead_encrypt(key, nonce, msg, aad)
        with pytest.raises(ValueError, match="nonce must be 24 bytes"):
            aead_decrypt(key, nonce, ct + tag, aad)
    else:
        # Same key, nonce and plaintext as a good message, only the tag altered.
        sealed = aead_encrypt(key, nonce, msg, aad)
        assert sealed[:-TAG_LEN] == ct
        assert sealed[-TAG_LEN:] != tag
        with pytest.raises(AuthenticationFailed):
            aead_decrypt(key, nonce, ct + tag, aad)


# --- Ed25519 --------------------------------------------------------------------------------


@pytest.mark.parametrize(("group", "test"), EDDSA_CASES)
def test_ed25519_verify(group: Case, test: Case) -> None:
    """verify accepts every valid signature and raises AuthenticationFailed for each invalid one."""
    assert group["publicKey"]["curve"] == "edwards25519"
    public, msg, sig = h(group["publicKey"]["pk"]), h(test["msg"]), h(test["sig"])
    if test["result"] == "valid":
        verify(public, msg, sig)
    else:
        assert test["result"] == "invalid"
        with pytest.raises(AuthenticationFailed):
            verify(public, msg, sig)


# --- X25519 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("group", "test"), XDH_CASES)
def test_x25519(group: Case, test: Case) -> None:
    """x25519 matches each valid case; of acceptable ones it refuses just the all-zero secret."""
    assert group["curve"] == "curve25519"
    private, public, shared = h(test["private"]), h(test["public"]), h(test["shared"])
    zero_shared = shared == bytes(32)
    assert zero_shared == ("ZeroSharedSecret" in test["flags"])
    if test["result"] == "invalid":
        with pytest.raises(AuthenticationFailed):
            x25519(private, public)
    elif test["result"] == "acceptable" and zero_shared:
        # Low-order peer key: libsodium rejects the all-zero output (RFC 7748 section 6.1).
        with pytest.raises(AuthenticationFailed):
            x25519(private, public)
    else:
        # Valid, and acceptable twist / non-canonical / special keys: RFC 7748's answer.
        assert x25519(private, public) == shared


# --- HKDF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "group", "test"), HKDF_CASES)
def test_hkdf(algorithm: str, group: Case, test: Case) -> None:
    """hkdf matches every valid case; an output longer than 255 hash blocks raises ValueError."""
    ikm, salt, info, size = h(test["ikm"]), h(test["salt"]), h(test["info"]), test["size"]
    if test["result"] == "valid":
        okm = hkdf(ikm, salt=salt, info=info, length=size, algorithm=algorithm)
        assert okm == h(test["okm"])
        if not salt:
            # An empty salt equals the default (HashLen zero bytes), so salt=None agrees.
            assert hkdf(ikm, salt=None, info=info, length=size, algorithm=algorithm) == okm
        return
    assert test["result"] == "invalid"
    assert test["flags"] == ["SizeTooLarge"], f"unhandled invalid case {test['flags']}"
    # pyca/cryptography refuses L > 255 * HashLen with a plain ValueError, which our
    # wrapper lets through: asking for too much output is a caller mistake.
    with pytest.raises(ValueError, match="Cannot derive keys larger than"):
        hkdf(ikm, salt=salt, info=info, length=size, algorithm=algorithm)
