"""Helpers for the re-split tests: both sides' versions of a card's shares, read from
their stores, and whether the shares of one version still open the card."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import splitvault as sv
from splitvault.crypto.errors import AuthenticationFailed
from splitvault.crypto.sealing import open_sealed
from splitvault.crypto.shares import combine
from splitvault.hazmat import DeviceCard, DeviceStore, card_record_aad


@dataclass(frozen=True)
class Sides:
    """What each side holds of one card: versions and (unwrapped) shares."""

    server_version: int
    server_share: bytes
    server_next: bytes | None
    device_version: int
    device_share: bytes
    device_next: bytes | None
    sealed_record: bytes

    @property
    def versions_held(self) -> tuple[int, int]:
        """How many share versions each side keeps (server, device): never over 2."""
        return (1 + (self.server_next is not None), 1 + (self.device_next is not None))

    def device_share_at(self, version: int) -> bytes | None:
        if version == self.device_version:
            return self.device_share
        if version == self.device_version + 1:
            return self.device_next
        return None


def sides(server: sv.ShareServer, device_path: Path, card_id: str) -> Sides:
    inspector = server.inspector()
    [(share, share_next, version)] = inspector.query(
        "SELECT share, share_next, share_version FROM cards WHERE card_id = ?", card_id)
    card = device_card(device_path, card_id)
    return Sides(
        int(version), bytes(inspector.unwrap("share", card_id, bytes(share))),
        None if share_next is None else bytes(inspector.unwrap("share", card_id,
                                                               bytes(share_next))),
        card.share_version, card.device_share, card.next_share, card.sealed_record)


def device_card(device_path: Path, card_id: str) -> DeviceCard:
    """The card's row in a device store, as someone holding the device's files reads it."""
    store = DeviceStore(device_path)
    try:
        return store.get(card_id)
    finally:
        store.close()


def opens(device_share: bytes | None, server_share: bytes | None, sealed: bytes,
          card_id: str) -> bool:
    """Whether these two shares recombine to the key the card record is sealed under."""
    if device_share is None or server_share is None:
        return False
    try:
        open_sealed(combine(device_share, server_share), sealed, card_record_aad(card_id))
    except AuthenticationFailed:
        return False
    return True


def current_opens(s: Sides, card_id: str) -> bool:
    """D_current xor S_current is the data key: the device's share of the server's
    committed version, with the server's share of it."""
    return opens(s.device_share_at(s.server_version), s.server_share, s.sealed_record,
                 card_id)


def copy_device(path: Path, to: Path) -> Path:
    """A copy of a SQLite store (the device's, or the server's), as a backup would take
    it: SQLite's online backup, consistent even while the store is open and written
    (a byte copy of a live database, its WAL and its shared-memory index is not)."""
    to.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = to / path.name
    target.touch(mode=0o600)
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)
    finally:
        dest.close()
        source.close()
    return target
