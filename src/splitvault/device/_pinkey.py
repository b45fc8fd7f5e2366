"""From a PIN to the Ed25519 key that proves it.

    x      = encode("pin-input", card_id, digits)          (bound to the card)
    y      = OPRF(k, x)                                    (k only on the server)
    s      = Argon2id(y, salt)                             (cost on every guess)
    seed   = HKDF-SHA512(s || device_secret, "pin-key", card_id)
    PIN key = Ed25519(seed); the server stores only its public half (the verifier)

Offline testing needs both k (server only) and device_secret (device only). The device
alone must ask the server for every y, and the server counts each ask. The server alone
cannot get from y to the verifier without the 256-bit device secret.
"""

from __future__ import annotations

from .._errors import TamperedData
from .._pin import Pin
from .._profiles import KdfProfile
from .._protocol import VERSION, pin_input
from ..crypto import oprf
from ..crypto.encoding import encode
from ..crypto.kdf import argon2id, hkdf
from ..crypto.memory import wipe

__all__ = ["BlindedPin", "derive_pin_seed"]

_D_PIN_KEY = VERSION + b"pin-key"


class BlindedPin:
    """The device's half of one OPRF run for one PIN. Wipe it (or use ``with``)."""

    def __init__(self, card_id: str, pin: Pin) -> None:
        self._input = pin_input(card_id, pin._digits())
        self._blind, self.blinded = oprf.blind(self._input)

    def finalize(self, evaluated: bytes) -> bytearray:
        try:
            return oprf.finalize(self._input, self._blind, evaluated)
        except oprf.OprfError:
            raise TamperedData() from None

    def wipe(self) -> None:
        for buf in (self._input, self._blind):
            wipe(buf)

    def __enter__(self) -> BlindedPin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()


def derive_pin_seed(oprf_output: bytearray, *, salt: bytes, device_secret: bytes,
                    card_id: str, profile: KdfProfile) -> bytearray:
    """The 32-byte Ed25519 seed of the PIN key. Wipes ``oprf_output``; the caller wipes
    the result."""
    stretched = bytearray()
    ikm = bytearray()
    try:
        stretched = argon2id(oprf_output, salt, time_cost=profile.time_cost,
                             memory_cost_kib=profile.memory_cost_kib,
                             parallelism=profile.parallelism)
        ikm = stretched + device_secret
        return hkdf(ikm, salt=None, info=encode(_D_PIN_KEY, card_id.encode()), length=32)
    finally:
        for buf in (oprf_output, stretched, ikm):
            wipe(buf)
