"""Zeroing secrets in place: the one helper every layer uses.

Best effort by nature: Python may hold copies we cannot reach (threat_model.md).
"""

from __future__ import annotations

__all__ = ["wipe"]


def wipe(*buffers: bytearray) -> None:
    """Overwrite each buffer with zeros, in place."""
    for buffer in buffers:
        buffer[:] = bytes(len(buffer))
