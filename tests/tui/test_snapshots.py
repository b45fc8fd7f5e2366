"""How the demo looks at 80x24: seeded keypad, animations off (the autouse fixture),
a fixed date and approval code, and fixed at-rest rows in the lab (real ones are
random bytes; tests/tui/test_lab.py checks those).

Update with ``pytest tests/tui --snapshot-update`` and look at the SVGs before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from splitvault.tui import DemoApp
from splitvault.tui._atrest import Field
from splitvault.tui._shares import ShareView, SideShares
from splitvault.tui._vault import DemoVault

from .helpers import (
    PIN,
    SIZE,
    click_button,
    enroll_directly,
    fill_card,
    pay,
    settle,
    tap_pin,
)

SnapCompare = Callable[..., bool]
Demo = Callable[..., DemoApp]


@pytest.fixture(autouse=True)
def fixed_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wallet names its data folder: a temporary one differs on every run."""
    monkeypatch.setattr("splitvault.tui._wallet.data_line", lambda vault: (
        "Data: ~/.local/share/splitvault/demo (device.db, server.db); w wipes it"))


async def _steady(pilot: Pilot[Any]) -> None:
    """No blinking cursor caught half-way."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await settle(pilot)


def test_wallet_empty(snap_compare: SnapCompare, demo: Demo) -> None:
    """First start: the explanation and the empty state."""
    assert snap_compare(demo(), terminal_size=SIZE)


def test_add_card_with_inline_error(snap_compare: SnapCompare, demo: Demo) -> None:
    """A mistyped number (Luhn) and an expired date, each with its line under it."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await click_button(pilot, "Add card")
        await fill_card(pilot, pan="4111 1111 1111 1112", expiry="05/25")
        await click_button(pilot, "Continue")
        await _steady(pilot)

    assert snap_compare(demo(), terminal_size=SIZE, run_before=run_before)


def test_keypad_screen(snap_compare: SnapCompare, demo: Demo) -> None:
    """Paying: the prompt, the seeded keypad with the security phrase, centred."""
    app = demo()
    enroll_directly(app)

    async def run_before(pilot: Pilot[Any]) -> None:
        await click_button(pilot, "Pay")
        await click_button(pilot, "Pay with PIN")
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_result_approved(snap_compare: SnapCompare, demo: Demo) -> None:
    """An approved payment: amount with separators, masked card, approval code."""
    app = demo()
    enroll_directly(app)

    async def run_before(pilot: Pilot[Any]) -> None:
        await pay(pilot, fast=True)
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


SERVER_ROW = [
    Field("card_id", "5f3a9c0e…c2d1"),
    Field("device_key", "8a1f03c2b4…a9f0", "32 B", secret=True),
    Field("verifier", "37c729e6f8…8dc9", "32 B", secret=True),
    Field("wrapped by", "key 51331912323b96f0"),
    Field("oprf_key", "6339b34d65…fec9", "80 B", secret=True),
    Field("share", "fab0e1a43c…a9f7", "80 B", secret=True),
    Field("guesses_used", "0"),
    Field("locked", "no"),
]
DEVICE_ROW = [
    Field("card_id", "5f3a9c0e…c2d1"),
    Field("in clear", "visa 1111 12/30"),
    Field("sealed_record", "104f5a212f…f3ce", "110 B", secret=True),
    Field("device_share", "9480d3bead…cf2f", "32 B", secret=True),
    Field("sign_seed", "e2fdab14d2…0315", "32 B", secret=True),
    Field("device_secret", "64f5f308f1…fa43", "32 B", secret=True),
    Field("salt", "c18e4649be…f3dc", "16 B", secret=True),
    Field("kdf", "t=3 64 MiB p=4"),
    Field("server_key", "934d6c0d59…af0d", "32 B", secret=True),
    Field("phrase", "“blue otter”"),
]


def test_security_lab(snap_compare: SnapCompare, demo: Demo,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides side by side, the scans, the guess counter, the search field."""
    monkeypatch.setattr("splitvault.tui._lab.read_server_row", lambda *_: SERVER_ROW)
    monkeypatch.setattr("splitvault.tui._lab.read_device_row", lambda *_: DEVICE_ROW)
    app = demo()
    enroll_directly(app)

    async def run_before(pilot: Pilot[Any]) -> None:
        await click_button(pilot, "Lab")
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


BEFORE = ShareView(SideShares(0, "4f1c09a2"), SideShares(0, "b71e0c55"), "5d02e9c1")
AFTER = ShareView(SideShares(1, "9e33d0b7", True), SideShares(1, "20a8f4d1", True),
                  "5d02e9c1")


def test_security_lab_copy_refused(snap_compare: SnapCompare, demo: Demo,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The re-split pane at the end of the experiment: both shares changed, the sealed
    card the same, the copy refused with nothing charged, and re-enrollment offered.
    (Fixed fingerprints: real ones are hashes of random shares.)"""
    monkeypatch.setattr("splitvault.tui._lab.read_server_row", lambda *_: SERVER_ROW)
    monkeypatch.setattr("splitvault.tui._lab.read_device_row", lambda *_: DEVICE_ROW)
    monkeypatch.setattr(DemoVault, "share_view", lambda self, card_id: AFTER)
    monkeypatch.setattr(DemoVault, "shares_before", lambda self, card_id: BEFORE)
    app = demo()
    enroll_directly(app)

    async def run_before(pilot: Pilot[Any]) -> None:
        await click_button(pilot, "Lab")
        await click_button(pilot, "Re-split & copy (s)")
        await click_button(pilot, "Copy this device")
        await click_button(pilot, "Pay with this device")
        await click_button(pilot, "Pay with PIN")
        await tap_pin(pilot, PIN)
        await click_button(pilot, "Done")
        await click_button(pilot, "Pay with the copy")
        await tap_pin(pilot, PIN)
        await click_button(pilot, "Done")
        await _steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
