"""The server's own long-lived keys, kept wrapped under the KEK in ``server_keys``.

- ``x25519``: devices seal their shares to its public half, so a share in transit is
  readable only by the server (even if TLS is terminated elsewhere).
- ``audit``: keys the audit chain's MACs.
- ``ledger``: keys the digests that index the exactly-once ledger, so a database dump
  shows no idempotency keys (often order numbers) and no amounts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ..crypto.envelope import public_key
from ..crypto.memory import wipe
from ._keyring import Keyring
from ._store import Store

__all__ = ["ServerKeys", "load_or_create"]

_NAMES = ("x25519", "audit", "ledger")


@dataclass
class ServerKeys:
    x25519_secret: bytearray = field(repr=False)
    x25519_public: bytes
    audit: bytearray = field(repr=False)
    ledger: bytearray = field(repr=False)

    def wipe(self) -> None:
        for buf in (self.x25519_secret, self.audit, self.ledger):
            wipe(buf)


def load_or_create(store: Store, keyring: Keyring) -> ServerKeys:
    """The keys, generated on first use. Several workers starting at once on a new
    database each propose keys; the store keeps the first and every worker uses it."""
    stored = store.server_keys()
    missing = [name for name in _NAMES if name not in stored]
    if missing:
        proposed = {}
        for name in missing:
            fresh = bytearray(secrets.token_bytes(32))
            try:
                proposed[name] = keyring.wrap("server-key", name, fresh)
            finally:
                wipe(fresh)
        stored = store.add_server_keys(proposed)
    keys = {name: keyring.unwrap("server-key", name, stored[name]) for name in _NAMES}
    return ServerKeys(
        x25519_secret=keys["x25519"],
        x25519_public=public_key(keys["x25519"]),
        audit=keys["audit"],
        ledger=keys["ledger"],
    )
