"""The crypto package's own two errors (it imports nothing from the rest of splitvault).

The layers above turn both into ``splitvault.TamperedData`` (or a caller-mistake
error), ``from None``, so no detail of which check failed leaves the library.
"""

from __future__ import annotations

__all__ = ["AuthenticationFailed", "DecodeError"]


class AuthenticationFailed(Exception):
    """An AEAD tag, a signature or a MAC did not verify, or a key was unusable."""


class DecodeError(ValueError):
    """Bytes that were supposed to hold an encoded message do not."""
