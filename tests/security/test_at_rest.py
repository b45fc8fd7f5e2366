"""Neither side's files hold the card: the byte scan of everything both sides write."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import splitvault as sv
from splitvault._attack.scan import encodings, scan_files, sqlite_files
from support import HOLDER, OTHER_PIN, PAN_DIGITS, pay

pytestmark = pytest.mark.security

NEEDLES = {"PAN": PAN_DIGITS, "holder": HOLDER, "holder (Korean)": "김민수"}


def _all_files(tmp_path: Path) -> list[Path]:
    return sqlite_files(tmp_path / "server.db", tmp_path / "device.db")


def test_no_file_of_either_side_holds_the_card(tmp_path: Path) -> None:
    """After every flow (enroll, pay, wrong PIN, decline, PIN change) and with the WAL
    still open, no file either side wrote contains the PAN or the holder name in any
    encoding."""
    server = sv.ShareServer.open(tmp_path / "server.db",
                                 acquirer=sv.SimulatedAcquirer(limit=5000))
    device = sv.Device.open(tmp_path / "device.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    with sv.Pin.from_digits("739184") as pin, sv.Pin.from_digits(OTHER_PIN) as other:
        card_id = device.enroll(sv.Card(PAN_DIGITS, "12/30", HOLDER), pin)
        korean = device.enroll(sv.Card("5555555555554444", "01/31", "김민수"), pin)
        pay(device, card_id, pin)
        pay(device, card_id, pin, key="big", amount=9000)  # declined
        with pytest.raises(sv.WrongPin):
            pay(device, korean, other, key="wrong")
        device.change_pin(korean, pin, other)
        files = _all_files(tmp_path)
        assert any(p.name.endswith("-wal") for p in files)  # the WAL is scanned too
        assert scan_files(files, NEEDLES) == []
        device.delete(card_id)
    device.close()
    server.close()
    assert scan_files(_all_files(tmp_path), NEEDLES) == []


@pytest.mark.parametrize("encoding", sorted(encodings(PAN_DIGITS)))
def test_scanner_finds_a_planted_pan(tmp_path: Path, encoding: str) -> None:
    """The scan is not vacuous: a PAN planted in any encoding, mid-file, is found."""
    planted = b"\x00junk" + encodings(PAN_DIGITS)[encoding] + b"more junk\x01"
    (tmp_path / "leak.bin").write_bytes(planted)
    found = scan_files([tmp_path / "leak.bin"], {"PAN": PAN_DIGITS})
    assert any(f.encoding == encoding for f in found)


@settings(max_examples=60, deadline=None)
@given(prefix=st.binary(max_size=7), suffix=st.binary(max_size=7))
def test_scanner_finds_base64_at_any_offset(prefix: bytes, suffix: bytes) -> None:
    """A PAN inside a base64-encoded blob is found whatever bytes surround it."""
    blob = base64.b64encode(prefix + PAN_DIGITS.encode() + suffix)
    forms = encodings(PAN_DIGITS)
    assert any(pat in blob for name, pat in forms.items() if name.startswith("base64@"))


def test_scanner_finds_packed_bcd_at_odd_nibble(tmp_path: Path) -> None:
    """Packed BCD starting mid-byte is found too."""
    (tmp_path / "bcd.bin").write_bytes(bytes.fromhex("A" + PAN_DIGITS + "FFF"))
    assert scan_files([tmp_path / "bcd.bin"], {"PAN": PAN_DIGITS})
