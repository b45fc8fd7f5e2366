"""Both sides' shares of one card, as the security lab shows the re-split: each side's
versions, and a fingerprint of each share instead of its bytes.

Why fingerprints, when the lab shows other stored values as their first and last bytes
(``_atrest.preview``)? The device's pane already shows the first bytes of its share;
the first bytes of the server's share, unwrapped, beside them would be the first bytes
of the data key itself (``K = D xor S``). A fingerprint is a hash (BLAKE2s) cut to
four bytes: it changes whenever the share does, and nothing can be combined from it.
The server's share is unwrapped for the hash only (``hazmat.ServerInspector``) and
wiped at once; the PAN and the PIN are nowhere in this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..crypto.memory import wipe
from ._atrest import read_only

if TYPE_CHECKING:
    from ..hazmat import ServerInspector

__all__ = ["FINGERPRINT_LEN", "ShareView", "SideShares", "device_shares", "fingerprint",
           "server_shares"]

FINGERPRINT_LEN = 4
"""Bytes of hash shown per share: enough to see it change, nothing to use."""
_PERSON = b"sv-labfp"
"""BLAKE2s personalization: these hashes match no other hash of the same bytes."""


def fingerprint(data: bytes | bytearray) -> str:
    """``3f9a12c4``: a 4-byte BLAKE2s of ``data``, as hex. Never the bytes themselves."""
    return hashlib.blake2s(bytes(data), digest_size=FINGERPRINT_LEN, person=_PERSON).hexdigest()


@dataclass(frozen=True)
class SideShares:
    """One side's shares of a card: the newest version it holds and its fingerprint,
    and whether it still keeps the version before (until the other side confirms)."""

    version: int
    newest: str | None
    """The fingerprint of the newest share; None where this side cannot be read."""
    keeps_previous: bool = False


@dataclass(frozen=True)
class ShareView:
    """What the lab shows of a card's shares at one moment."""

    device: SideShares
    server: SideShares | None
    """None when the server is remote: its shares stay on that machine."""
    sealed: str
    """The fingerprint of the sealed card record: the same before and after a re-split."""

    def changed_from(self, before: ShareView) -> dict[str, bool]:
        """Which of the device's share, the server's share and the sealed card differ
        from ``before`` (the server's only when both views could read it)."""
        out = {"device": self.device.newest != before.device.newest,
               "sealed": self.sealed != before.sealed}
        if self.server is not None and before.server is not None:
            out["server"] = self.server.newest != before.server.newest
        return out


def device_shares(path: Path, card_id: str) -> tuple[SideShares, str] | None:
    """The device's shares of ``card_id`` and its sealed record's fingerprint, read
    read-only from its file as ``_atrest`` reads it (None if it has no such card)."""
    with read_only(path) as conn:
        row = conn.execute(
            "SELECT share_version, device_share, next_share, sealed_record FROM cards "
            "WHERE card_id = ? AND state = 'active'", (card_id,)).fetchone()
    if row is None:
        return None
    version, share, staged, sealed = row
    if staged is not None:  # the device counts a staged share as its version
        return SideShares(int(version) + 1, fingerprint(staged), True), fingerprint(sealed)
    return SideShares(int(version), fingerprint(share)), fingerprint(sealed)


def server_shares(inspector: ServerInspector, card_id: str) -> SideShares | None:
    """The server's shares of ``card_id``, unwrapped with its keys only to be hashed."""
    rows = inspector.query(
        "SELECT share, share_next, share_version FROM cards WHERE card_id = ? AND "
        "state = 'active'", card_id)
    if not rows:
        return None
    share, share_next, version = rows[0]
    newest, held = (share, 0) if share_next is None else (share_next, 1)
    clear = inspector.unwrap("share", card_id, bytes(newest))
    try:
        return SideShares(int(version) + held, fingerprint(clear), bool(held))
    finally:
        wipe(clear)
