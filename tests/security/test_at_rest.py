"""Neither side's files hold the card: the byte scan of everything both sides write."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitvault._attack import at_rest
from splitvault._attack._harness import PAN, Deployment, Lab
from splitvault._attack.scan import encodings, scan_files

pytestmark = pytest.mark.security



def test_no_file_of_either_side_holds_the_card(tmp_path: Path) -> None:
    """After every flow (enroll, pay, retry, conflict, decline, wrong PIN to lockout, PIN
    change, delete, acquirer failures) and with the WAL still open, no file either
    side wrote contains a PAN or a holder name in any encoding; nor after delete."""
    for attack in (at_rest.device_files_hold_no_card, at_rest.server_files_hold_no_card):
        with Deployment(workdir=tmp_path).lab() as lab:
            result = attack(lab)
        assert result.passed, f"{result.name}: {result.attacker_got} {result.detail}"


def test_one_share_alone_opens_nothing(lab: Lab) -> None:
    """The sealed record opens under neither share alone, only under their XOR."""
    result = at_rest.one_share_opens_nothing(lab)
    assert result.passed, result.attacker_got


def test_scanner_finds_planted_pans_in_every_encoding(lab: Lab) -> None:
    """The attack's own self-test passes: the scan is not vacuous."""
    assert at_rest.scanner_finds_planted_cards(lab).passed


@pytest.mark.parametrize("encoding", sorted(encodings(PAN)))
def test_scanner_finds_a_planted_pan(tmp_path: Path, encoding: str) -> None:
    """The scan is not vacuous: a PAN planted in any encoding, mid-file, is found."""
    planted = b"\x00junk" + encodings(PAN)[encoding] + b"more junk\x01"
    (tmp_path / "leak.bin").write_bytes(planted)
    found = scan_files([tmp_path / "leak.bin"], {"PAN": PAN})
    assert any(f.encoding == encoding for f in found)


@settings(max_examples=60, deadline=None)
@given(prefix=st.binary(max_size=7), suffix=st.binary(max_size=7))
def test_scanner_finds_base64_at_any_offset(prefix: bytes, suffix: bytes) -> None:
    """A PAN inside a base64-encoded blob is found whatever bytes surround it."""
    blob = base64.b64encode(prefix + PAN.encode() + suffix)
    forms = encodings(PAN)
    assert any(pat in blob for name, pat in forms.items() if name.startswith("base64@"))


def test_scanner_finds_packed_bcd_at_odd_nibble(tmp_path: Path) -> None:
    """Packed BCD starting mid-byte is found too."""
    (tmp_path / "bcd.bin").write_bytes(bytes.fromhex("A" + PAN + "FFF"))
    assert scan_files([tmp_path / "bcd.bin"], {"PAN": PAN})
