"""Opening what devices seal to the server (a share in transit, a card for one payment)."""

from __future__ import annotations

from .._errors import TamperedData
from .._protocol import proof_aad
from ..crypto.envelope import open_envelope
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ._keys import ServerKeys

__all__ = ["open_proof", "open_to_server"]


def open_to_server(keys: ServerKeys, envelope: bytes, aad: bytes) -> bytearray:
    """The plaintext (the caller wipes it), or ``TamperedData`` for anything altered."""
    try:
        return open_envelope(keys.x25519_secret, envelope, aad, public=keys.x25519_public)
    except AuthenticationFailed:
        raise TamperedData() from None


def open_proof(keys: ServerKeys, sealed: object, kind: str, card_id: str,
               length: int) -> bytes | None:
    """A sealed PIN verifier or PIN signature (see ``_protocol.proof_aad``), or None if
    it does not open to exactly ``length`` bytes: the caller treats that as a proof
    that failed, never as anything else."""
    if not isinstance(sealed, bytes):
        return None
    try:
        plain = open_envelope(keys.x25519_secret, sealed, proof_aad(kind, card_id),
                              public=keys.x25519_public)
    except AuthenticationFailed:
        return None
    value = bytes(plain) if len(plain) == length else None
    wipe(plain)  # with one evaluation, a PIN signature is a PIN test: keep no copy about
    return value
