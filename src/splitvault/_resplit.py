"""R, the re-split of a card's shares, as it travels from server to device.

Shared by both roles (the rules are in ``server/_refresh.py``). R is sealed to an
X25519 key the device drew for this payment and put in its signed request, bound to
the card and to the version R makes: nobody on the way learns it, a sealed R opens
for no other card or step, and the server need never store it (it recomputes R from
its two wrapped versions to answer a retry, and seals it afresh).
"""

from __future__ import annotations

from ._protocol import refresh_aad
from .crypto.envelope import open_envelope, seal_envelope

__all__ = ["open_refresh", "seal_refresh"]


def seal_refresh(refresh_key: bytes, r: bytes | bytearray, card_id: str,
                 version_after: int) -> bytes:
    """R sealed to the device's refresh key, bound to the card and the version it makes."""
    return seal_envelope(refresh_key, r, refresh_aad(card_id, version_after))


def open_refresh(secret: bytes | bytearray, sealed: bytes, card_id: str,
                 version_after: int) -> bytearray:
    """R from a sealed re-split; the caller wipes it. ``AuthenticationFailed`` if it
    was not sealed to this key, for this card and version."""
    return open_envelope(secret, sealed, refresh_aad(card_id, version_after))
