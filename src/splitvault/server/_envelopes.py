"""Opening what devices seal to the server (a share in transit, a card for one payment)."""

from __future__ import annotations

from .._errors import TamperedData
from ..crypto.envelope import open_envelope
from ..crypto.errors import AuthenticationFailed
from ._keys import ServerKeys

__all__ = ["open_to_server"]


def open_to_server(keys: ServerKeys, envelope: bytes, aad: bytes) -> bytearray:
    """The plaintext (the caller wipes it), or ``TamperedData`` for anything altered."""
    try:
        return open_envelope(keys.x25519_secret, envelope, aad, public=keys.x25519_public)
    except AuthenticationFailed:
        raise TamperedData() from None
