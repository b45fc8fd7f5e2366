"""Shape checks for protocol fields: run before anything else, raise MalformedRequest."""

from __future__ import annotations

import re

from .._errors import MalformedRequest

__all__ = ["check_bytes", "check_id", "check_version"]

_ID = re.compile(r"[0-9a-f]{32}")
#: Largest envelope accepted: a 32-byte share plus a sealed card record (<1 KiB) and
#: the envelope overhead, with room to spare.
_MAX_ENVELOPE = 4096


def check_id(value: object, what: str) -> str:
    """Card and challenge ids are 32 lowercase hex characters (128 random bits)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise MalformedRequest(f"malformed {what}")
    return value


def check_bytes(value: object, what: str, length: int | None = None, *,
                maximum: int = _MAX_ENVELOPE) -> bytes:
    if not isinstance(value, bytes) or (
        len(value) != length if length is not None else not 0 < len(value) <= maximum
    ):
        raise MalformedRequest(f"malformed {what}")
    return value


def check_version(value: object, *, top: int = 2**53) -> int:
    """A share version: an int in ``0 <= value < top`` (JSON's exact integers), not a bool."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < top:
        raise MalformedRequest("malformed share version")
    return value
