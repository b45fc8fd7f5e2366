"""Signing with a card's device key: the one place its seed is copied out and wiped."""

from __future__ import annotations

from ..crypto.memory import wipe
from ..crypto.signing import sign
from ._store import DeviceCard

__all__ = ["device_sign"]


def device_sign(card: DeviceCard, message: bytes) -> bytes:
    """Sign with the card's device key (proves the request comes from this device)."""
    seed = bytearray(card.sign_seed)
    try:
        return sign(seed, message)
    finally:
        wipe(seed)
