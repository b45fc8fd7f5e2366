"""Search files for a secret in every encoding it might have been written in.

Used to prove that neither side writes the PAN or the holder's name anywhere: not in
the database, not in SQLite's WAL or journal, not in a key file. A plain ``in`` over
the raw bytes would miss a PAN stored as UTF-16 or base64, so each needle is expanded
into its encodings first: ASCII/UTF-8, UTF-16 LE and BE, hex (both cases), base64 and
base64url at all three byte alignments, and for digit strings packed BCD at both
nibble alignments.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finding", "encodings", "scan_files", "sqlite_files"]


@dataclass(frozen=True)
class Finding:
    path: str
    label: str
    encoding: str


def _base64_forms(data: bytes) -> dict[str, bytes]:
    """The base64 text that appears for ``data`` at each of the three alignments.

    Characters at either end that depend on neighbouring bytes are dropped, so the
    form matches wherever ``data`` sits inside a larger encoded blob.
    """
    out: dict[str, bytes] = {}
    for shift in range(3):
        for name, enc in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            text = enc(bytes(shift) + data).rstrip(b"=")
            lead = (shift * 8 + 5) // 6  # characters touched by the padding bytes
            usable = ((shift + len(data)) * 8) // 6  # characters fully inside the data
            form = text[lead:usable]
            if len(form) >= 8:
                out[f"{name}@{shift}"] = form
    return out


def _bcd_forms(digits: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, text in (("bcd", digits), ("bcd-shifted", "0" + digits)):
        if len(text) % 2:
            text += "F"
        out[name] = bytes.fromhex(text)
        # the shifted form's first and last nibble may be anything: match the middle
        if name == "bcd-shifted":
            out[name] = out[name][1:-1]
    return out


def encodings(secret: str) -> dict[str, bytes]:
    """Every byte pattern under which ``secret`` could sit in a file."""
    raw = secret.encode("utf-8")
    forms = {
        "ascii/utf-8": raw,
        "utf-16-le": secret.encode("utf-16-le"),
        "utf-16-be": secret.encode("utf-16-be"),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }
    forms.update(_base64_forms(raw))
    if secret.isdigit():
        forms.update(_bcd_forms(secret))
    return forms


def sqlite_files(*databases: Path) -> list[Path]:
    """A database with every companion file SQLite may write beside it."""
    out: list[Path] = []
    for db in databases:
        for suffix in ("", "-wal", "-shm", "-journal", ".kek", ".kek.new"):
            candidate = Path(f"{db}{suffix}")
            if candidate.exists():
                out.append(candidate)
    return out


def scan_files(paths: Iterable[Path], needles: dict[str, str]) -> list[Finding]:
    """Every (file, needle, encoding) where a needle was found. Empty means clean."""
    patterns = [(label, enc, pat) for label, secret in needles.items()
                for enc, pat in encodings(secret).items()]
    findings: list[Finding] = []
    for path in paths:
        data = Path(path).read_bytes()
        findings.extend(Finding(str(path), label, enc)
                        for label, enc, pat in patterns if pat in data)
    return findings
