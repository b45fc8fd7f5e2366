"""The re-split after every payment, across realms: who deals it, how each part travels.

The single server re-splits with XOR (``_resplit.py``). Across realms the sharing is
additive in the scalar field (``crypto.threshold_secret``): after an approval the
**gateway**, which holds the t shares of this payment in memory anyway, deals a uniform
``rho`` and a fresh t-of-n sharing ``rho_i`` of it (``deal_refresh``), with a new
version token ``T``:

- the device gets ``rho || T`` sealed to the refresh key of its request (an X25519 key
  it drew for this payment), and sets ``D' = D - rho`` (``refresh_device_part``);
- realm ``i`` gets ``rho_i || T`` in a **delta** the gateway authenticates to it: an
  AEAD under a key both derive from X25519 between the gateway's key and the realm's
  (:func:`delta_key`), bound to the card, both keys and the version it makes. Nobody
  else (the device included) can make a delta a realm accepts, so a copy of the device
  cannot push the realms onto shares of its own choosing.

The device carries each realm's deltas to it with its next evaluation there (a realm
down during the payment gets them whenever it is next asked: catch-up), and the realm
applies them in order, each one a compare-and-set on its version. So the device never
keeps two versions of its part: every realm can be brought to the new version by the
deltas the device keeps, and a reply that never arrived made no delta at all.

The version token proves possession: each evaluation carries a MAC under the presented
version's token (``_resplit.possession_mac``). A copy of the device from before a
payment knows neither the new part nor the new token: presenting the old version to a
realm that moved on, or the new one without its token, marks the card cloned there.

Commitments move with the shares: the gateway computes every realm's next share from
the t it holds (``crypto.threshold.share_at``) plus ``rho_i`` and returns the device the
new commitments, so a faulty realm is still named after any number of re-splits.
"""

from __future__ import annotations

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from .crypto.encoding import encode, u64
from .crypto.envelope import open_envelope, seal_envelope, x25519
from .crypto.memory import wipe
from .crypto.sealing import open_sealed, seal

__all__ = [
    "DELTA_LEN",
    "SEALED_REFRESH_LEN",
    "TOKEN_LEN",
    "open_delta",
    "open_device_refresh",
    "seal_delta",
    "seal_device_refresh",
]

D_DELTA_KEY = b"splitvault/realm/v1/delta-key"
D_DELTA = b"splitvault/realm/v1/delta"
D_DEVICE_REFRESH = b"splitvault/realm/v1/device-refresh"

TOKEN_LEN = 32
PART_LEN = 64  # rho, rho_i: two scalars
REFRESH_PLAIN_LEN = PART_LEN + TOKEN_LEN
SEALED_REFRESH_LEN = REFRESH_PLAIN_LEN + 72  # an envelope's overhead
DELTA_LEN = REFRESH_PLAIN_LEN + 24 + 16  # XChaCha20-Poly1305: nonce and tag


def _s(value: str) -> bytes:
    return value.encode("utf-8")


def delta_key(own_secret: bytes | bytearray, peer_public: bytes, card_id: str,
              realm_key: bytes, gateway_key: bytes, version: int, *,
              floor: int = 0) -> bytearray:
    """The AEAD key of one delta: BLAKE2b keyed with X25519(gateway, realm), over the
    card, both public keys, the version and the card's enrollment (its ``floor``, the
    version it was last enrolled at). Either side computes it from its own secret and
    the other's public key; each delta gets its own, and one made before a
    re-enrollment never opens after it."""
    shared = x25519(own_secret, peer_public)
    try:
        return bytearray(blake2b(encode(D_DELTA_KEY, _s(card_id), realm_key, gateway_key,
                                        u64(version), u64(floor)),
                                 key=bytes(shared), digest_size=32, encoder=RawEncoder))
    finally:
        wipe(shared)


def _delta_aad(card_id: str, realm_key: bytes, gateway_key: bytes, version: int,
               floor: int) -> bytes:
    return encode(D_DELTA, _s(card_id), realm_key, gateway_key, u64(version), u64(floor))


def seal_delta(gateway_secret: bytes | bytearray, gateway_key: bytes, realm_key: bytes,
               card_id: str, version: int, plain: bytes | bytearray, *,
               floor: int = 0) -> bytes:
    """Gateway side: ``rho_i || T`` for realm ``realm_key``, making ``version`` of the
    enrollment at ``floor``."""
    key = delta_key(gateway_secret, realm_key, card_id, realm_key, gateway_key, version,
                    floor=floor)
    try:
        return seal(key, plain, _delta_aad(card_id, realm_key, gateway_key, version, floor))
    finally:
        wipe(key)


def open_delta(realm_secret: bytes | bytearray, realm_key: bytes, gateway_key: bytes,
               card_id: str, version: int, blob: bytes, *, floor: int = 0) -> bytearray:
    """Realm side: ``rho_i || T`` (``AuthenticationFailed`` unless this gateway made it
    for this realm, card, version and enrollment). The caller wipes it."""
    key = delta_key(realm_secret, gateway_key, card_id, realm_key, gateway_key, version,
                    floor=floor)
    try:
        return open_sealed(key, blob, _delta_aad(card_id, realm_key, gateway_key, version,
                                                 floor))
    finally:
        wipe(key)


def _device_aad(card_id: str, version: int) -> bytes:
    return encode(D_DEVICE_REFRESH, _s(card_id), u64(version))


def seal_device_refresh(refresh_key: bytes, card_id: str, version: int,
                        plain: bytes | bytearray) -> bytes:
    """Gateway side: ``rho || T`` sealed to the request's refresh key."""
    return seal_envelope(refresh_key, plain, _device_aad(card_id, version))


def open_device_refresh(refresh_secret: bytes | bytearray, card_id: str, version: int,
                        sealed: bytes) -> bytearray:
    """Device side: ``rho || T``. The caller wipes it."""
    return open_envelope(refresh_secret, sealed, _device_aad(card_id, version))
