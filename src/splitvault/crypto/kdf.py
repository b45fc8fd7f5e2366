"""Key derivation: Argon2id (argon2-cffi) for the PIN, HKDF (pyca/cryptography) for the rest."""

from __future__ import annotations

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["argon2id", "hkdf"]

_HASHES = {"sha256": hashes.SHA256, "sha512": hashes.SHA512}


def argon2id(
    password: bytes | bytearray,
    salt: bytes,
    *,
    time_cost: int,
    memory_cost_kib: int,
    parallelism: int,
    length: int = 32,
) -> bytearray:
    """Argon2id (version 0x13) raw output. The caller wipes it."""
    if len(salt) < 16:
        raise ValueError("salt must be at least 16 bytes")
    return bytearray(
        hash_secret_raw(
            bytes(password),
            salt,
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=length,
            type=Type.ID,
        )
    )


def hkdf(
    ikm: bytes | bytearray,
    *,
    salt: bytes | None,
    info: bytes,
    length: int,
    algorithm: str = "sha512",
) -> bytearray:
    """HKDF (RFC 5869) extract-and-expand. The caller wipes the output."""
    try:
        hash_cls = _HASHES[algorithm]
    except KeyError:
        raise ValueError("algorithm must be sha256 or sha512") from None
    kdf = HKDF(algorithm=hash_cls(), length=length, salt=salt, info=info)
    return bytearray(kdf.derive(bytes(ikm)))
