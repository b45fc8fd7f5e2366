"""A copy of this device, for the security lab: its files copied into a private
temporary folder and opened as a second ``Device`` against the same share server, as
a thief with a backup, a forensic image or a malicious app would have it.

Nothing is faked: the copy holds the same device share, key and sealed card, and the
visitor pays with it with the real PIN. Once the real device has paid, the server has
re-split the shares, and the copy's next request shows a version the server moved
past: ``DeviceCloned``, before any PIN is evaluated. The folder is removed when the
copy is discarded (and when the demo closes or is wiped).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._authorization import CardSummary
from .._files import SQLITE_SIBLINGS
from ..device import Device

__all__ = ["DeviceCopy", "copy_files"]


def copy_files(database: Path, folder: Path) -> Path:
    """Copy ``database`` and whichever SQLite siblings it has (WAL, index, journal)
    into ``folder``, each 0600, as they are on disk. Returns the copied database."""
    for suffix in ("", *SQLITE_SIBLINGS):
        source = database.with_name(database.name + suffix)
        target = folder / source.name
        try:
            src = source.open("rb")
        except FileNotFoundError:
            continue  # no such sibling (or SQLite just removed it)
        # Created 0600 before a byte is written: a device share never sits in a file
        # others can read, not even for a moment.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder / database.name


@dataclass
class DeviceCopy:
    """A copy of the device's files, opened as a device of its own."""

    folder: Path
    device: Device = field(repr=False)
    taken_at: float

    @classmethod
    def take(cls, database: Path, open_device: Callable[[Path], Device]) -> DeviceCopy:
        """Copy the device's files now and open the copy with ``open_device``. The
        caller makes sure no write to the device runs meanwhile (a real image taken
        half-way through a write is another experiment)."""
        folder = Path(tempfile.mkdtemp(prefix="splitvault-copy-"))  # 0700
        try:
            device = open_device(copy_files(database, folder))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(folder, device, time.time())

    def card(self, card_id: str) -> CardSummary | None:
        """The card as the copy holds it (its version moves only if the copy pays)."""
        return next((c for c in self.device.cards() if c.card_id == card_id), None)

    def close(self) -> None:
        """Close the copy and remove its folder: the copied share is gone."""
        try:
            self.device.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
