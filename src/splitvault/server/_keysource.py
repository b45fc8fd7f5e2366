"""Where the key-encryption key comes from: a key file, or a PKCS#11 token.

Both kinds satisfy ``KeySource``; a spec starting with ``pkcs11:`` (RFC 7512) names a
key in a token, anything else is the path of a key file.

``SPLITVAULT_KEK`` may hold several specs separated by whitespace (spaces, tabs or
newlines): a ``pkcs11:`` URI never contains raw whitespace (RFC 3986 percent-encodes
it), so only a key file whose path contains whitespace must be given with a flag.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .._errors import ConfigurationError
from ._kek import Kek

__all__ = ["KeySource", "check_file_spec", "generate_key_source", "is_pkcs11_spec",
           "load_key_source", "split_specs"]


@runtime_checkable
class KeySource(Protocol):
    """A key-encryption key: wraps secrets bound to (key id, purpose, row).

    Wrapped values start with the 8-byte ``kid``, so a keyring routes by it.
    """

    kid: bytes

    @property
    def kid_hex(self) -> str: ...

    def wrap(self, purpose: str, row: str, secret: bytes | bytearray) -> bytes:
        """``kid || nonce || ciphertext || tag`` of ``secret`` for this purpose and row."""
        ...

    def unwrap(self, purpose: str, row: str, blob: bytes) -> bytearray:
        """The secret (the caller wipes it); ``TamperedData`` if altered or moved,
        ``ConfigurationError`` if wrapped under another key."""
        ...

    def wipe(self) -> None:
        """Forget the key material (a file key) or close the session (a token key)."""
        ...

    def describe(self) -> str:
        """A non-secret label: the file's path, or the URI without any PIN."""
        ...


def is_pkcs11_spec(spec: str) -> bool:
    """Whether ``spec`` is a PKCS#11 URI (the scheme is case-insensitive, RFC 3986 3.1)."""
    return spec[:7].lower() == "pkcs11:"


def split_specs(text: str | None) -> list[str]:
    """The key specs in a ``SPLITVAULT_KEK`` value: whitespace-separated."""
    return text.split() if text else []


def check_file_spec(spec: str) -> None:
    """Refuse a would-be key file path that carries a PIN (a URI whose ``pkcs11:``
    prefix was mistyped): its "file not found" error would print the PIN."""
    lowered = spec.lower()
    if "pin-value=" in lowered or "pin-source=" in lowered or "module-path=" in lowered:
        raise ConfigurationError(
            "a key spec with module-path=/pin-value=/pin-source= must start with "
            "'pkcs11:' (the spec is not shown: it may contain a PIN)")


def load_key_source(spec: str) -> KeySource:
    """The existing key ``spec`` names; ``ConfigurationError`` if it cannot be used."""
    if is_pkcs11_spec(spec):
        from ._pkcs11 import Pkcs11Kek

        return Pkcs11Kek.open(spec)
    check_file_spec(spec)
    return Kek.load(spec)


def generate_key_source(spec: str) -> KeySource:
    """Create a new key where ``spec`` says, refusing to replace an existing one."""
    if is_pkcs11_spec(spec):
        from ._pkcs11 import Pkcs11Kek

        return Pkcs11Kek.generate(spec)
    check_file_spec(spec)
    kek = Kek.generate()
    try:
        kek.write(spec)  # O_EXCL: ConfigurationError if the file exists
    finally:
        kek.wipe()
    # Loaded back, so the caller gets what a restart will read (and its path).
    return Kek.load(spec)
