"""Properties and must-fail rows for the crypto wrappers: shares, sealing, envelopes,
encoding, signatures and the KDFs.

Hypothesis runs derandomized (a fixed example sequence per test) so a run cannot flake;
the statistical share test uses a seeded generator for the same reason.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from splitvault.crypto.encoding import decode, encode, u64
from splitvault.crypto.envelope import (
    OVERHEAD,
    generate_keypair,
    open_envelope,
    public_key,
    seal_envelope,
)
from splitvault.crypto.errors import AuthenticationFailed, DecodeError
from splitvault.crypto.kdf import argon2id, hkdf
from splitvault.crypto.sealing import (
    NONCE_LEN,
    TAG_LEN,
    aead_decrypt,
    aead_encrypt,
    open_sealed,
    seal,
)
from splitvault.crypto.shares import KEY_LEN, combine, split
from splitvault.crypto.signing import public_key as signing_public_key
from splitvault.crypto.signing import sign, verify

DETERMINISTIC = settings(derandomize=True, deadline=None, max_examples=150)
"""Fixed example sequence, no per-example deadline (CI machines vary)."""

keys = st.binary(min_size=32, max_size=32)
payloads = st.binary(max_size=64)
domains = st.binary(min_size=1, max_size=8)
# Short fields full of zero bytes look like length prefixes: the hardest case for injectivity.
field_lists = st.lists(
    st.one_of(st.binary(max_size=6), st.sampled_from([b"", b"\x00" * 4, b"\x00\x00\x00\x01a"])),
    max_size=4,
)


def fixed_rng(pad: bytes) -> Callable[[int], bytes]:
    """An rng for ``split`` that always returns ``pad``."""
    return lambda n: pad[:n]


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with bit number ``bit`` (0 = lowest bit of the first byte) inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def xor(a: bytes | bytearray, b: bytes | bytearray) -> bytes:
    """Bytewise XOR of two equal-length strings."""
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- split / combine ------------------------------------------------------------------------


@DETERMINISTIC
@given(keys)
def test_combine_inverts_split(key: bytes) -> None:
    """combine(*split(k)) == k for every 32-byte key."""
    assert combine(*split(key)) == key


@DETERMINISTIC
@given(keys)
def test_shares_xor_to_key_and_are_full_length(key: bytes) -> None:
    """Both shares are 32-byte bytearrays (never halves of the key) and XOR to the key."""
    device, server = split(key)
    assert isinstance(device, bytearray) and isinstance(server, bytearray)
    assert len(device) == len(server) == KEY_LEN
    assert xor(device, server) == key


@DETERMINISTIC
@given(keys, keys, keys)
def test_device_share_is_the_pad_whatever_the_key(key1: bytes, key2: bytes, pad: bytes) -> None:
    """With an injected rng, the device share is exactly the pad, independent of the key."""
    assert split(key1, rng=fixed_rng(pad))[0] == pad
    assert split(key2, rng=fixed_rng(pad))[0] == pad


@DETERMINISTIC
@given(keys, keys, keys)
def test_every_server_share_fits_every_key(key1: bytes, key2: bytes, pad: bytes) -> None:
    """Any server share of key1 is also the server share of key2 under exactly one other pad.

    So over a uniform pad the server share has the same distribution for every key: alone
    it says nothing about the key (one-time pad).
    """
    other_pad = xor(xor(pad, key1), key2)
    assert split(key1, rng=fixed_rng(pad))[1] == split(key2, rng=fixed_rng(other_pad))[1]


def test_server_share_bits_are_uniform_for_a_fixed_key() -> None:
    """Over 4000 seeded splits of one fixed key, each server-share bit is 1 about half the time."""
    rounds = 4000
    key = bytes(16) + b"\xff" * 16  # fixed; half its bits 0, half 1, so either kind of leak shows
    rng = random.Random(20240611)  # seeded: the outcome is fixed, the test cannot flake
    ones = [0] * (KEY_LEN * 8)
    for _ in range(rounds):
        _, server = split(key, rng=rng.randbytes)
        value = int.from_bytes(server, "little")
        for bit in range(KEY_LEN * 8):
            ones[bit] += (value >> bit) & 1
    # Binomial(4000, 1/2) has standard deviation ~31.6; allow 5 of them per bit. A split that
    # copied any key bit into the server share would give 0 or 4000 at that position.
    assert all(abs(count - rounds / 2) < 160 for count in ones), ones
    total = sum(ones) / (rounds * KEY_LEN * 8)
    assert abs(total - 0.5) < 0.01


@pytest.mark.parametrize("length", [0, 1, 16, 31, 33, 64])
def test_split_rejects_wrong_key_length(length: int) -> None:
    """split of a key that is not 32 bytes raises ValueError."""
    with pytest.raises(ValueError, match="32 bytes"):
        split(bytes(length))


@pytest.mark.parametrize(("device", "server"), [(31, 32), (32, 31), (33, 32), (32, 33), (0, 0)])
def test_combine_rejects_wrong_share_lengths(device: int, server: int) -> None:
    """combine of shares that are not both 32 bytes raises ValueError."""
    with pytest.raises(ValueError, match="32 bytes"):
        combine(bytes(device), bytes(server))


@pytest.mark.parametrize("length", [0, 31, 33])
def test_split_rejects_short_or_long_rng_output(length: int) -> None:
    """An injected rng that returns the wrong number of bytes raises ValueError."""
    with pytest.raises(ValueError, match="rng"):
        split(bytes(32), rng=lambda n: bytes(length))


# --- seal / open_sealed ---------------------------------------------------------------------


@DETERMINISTIC
@given(keys, payloads, payloads)
def test_seal_round_trip(key: bytes, plaintext: bytes, aad: bytes) -> None:
    """open_sealed(seal(p)) == p for any plaintext and aad; the blob is nonce+ct+tag."""
    blob = seal(key, plaintext, aad)
    assert len(blob) == NONCE_LEN + len(plaintext) + TAG_LEN
    assert open_sealed(key, blob, aad) == plaintext


@DETERMINISTIC
@given(keys, payloads, payloads, st.data())
def test_seal_any_bit_flip_fails(
    key: bytes, plaintext: bytes, aad: bytes, data: st.DataObject
) -> None:
    """Flipping any single bit of a sealed blob (nonce, ciphertext or tag) fails to open."""
    blob = seal(key, plaintext, aad)
    bit = data.draw(st.integers(0, len(blob) * 8 - 1), label="bit")
    with pytest.raises(AuthenticationFailed):
        open_sealed(key, flip(blob, bit), aad)


@DETERMINISTIC
@given(keys, keys, payloads, payloads, payloads)
def test_seal_other_aad_or_key_fails(
    key: bytes, other_key: bytes, plaintext: bytes, aad: bytes, other_aad: bytes
) -> None:
    """A sealed blob opened with a different aad or a different key fails."""
    blob = seal(key, plaintext, aad)
    if other_aad != aad:
        with pytest.raises(AuthenticationFailed):
            open_sealed(key, blob, other_aad)
    if other_key != key:
        with pytest.raises(AuthenticationFailed):
            open_sealed(other_key, blob, aad)


@DETERMINISTIC
@given(keys, payloads, payloads, st.data())
def test_seal_truncated_or_extended_fails(
    key: bytes, plaintext: bytes, aad: bytes, data: st.DataObject
) -> None:
    """Any proper prefix of a sealed blob, or the blob with bytes appended, fails to open."""
    blob = seal(key, plaintext, aad)
    cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
    with pytest.raises(AuthenticationFailed):
        open_sealed(key, blob[:cut], aad)
    extra = data.draw(st.binary(min_size=1, max_size=4), label="extra")
    with pytest.raises(AuthenticationFailed):
        open_sealed(key, blob + extra, aad)


def test_seal_uses_a_fresh_nonce_each_time() -> None:
    """Two seals of the same message differ (random nonce), and an explicit nonce is used as is."""
    key = bytes(range(32))
    assert seal(key, b"same", b"aad") != seal(key, b"same", b"aad")
    nonce = bytes(range(NONCE_LEN))
    blob = seal(key, b"same", b"aad", nonce=nonce)
    assert blob[:NONCE_LEN] == nonce
    assert blob == seal(key, b"same", b"aad", nonce=nonce)


@pytest.mark.parametrize(("key_len", "nonce_len"), [(31, 24), (33, 24), (0, 24), (32, 12), (32, 0)])
def test_aead_rejects_wrong_key_or_nonce_size(key_len: int, nonce_len: int) -> None:
    """A key that is not 32 bytes or a nonce that is not 24 raises ValueError (caller mistake)."""
    key, nonce = bytes(key_len), bytes(nonce_len)
    with pytest.raises(ValueError, match="must be"):
        aead_encrypt(key, nonce, b"m", b"")
    with pytest.raises(ValueError, match="must be"):
        aead_decrypt(key, nonce, bytes(TAG_LEN), b"")


def test_aead_decrypt_of_less_than_a_tag_fails() -> None:
    """A ciphertext shorter than the tag raises AuthenticationFailed, not an index error."""
    for length in range(TAG_LEN):
        with pytest.raises(AuthenticationFailed):
            aead_decrypt(bytes(32), bytes(NONCE_LEN), bytes(length), b"")


# --- envelopes ------------------------------------------------------------------------------


@DETERMINISTIC
@given(keys, payloads, payloads)
def test_envelope_round_trip(secret: bytes, plaintext: bytes, aad: bytes) -> None:
    """open_envelope(seal_envelope(p)) == p for any recipient key, plaintext and aad."""
    envelope = seal_envelope(public_key(secret), plaintext, aad)
    assert len(envelope) == OVERHEAD + len(plaintext)
    assert open_envelope(secret, envelope, aad) == plaintext
    assert open_envelope(bytearray(secret), envelope, aad) == plaintext


@DETERMINISTIC
@given(keys, keys, payloads, payloads, payloads)
def test_envelope_other_aad_or_recipient_fails(
    secret: bytes, other_secret: bytes, plaintext: bytes, aad: bytes, other_aad: bytes
) -> None:
    """An envelope opened with another aad or by another recipient's key fails."""
    envelope = seal_envelope(public_key(secret), plaintext, aad)
    if other_aad != aad:
        with pytest.raises(AuthenticationFailed):
            open_envelope(secret, envelope, other_aad)
    assume(public_key(other_secret) != public_key(secret))
    with pytest.raises(AuthenticationFailed):
        open_envelope(other_secret, envelope, aad)


@DETERMINISTIC
@given(keys, payloads, payloads, st.data())
def test_envelope_any_bit_flip_fails(
    secret: bytes, plaintext: bytes, aad: bytes, data: st.DataObject
) -> None:
    """Flipping any single bit of an envelope (ephemeral key, nonce, ct or tag) fails to open."""
    envelope = seal_envelope(public_key(secret), plaintext, aad)
    bit = data.draw(st.integers(0, len(envelope) * 8 - 1), label="bit")
    with pytest.raises(AuthenticationFailed):
        open_envelope(secret, flip(envelope, bit), aad)


def test_envelope_flip_of_ignored_x25519_bit_fails() -> None:
    """Bit 255 of the ephemeral key, which X25519 ignores, still breaks the envelope.

    The shared secret is the same, but both public keys are in the HKDF salt as sent.
    """
    secret, public = generate_keypair()
    envelope = seal_envelope(public, b"pan", b"aad")
    with pytest.raises(AuthenticationFailed):
        open_envelope(secret, flip(envelope, 255), b"aad")


@pytest.mark.parametrize(
    "ephemeral",
    [
        pytest.param(bytes(32), id="zero"),
        pytest.param(b"\x01" + bytes(31), id="one"),
        pytest.param(
            bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            id="order-8",
        ),
    ],
)
def test_envelope_with_low_order_ephemeral_key_fails(ephemeral: bytes) -> None:
    """An envelope whose ephemeral key is a low-order point fails (all-zero shared secret)."""
    secret, public = generate_keypair()
    envelope = seal_envelope(public, b"pan", b"aad")
    with pytest.raises(AuthenticationFailed):
        open_envelope(secret, ephemeral + envelope[32:], b"aad")


def test_envelope_truncated_fails() -> None:
    """Every proper prefix of an envelope fails to open."""
    secret, public = generate_keypair()
    envelope = seal_envelope(public, b"pan", b"aad")
    for cut in range(len(envelope)):
        with pytest.raises(AuthenticationFailed):
            open_envelope(secret, envelope[:cut], b"aad")


@pytest.mark.parametrize("length", [0, 31, 33])
def test_envelope_public_key_rejects_wrong_length(length: int) -> None:
    """An X25519 secret that is not 32 bytes is a caller mistake: ValueError, no memory read."""
    with pytest.raises(ValueError):
        public_key(bytes(length))


def test_envelopes_are_randomized() -> None:
    """Two envelopes of the same message to the same key differ (fresh ephemeral key and nonce)."""
    _, public = generate_keypair()
    first, second = (seal_envelope(public, b"pan", b"aad") for _ in range(2))
    assert first[:32] != second[:32]
    assert first != second


# --- encode / decode ------------------------------------------------------------------------


@DETERMINISTIC
@given(domains, field_lists)
def test_encode_decode_round_trip(domain: bytes, fields: list[bytes]) -> None:
    """decode(encode(d, *fs), len(fs)) == fs for any domain and field list."""
    assert decode(domain, encode(domain, *fields), len(fields)) == fields
    assert decode(domain, encode(domain, *map(bytearray, fields)), len(fields)) == fields


@settings(derandomize=True, deadline=None, max_examples=300)
@given(domains, field_lists, domains, field_lists)
def test_encoding_is_injective(
    domain1: bytes, fields1: list[bytes], domain2: bytes, fields2: list[bytes]
) -> None:
    """Two different (domain, fields) inputs never encode to the same bytes."""
    assume((domain1, fields1) != (domain2, fields2))
    assert encode(domain1, *fields1) != encode(domain2, *fields2)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((b"d", b"ab", b"c"), (b"d", b"a", b"bc")),
        ((b"d",), (b"d", b"")),
        ((b"d", b""), (b"d", b"", b"")),
        ((b"d", b"\x00\x00\x00\x00"), (b"d", b"", b"")),
        ((b"ab", b"c"), (b"a", b"bc")),
        ((b"d\x00\x00\x00\x00",), (b"d", b"")),
    ],
)
def test_encoding_near_collisions_differ(
    first: tuple[bytes, ...], second: tuple[bytes, ...]
) -> None:
    """Classic concatenation collisions (moved boundaries, empty fields) encode differently."""
    assert encode(*first) != encode(*second)


@settings(derandomize=True, deadline=None, max_examples=300)
@given(st.binary(max_size=40), st.binary(max_size=4), st.integers(0, 4))
def test_decode_of_arbitrary_bytes_raises_only_decode_error(
    data: bytes, domain: bytes, count: int
) -> None:
    """decode never raises anything but DecodeError, and what it accepts re-encodes exactly."""
    try:
        fields = decode(domain, data, count)
    except DecodeError:
        return
    assert len(fields) == count
    assert domain and encode(domain, *fields) == data


@DETERMINISTIC
@given(domains, field_lists, st.data())
def test_decode_of_damaged_encoding_raises_decode_error(
    domain: bytes, fields: list[bytes], data: st.DataObject
) -> None:
    """Any proper prefix of an encoding, or the encoding with bytes appended, raises DecodeError."""
    encoded = encode(domain, *fields)
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    with pytest.raises(DecodeError):
        decode(domain, encoded[:cut], len(fields))
    extra = data.draw(st.binary(min_size=1, max_size=6), label="extra")
    with pytest.raises(DecodeError):
        decode(domain, encoded + extra, len(fields))


@DETERMINISTIC
@given(domains, domains, field_lists)
def test_decode_under_wrong_domain_raises(domain: bytes, other: bytes, fields: list[bytes]) -> None:
    """An encoding decoded under another domain raises DecodeError."""
    assume(domain != other)
    with pytest.raises(DecodeError, match="domain"):
        decode(other, encode(domain, *fields), len(fields))


@DETERMINISTIC
@given(domains, field_lists, st.integers(1, 3))
def test_decode_with_wrong_count_raises(domain: bytes, fields: list[bytes], delta: int) -> None:
    """An encoding decoded for more or fewer fields than it holds raises DecodeError."""
    encoded = encode(domain, *fields)
    with pytest.raises(DecodeError):
        decode(domain, encoded, len(fields) + delta)
    if len(fields) >= delta:
        with pytest.raises(DecodeError):
            decode(domain, encoded, len(fields) - delta)


@pytest.mark.parametrize("domain", [b"", bytes(2**16)])
def test_encode_rejects_bad_domain_length(domain: bytes) -> None:
    """A domain tag of 0 or more than 65535 bytes raises ValueError."""
    with pytest.raises(ValueError, match="domain"):
        encode(domain, b"x")


def test_encode_rejects_non_bytes_fields() -> None:
    """A field that is not bytes (a str, an int) raises TypeError rather than being coerced."""
    with pytest.raises(TypeError):
        encode(b"d", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode(b"d", 5)  # type: ignore[arg-type]


@DETERMINISTIC
@given(st.integers(0, 2**64 - 1))
def test_u64_round_trip(value: int) -> None:
    """u64 is 8 big-endian bytes for every value in [0, 2**64)."""
    encoded = u64(value)
    assert len(encoded) == 8
    assert int.from_bytes(encoded, "big") == value


def test_u64_bounds() -> None:
    """u64 accepts 0 and 2**64-1 exactly; -1 and 2**64 raise ValueError."""
    assert u64(0) == bytes(8)
    assert u64(2**64 - 1) == b"\xff" * 8
    assert u64(1) == bytes(7) + b"\x01"
    for bad in (-1, 2**64, -(2**64), 2**65):
        with pytest.raises(ValueError, match="u64"):
            u64(bad)


# --- Ed25519 --------------------------------------------------------------------------------


@DETERMINISTIC
@given(keys, payloads)
def test_sign_verify_round_trip(seed: bytes, message: bytes) -> None:
    """verify accepts sign's signature; signatures are deterministic and 64 bytes."""
    public = signing_public_key(seed)
    signature = sign(seed, message)
    assert len(public) == 32 and len(signature) == 64
    assert sign(bytearray(seed), message) == signature
    verify(public, message, signature)


@DETERMINISTIC
@given(keys, payloads, st.data())
def test_signature_any_bit_flip_fails(seed: bytes, message: bytes, data: st.DataObject) -> None:
    """Flipping any bit of the message, the signature or the public key fails verification."""
    public, signature = signing_public_key(seed), sign(seed, message)
    bit = data.draw(st.integers(0, 64 * 8 - 1), label="signature bit")
    with pytest.raises(AuthenticationFailed):
        verify(public, message, flip(signature, bit))
    bit = data.draw(st.integers(0, 32 * 8 - 1), label="public key bit")
    with pytest.raises(AuthenticationFailed):
        verify(flip(public, bit), message, signature)
    if message:
        bit = data.draw(st.integers(0, len(message) * 8 - 1), label="message bit")
        with pytest.raises(AuthenticationFailed):
            verify(public, flip(message, bit), signature)


@pytest.mark.parametrize(
    ("public_len", "signature_len"), [(31, 64), (33, 64), (0, 64), (32, 63), (32, 65), (32, 0)]
)
def test_verify_wrong_lengths_raise_authentication_failed(
    public_len: int, signature_len: int
) -> None:
    """A key or signature of the wrong length fails as AuthenticationFailed, not ValueError."""
    seed = bytes(range(32))
    public, signature = signing_public_key(seed), sign(seed, b"m")
    public = (public * 2)[:public_len]
    signature = (signature * 2)[:signature_len]
    with pytest.raises(AuthenticationFailed) as excinfo:
        verify(public, b"m", signature)
    assert not isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_sign_rejects_wrong_seed_length(length: int) -> None:
    """Signing with a seed that is not 32 bytes is a caller mistake: ValueError."""
    with pytest.raises(ValueError, match="seed"):
        sign(bytes(length), b"m")
    with pytest.raises(ValueError, match="seed"):
        signing_public_key(bytes(length))


# --- KDFs -----------------------------------------------------------------------------------

CHEAPEST = {"time_cost": 1, "memory_cost_kib": 8, "parallelism": 1}
"""The smallest Argon2id parameters (8 KiB per lane is the minimum): for tests only."""


@settings(derandomize=True, deadline=None, max_examples=15)
@given(st.binary(max_size=16), st.binary(min_size=16, max_size=32))
def test_argon2id_is_deterministic(password: bytes, salt: bytes) -> None:
    """argon2id with fixed inputs and the cheapest parameters gives the same 32 bytes twice."""
    first = argon2id(password, salt, **CHEAPEST)
    assert isinstance(first, bytearray) and len(first) == 32
    assert argon2id(bytearray(password), salt, **CHEAPEST) == first
    assert argon2id(password + b"x", salt, **CHEAPEST) != first
    assert argon2id(password, salt + b"x", **CHEAPEST) != first


def test_argon2id_length_parameter() -> None:
    """argon2id returns as many bytes as asked for."""
    assert len(argon2id(b"pin", bytes(16), length=64, **CHEAPEST)) == 64


@pytest.mark.parametrize("length", range(16))
def test_argon2id_rejects_short_salt(length: int) -> None:
    """A salt shorter than 16 bytes raises ValueError."""
    with pytest.raises(ValueError, match="salt"):
        argon2id(b"pin", bytes(length), **CHEAPEST)


def test_hkdf_rfc5869_test_case_1() -> None:
    """hkdf matches RFC 5869 Appendix A.1 (Test Case 1, SHA-256)."""
    okm = hkdf(
        bytes.fromhex("0b" * 22),
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
        algorithm="sha256",
    )
    assert okm == bytes.fromhex(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_rfc5869_test_case_3() -> None:
    """hkdf matches RFC 5869 Appendix A.3 (zero-length salt and info), with b"" and None."""
    expected = bytes.fromhex(
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )
    ikm = bytes.fromhex("0b" * 22)
    assert hkdf(ikm, salt=b"", info=b"", length=42, algorithm="sha256") == expected
    assert hkdf(ikm, salt=None, info=b"", length=42, algorithm="sha256") == expected


def test_hkdf_rejects_unknown_algorithm() -> None:
    """An algorithm other than sha256/sha512 raises ValueError."""
    with pytest.raises(ValueError, match="algorithm"):
        hkdf(b"ikm", salt=None, info=b"", length=32, algorithm="sha1")
