"""Ed25519 signatures (libsodium through PyNaCl): device keys and the PIN key.

libsodium's verifier is strict (canonical S, no small-order public keys), which is
what Wycheproof's Ed25519 file expects.
"""

from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .errors import AuthenticationFailed

__all__ = ["PUBLIC_KEY_LEN", "SEED_LEN", "SIGNATURE_LEN", "public_key", "sign", "verify"]

SEED_LEN = 32
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64


def public_key(seed: bytes | bytearray) -> bytes:
    """The Ed25519 public key of a 32-byte seed."""
    return bytes(_signing_key(seed).verify_key)


def sign(seed: bytes | bytearray, message: bytes) -> bytes:
    """A 64-byte detached Ed25519 signature of ``message`` by the key of ``seed``."""
    return bytes(_signing_key(seed).sign(message).signature)


def verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Return if ``signature`` is valid; raise ``AuthenticationFailed`` otherwise.

    Malformed keys and signatures fail the same way as wrong ones.
    """
    if len(public) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        raise AuthenticationFailed("bad signature")
    try:
        VerifyKey(bytes(public)).verify(message, bytes(signature))
    except (BadSignatureError, ValueError, TypeError):
        raise AuthenticationFailed("bad signature") from None


def _signing_key(seed: bytes | bytearray) -> SigningKey:
    if len(seed) != SEED_LEN:
        raise ValueError("seed must be 32 bytes")
    # PyNaCl keeps its own immutable copy of the seed inside SigningKey: a Python limit
    # recorded in threat_model.md. We drop the object as soon as the call returns.
    return SigningKey(bytes(seed))
