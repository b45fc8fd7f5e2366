"""Secrets to look for, each in every form it could take, and the search itself.

Text secrets (PAN, name, PIN) get :func:`scan.encodings` (ASCII, UTF-16, hex, base64 at
every alignment, BCD). Byte secrets (shares, keys) get their raw bytes, hex, base64 at
every alignment, Python's ``repr`` escapes and their Latin-1 reading, which is how raw
bytes end up inside a log line or an exception message.

Forms shorter than :data:`MIN_FORM` bytes are dropped: a 2-byte BCD pattern would
match random ciphertext by chance and prove nothing either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .scan import _base64_forms, encodings

__all__ = ["MIN_FORM", "Needles"]

MIN_FORM = 4
"""Shortest pattern searched: 4 bytes match random data once per 4 GiB."""


def byte_forms(data: bytes) -> dict[str, bytes]:
    forms = {
        "raw": data,
        "hex": data.hex().encode(),
        "HEX": data.hex().upper().encode(),
        "repr": repr(data)[2:-1].encode(),
        "latin-1": data.decode("latin-1").encode("utf-8"),
    }
    forms.update(_base64_forms(data))
    return forms


@dataclass
class Needles:
    """Labelled secrets, expanded into their forms once."""

    forms: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def text(self, label: str, secret: str) -> Needles:
        self.forms[label] = {k: v for k, v in encodings(secret).items() if len(v) >= MIN_FORM}
        return self

    def data(self, label: str, secret: bytes | bytearray) -> Needles:
        if len(secret) < 8:
            raise ValueError("byte secrets shorter than 8 bytes cannot be searched for")
        if not any(secret):
            raise ValueError(f"{label} is all zeros: it was wiped before it was collected")
        self.forms[label] = byte_forms(bytes(secret))
        return self

    def search(self, haystack: bytes | str) -> list[str]:
        """``label (encoding)`` for every needle found in ``haystack``."""
        data = haystack.encode("utf-8", "surrogatepass") if isinstance(haystack, str) \
            else haystack
        return [f"{label} ({enc})" for label, forms in self.forms.items()
                for enc, pattern in forms.items() if pattern in data]

    def labels(self) -> list[str]:
        return list(self.forms)
