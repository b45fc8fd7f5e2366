"""XChaCha20-Poly1305 (libsodium, through PyNaCl's bindings).

XChaCha20's 192-bit nonce is large enough to draw at random for every message
without tracking counters: the chance of a repeat after 2^64 messages under one key
is still about 2^-64. Every data key here seals a handful of messages at most.
"""

from __future__ import annotations

import secrets

from nacl import bindings
from nacl.exceptions import CryptoError

from .errors import AuthenticationFailed

__all__ = ["KEY_LEN", "NONCE_LEN", "TAG_LEN", "aead_decrypt", "aead_encrypt", "open_sealed", "seal"]

KEY_LEN = bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
NONCE_LEN = bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_LEN = bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES


def aead_encrypt(
    key: bytes | bytearray, nonce: bytes, plaintext: bytes | bytearray, aad: bytes
) -> bytes:
    """Raw XChaCha20-Poly1305 encryption: ``ciphertext || tag``."""
    _check(key, nonce)
    return bytes(
        bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            bytes(plaintext), bytes(aad), bytes(nonce), bytes(key)
        )
    )


def aead_decrypt(key: bytes | bytearray, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytearray:
    """Raw XChaCha20-Poly1305 decryption; ``AuthenticationFailed`` if anything was altered."""
    _check(key, nonce)
    # Convert up front: PyNaCl reports a bytearray as a CryptoError subclass, which
    # would otherwise be mistaken for a failed tag below.
    ciphertext, aad = bytes(ciphertext), bytes(aad)
    if len(ciphertext) < TAG_LEN:
        raise AuthenticationFailed("ciphertext too short")
    try:
        plain = bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, aad, nonce, bytes(key)
        )
    except CryptoError:
        raise AuthenticationFailed("decryption failed") from None
    return bytearray(plain)


def seal(
    key: bytes | bytearray,
    plaintext: bytes | bytearray,
    aad: bytes,
    *,
    nonce: bytes | None = None,
) -> bytes:
    """``nonce || ciphertext || tag`` with a fresh random nonce (``nonce`` is for vectors)."""
    nonce = secrets.token_bytes(NONCE_LEN) if nonce is None else nonce
    return nonce + aead_encrypt(key, nonce, plaintext, aad)


def open_sealed(key: bytes | bytearray, blob: bytes, aad: bytes) -> bytearray:
    """Open what :func:`seal` made. The caller wipes the returned plaintext."""
    if len(blob) < NONCE_LEN + TAG_LEN:
        raise AuthenticationFailed("sealed data too short")
    return aead_decrypt(key, blob[:NONCE_LEN], blob[NONCE_LEN:], aad)


def _check(key: bytes | bytearray, nonce: bytes) -> None:
    if len(key) != KEY_LEN:
        raise ValueError("key must be 32 bytes")
    if len(nonce) != NONCE_LEN:
        raise ValueError("nonce must be 24 bytes")
