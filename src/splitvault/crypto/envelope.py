"""Sealing a secret to a recipient's X25519 public key, bound to associated data.

An ephemeral X25519 key agreement (libsodium), HKDF-SHA512 over the shared secret and
both public keys, then XChaCha20-Poly1305 with the caller's associated data. Unlike
libsodium's sealed box this binds the envelope to its context (card id, challenge),
so a captured envelope cannot be replayed into another request.
"""

from __future__ import annotations

import secrets

from nacl import bindings
from nacl.exceptions import CryptoError

from .errors import AuthenticationFailed
from .kdf import hkdf
from .memory import wipe
from .sealing import NONCE_LEN, TAG_LEN, aead_decrypt, aead_encrypt

__all__ = [
    "OVERHEAD",
    "PUBLIC_KEY_LEN",
    "generate_keypair",
    "open_envelope",
    "public_key",
    "seal_envelope",
    "x25519",
]

PUBLIC_KEY_LEN = 32
OVERHEAD = PUBLIC_KEY_LEN + NONCE_LEN + TAG_LEN
_INFO = b"splitvault/v1/envelope-key"


def x25519(secret: bytes | bytearray, public: bytes) -> bytearray:
    """X25519 shared secret; ``AuthenticationFailed`` for a low-order peer key (all-zero result)."""
    if len(secret) != 32 or len(public) != PUBLIC_KEY_LEN:
        raise AuthenticationFailed("bad key length")
    try:
        return bytearray(bindings.crypto_scalarmult(bytes(secret), bytes(public)))
    except CryptoError:
        raise AuthenticationFailed("unusable public key") from None


def public_key(secret: bytes | bytearray) -> bytes:
    """The X25519 public key of a 32-byte secret."""
    # libsodium reads 32 bytes whatever it is given: check, or it reads past the end.
    if len(secret) != 32:
        raise ValueError("secret must be 32 bytes")
    return bytes(bindings.crypto_scalarmult_base(bytes(secret)))


def generate_keypair() -> tuple[bytearray, bytes]:
    """A fresh ``(secret, public)`` X25519 pair."""
    secret = bytearray(secrets.token_bytes(32))
    return secret, public_key(secret)


def seal_envelope(recipient: bytes, plaintext: bytes | bytearray, aad: bytes) -> bytes:
    """``ephemeral_public || nonce || ciphertext || tag``."""
    eph_secret, eph_public = generate_keypair()
    key = bytearray()
    try:
        key = _envelope_key(eph_secret, eph_public, recipient)
        nonce = secrets.token_bytes(NONCE_LEN)
        return eph_public + nonce + aead_encrypt(key, nonce, plaintext, aad)
    finally:
        wipe(eph_secret)
        wipe(key)


def open_envelope(
    secret: bytes | bytearray, envelope: bytes, aad: bytes, *, public: bytes | None = None
) -> bytearray:
    """The plaintext of an envelope sealed to ``public_key(secret)``; the caller wipes it.

    ``public`` may pass that public key in when the caller already has it (the server
    does), saving a scalar multiplication per message.
    """
    if len(envelope) < OVERHEAD:
        raise AuthenticationFailed("envelope too short")
    eph_public = envelope[:PUBLIC_KEY_LEN]
    nonce = envelope[PUBLIC_KEY_LEN : PUBLIC_KEY_LEN + NONCE_LEN]
    own_public = public_key(secret) if public is None else public
    key = _envelope_key(secret, own_public, eph_public, recipient_side=True)
    try:
        return aead_decrypt(key, nonce, envelope[PUBLIC_KEY_LEN + NONCE_LEN :], aad)
    finally:
        wipe(key)


def _envelope_key(
    own_secret: bytes | bytearray,
    own_public: bytes,
    peer_public: bytes,
    *,
    recipient_side: bool = False,
) -> bytearray:
    shared = x25519(own_secret, peer_public)
    try:
        # Both public keys go into the salt, always in (ephemeral, recipient) order, so
        # the key is bound to this exact pair (as in HPKE's kem_context).
        pair = peer_public + own_public if recipient_side else own_public + peer_public
        return hkdf(shared, salt=pair, info=_INFO, length=32)
    finally:
        wipe(shared)

