"""The re-split in the demo (issue 12): the wallet's share version and re-split time,
the lab's shares before and after a payment (fingerprints, never the bytes), and a
real copy of the device that pays after the device did and is refused."""

from __future__ import annotations

import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable

import splitvault as sv
from resplit_support import sides
from splitvault import CardSummary
from splitvault.tui import DemoApp
from splitvault.tui._lab import LabScreen
from splitvault.tui._locked import LockedScreen
from splitvault.tui._resplit_pane import CopyPinScreen, ResplitPane, ResplitScreen
from splitvault.tui._result import ResultScreen
from splitvault.tui._shares import ShareView, SideShares, fingerprint
from splitvault.tui._wallet import WalletScreen, resplit_label

from .helpers import (
    PIN,
    SIZE,
    WRONG_PIN,
    FixedAcquirer,
    click_button,
    click_pin,
    enroll_directly,
    fill_card,
    pay,
    screen_text,
    settle,
    tap_pin,
)
from .test_focus import _each_focus_is_visible
from .test_keys import _fits

Demo = Callable[..., DemoApp]


async def _until(pilot: Pilot[Any], done: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait for ``done()``: on a loaded machine a worker's result can reach its screen a
    moment after ``settle`` returns."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await pilot.pause(0.05)
    assert done(), f"still on {type(pilot.app.screen).__name__}"


async def _click(pilot: Pilot[Any], label: str) -> None:
    """``click_button``, once a button labelled ``label`` is on screen."""
    await _until(pilot, lambda: any(str(b.label) == label and b.display
                                    for b in pilot.app.screen.query(Button)))
    await click_button(pilot, label)


def _button(app: DemoApp, button_id: str) -> Button:
    return app.screen.query_one(f"#{button_id}", Button)


async def _to_lab(pilot: Pilot[Any]) -> ResplitPane:
    """From the wallet: the lab, then its re-split screen."""
    await click_button(pilot, "Lab")
    assert isinstance(pilot.app.screen, LabScreen)
    await click_button(pilot, "Re-split & copy (s)")
    assert isinstance(pilot.app.screen, ResplitScreen)
    return pilot.app.screen.query_one(ResplitPane)


async def _to_wallet(pilot: Pilot[Any]) -> None:
    for _ in range(2):  # the re-split screen, then the lab
        await pilot.press("escape")
        await settle(pilot)
    assert isinstance(pilot.app.screen, WalletScreen)


async def _pay_in_lab(pilot: Pilot[Any], pin: str = PIN) -> None:
    """The lab's 'Pay with this device': the usual form, the keypad, then Done."""
    await click_button(pilot, "Pay with this device")
    await click_button(pilot, "Pay with PIN")
    await tap_pin(pilot, pin)
    await _click(pilot, "Done")


# -- fingerprints -------------------------------------------------------------------------


def test_a_fingerprint_is_a_hash_not_the_bytes() -> None:
    """Four bytes of a hash: a different share gives a different one, and it is none of
    the share's own bytes (shown beside the device's preview it combines to nothing)."""
    share = bytes(range(32))
    assert len(fingerprint(share)) == 8
    assert fingerprint(share) not in share.hex()
    assert fingerprint(share) != fingerprint(bytes(32))
    assert fingerprint(bytearray(share)) == fingerprint(share)


def test_resplit_label() -> None:
    """``v0 · never`` before the first payment; the time today, the date before."""
    now = time.mktime((2025, 6, 1, 15, 30, 0, 0, 0, -1))
    earlier = time.mktime((2025, 6, 1, 9, 5, 0, 0, 0, -1))
    assert resplit_label(CardSummary("a" * 32, "visa", "1111", "12/30")) == "v0 · never"
    assert resplit_label(CardSummary("a" * 32, "visa", "1111", "12/30", 3, earlier),
                         now) == "v3 · 09:05"
    assert resplit_label(CardSummary("a" * 32, "visa", "1111", "12/30", 3,
                                     earlier - 86400 * 3), now) == "v3 · 29 May"


def test_share_view_reads_both_stores(demo: Demo) -> None:
    """The fingerprints are of the real shares: the newest version each side holds
    (the staged one once taken), read from the device's file and, unwrapped, from
    the server's; the sealed card's is the same after the re-split."""
    app = demo()
    card_id = enroll_directly(app)
    before = app.vault.share_view(card_id)
    assert before is not None and before.server is not None
    with sv.Pin.from_digits(PIN) as pin:
        assert app.vault.authorize(card_id, pin, amount=1000, merchant="m",
                                   idempotency_key="k-1").approved
    assert app.vault.server is not None
    held = sides(app.vault.server, app.vault.device_db, card_id)
    now = app.vault.share_view(card_id)
    assert now is not None and now.server is not None
    assert held.device_next is not None and held.server_next is not None
    assert now.device == SideShares(1, fingerprint(held.device_next), keeps_previous=True)
    assert now.server == SideShares(1, fingerprint(held.server_next), keeps_previous=True)
    assert before.device.newest == fingerprint(held.device_share)
    assert before.server.newest == fingerprint(held.server_share)
    assert now.sealed == before.sealed == fingerprint(held.sealed_record)
    assert app.vault.shares_before(card_id) == before
    assert now.changed_from(before) == {"device": True, "server": True, "sealed": False}
    app.vault.close()


# -- the wallet ---------------------------------------------------------------------------


async def test_wallet_shows_share_version_and_resplit_time(demo: Demo) -> None:
    """Each row says the card's share version and when it was last re-split."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        assert "Re-split" in screen_text(app) and "v0 · never" in screen_text(app)
        await pay(pilot, fast=True)
        await _click(pilot, "Done")
        text = screen_text(app)
        assert f"v1 · {time.strftime('%H:%M')}" in text or \
            f"v1 · {time.strftime('%H:%M', time.localtime(time.time() - 60))}" in text
        await pay(pilot, fast=True)
        await _click(pilot, "Done")
        assert "v2 · " in screen_text(app)


# -- the lab: shares changing ---------------------------------------------------------------


async def test_lab_shows_the_shares_change_and_the_sealed_card_not(demo: Demo) -> None:
    """Before any payment the lab says so; after one, both shares' fingerprints
    changed and the sealed card's did not. No share's bytes are on the screen."""
    app = demo()
    card_id = enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await _to_lab(pilot)
        assert "no payment yet" in screen_text(app)
        await _pay_in_lab(pilot)
        assert isinstance(app.screen, ResplitScreen)
        text = screen_text(app)
        assert text.count("changed") == 2 and "the same" in text
        assert app.vault.server is not None
        held = sides(app.vault.server, app.vault.device_db, card_id)
        assert held.device_next is not None and held.server_next is not None
        for share in (held.device_next, held.server_next):
            assert fingerprint(share) in text
        # The server's share is shown as a hash only: none of its bytes, not even the
        # first five the device's pane shows of the device's share.
        for share in (held.server_share, held.server_next):
            assert share[:5].hex() not in text
        assert "keep v0 too" in text


# -- the lab: a copy of the device ------------------------------------------------------------


async def test_a_copy_of_the_device_is_refused_after_the_device_paid(demo: Demo) -> None:
    """The whole experiment, by mouse: copy this device (its files, 0700/0600, opened as
    a second device), pay with this device, pay with the copy and the right PIN:
    DeviceCloned, nothing charged, nothing in the ledger; the card is refused to this
    device too, and the lab's re-enrollment brings it back and cuts the copy off."""
    acquirer = FixedAcquirer()
    app = demo(acquirer=acquirer)
    card_id = enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await _to_lab(pilot)
        assert _button(app, "pay-copy").disabled
        _fits(app)
        await _each_focus_is_visible(pilot, "lab, re-split")
        await click_button(pilot, "Copy this device")
        copy = app.vault.copy
        assert copy is not None and copy.device is not app.vault.device
        assert stat.S_IMODE(copy.folder.stat().st_mode) == 0o700
        files = list(copy.folder.iterdir())
        assert any(f.name == "device.db" for f in files)
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert copy.card(card_id) is not None
        assert "Now pay with this device" in screen_text(app)
        assert _button(app, "pay-copy").disabled  # the copy is not stale yet

        await _pay_in_lab(pilot)
        assert acquirer.calls == 1
        assert "the copy still at v0" in screen_text(app)
        assert not _button(app, "pay-copy").disabled
        ledger = app.vault.ledger_size()

        await click_button(pilot, "Pay with the copy")
        assert isinstance(app.screen, CopyPinScreen)
        assert "COPY" in screen_text(app)
        await tap_pin(pilot, PIN)
        await _until(pilot, lambda: isinstance(app.screen, ResultScreen))
        assert isinstance(app.screen, ResultScreen) and app.screen.view.kind == "cloned"
        assert "Refused: a copy of this device" in screen_text(app)
        assert acquirer.calls == 1 and app.vault.ledger_size() == ledger
        assert app.vault.server is not None
        state = app.vault.server.card_state(card_id)
        assert state.cloned and state.guesses_used == 0
        assert any(e.get("event") == "clone_detected"
                   for e in app.vault.server.audit_entries())
        await _click(pilot, "Done")

        text = screen_text(app)
        assert "✗ The copy was refused (DeviceCloned)" in text
        assert ledger == 1 and "ledger holds 1 payment, as before" in text
        assert _button(app, "reenroll").display
        assert not _button(app, "pay-original").display
        _fits(app)  # the longest the screen gets, at 80x24
        await _each_focus_is_visible(pilot, "lab, card refused")
        await _to_wallet(pilot)

        # The wallet says so, and paying shows the way back instead of the keypad.
        assert isinstance(app.screen, WalletScreen)
        assert "copied" in screen_text(app)
        await click_button(pilot, "Pay")
        assert isinstance(app.screen, LockedScreen)
        assert "a copy was caught" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)

        # Re-enroll from the lab: the card, then a new PIN twice.
        await _to_lab(pilot)
        await click_button(pilot, "Re-enroll")
        await fill_card(pilot)
        await click_button(pilot, "Continue")
        await click_pin(pilot, WRONG_PIN)
        await click_pin(pilot, WRONG_PIN)
        await _until(pilot, lambda: isinstance(app.screen, ResplitScreen))
        assert not app.vault.server.card_state(card_id).cloned
        # The copy is cut off: refused again, and the card stays usable.
        await click_button(pilot, "Pay with the copy")
        await tap_pin(pilot, WRONG_PIN)
        await _until(pilot, lambda: isinstance(app.screen, ResultScreen))
        assert isinstance(app.screen, ResultScreen) and app.screen.view.kind == "cloned"
        await _click(pilot, "Done")
        assert not app.vault.server.card_state(card_id).cloned
        await _pay_in_lab(pilot, WRONG_PIN)
        assert acquirer.calls == 2


async def test_the_copy_is_removed_when_discarded_and_at_exit(demo: Demo) -> None:
    """The copied share lives only as long as the experiment: discarding the copy, or
    leaving the demo, removes its folder."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await _to_lab(pilot)
        await click_button(pilot, "Copy this device")
        first = app.vault.copy
        assert first is not None and first.folder.exists()
        await pilot.pause(0.3)  # a button ignores a second press during its press effect
        await click_button(pilot, "Discard the copy")
        assert app.vault.copy is None and not first.folder.exists()
        await pilot.pause(0.3)
        await click_button(pilot, "Copy this device")
        second = app.vault.copy
        assert second is not None and second.folder.exists()
    assert not second.folder.exists()


async def test_a_wrong_pin_on_the_device_makes_no_copy_stale(demo: Demo) -> None:
    """Only an approved payment re-splits: after a wrong PIN the copy still matches, and
    the lab does not offer to pay with it."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await _to_lab(pilot)
        await click_button(pilot, "Copy this device")
        await click_button(pilot, "Pay with this device")
        await click_button(pilot, "Pay with PIN")
        await tap_pin(pilot, WRONG_PIN)
        await pilot.press("escape")  # the result, then the form: back to the lab
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ResplitScreen)
        assert _button(app, "pay-copy").disabled
        assert "Now pay with this device" in screen_text(app)


# -- remote mode -----------------------------------------------------------------------------


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Any]:
    """A real ``splitvault serve`` in a subprocess (tests/http/http_support.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
    try:
        from http_support import ServerProcess
    finally:
        sys.path.pop(0)
    server = ServerProcess(tmp_path / "srv").start()
    yield server
    server.stop()


@pytest.mark.slow
async def test_remote_server_shows_what_the_device_knows(tmp_path: Path, demo: Demo,
                                                         live_server: Any) -> None:
    """With --server: the device's own shares, the server's version as it answers
    (``card_state``), no server share and no ledger; the copy is refused the same way
    over HTTP, and the server's answer marks the card copied."""
    app = demo(server_url=live_server.url)
    card_id = enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await _to_lab(pilot)
        await click_button(pilot, "Copy this device")
        await _pay_in_lab(pilot)
        text = screen_text(app)
        assert "on the server" in text and "as it answers" in text
        assert text.count("changed") == 1 and "the same" in text
        await click_button(pilot, "Pay with the copy")
        await tap_pin(pilot, PIN)
        await _until(pilot, lambda: isinstance(app.screen, ResultScreen))
        assert isinstance(app.screen, ResultScreen) and app.screen.view.kind == "cloned"
        await _click(pilot, "Done")
        await settle(pilot)
        text = screen_text(app)
        assert "✗ The copy was refused (DeviceCloned)" in text and "ledger" not in text
        assert app.vault.card_state(card_id) is not None
        assert app.vault.card_state(card_id).cloned  # type: ignore[union-attr]
        assert _button(app, "reenroll").display
        await _to_wallet(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1 and "copied" in screen_text(app)


def test_views_compare_without_the_server_when_remote() -> None:
    """Remote: only the device's share and the sealed card can be compared."""
    a = ShareView(SideShares(0, "aaaaaaaa"), None, "cccccccc")
    b = ShareView(SideShares(1, "bbbbbbbb", True), None, "cccccccc")
    assert b.changed_from(a) == {"device": True, "sealed": False}
