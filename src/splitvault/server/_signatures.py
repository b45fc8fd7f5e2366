"""Signature checks shared by the server's flows, each failing as one opaque error.

A request about an existing card is signed by its device key (proves it comes from
the enrolled device) or by the PIN key (proves the PIN). An unknown card is checked
against a fixed dummy key, so that it costs the same Ed25519 verification as a
known card with a bad signature: the time to refuse says nothing about which ids
exist.
"""

from __future__ import annotations

from .._errors import MalformedRequest, TamperedData, UnknownCard
from ..crypto.errors import AuthenticationFailed
from ..crypto.signing import public_key, verify
from ._store import CardRecord

__all__ = ["check_device_signature", "check_pending_signature", "check_signature"]

# A valid public key no device holds the secret of (its seed is public and fixed).
_DUMMY_KEY = public_key(bytearray(b"splitvault/v1/dummy-device-key!!"))


def check_signature(public: bytes, message: bytes, signature: object) -> None:
    """``TamperedData`` unless ``signature`` is the owner of ``public``'s over ``message``."""
    if not isinstance(signature, bytes):
        raise MalformedRequest("malformed signature")
    try:
        verify(public, message, signature)
    except AuthenticationFailed:
        raise TamperedData() from None


def check_device_signature(card: CardRecord | None, message: bytes,
                           signature: object) -> CardRecord:
    """The card, if its device key signed ``message``; ``UnknownCard`` (exactly as for
    a card that does not exist) if not, after the same work either way."""
    if not isinstance(signature, bytes):
        raise MalformedRequest("malformed signature")
    try:
        verify(card.device_key if card is not None else _DUMMY_KEY, message, signature)
    except AuthenticationFailed:
        raise UnknownCard() from None
    if card is None:  # a signature by the dummy key: impossible without its seed
        raise UnknownCard()
    return card


def check_pending_signature(device_key: bytes | None, message: bytes, signature: object) -> None:
    """As :func:`check_device_signature`, for a pending enrollment's device key: an
    unknown enrollment and a bad signature both raise ``UnknownCard``, after the same
    Ed25519 verification."""
    if not isinstance(signature, bytes):
        raise MalformedRequest("malformed signature")
    try:
        verify(device_key if device_key is not None else _DUMMY_KEY, message, signature)
    except AuthenticationFailed:
        raise UnknownCard() from None
    if device_key is None:
        raise UnknownCard()
