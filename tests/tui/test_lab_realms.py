"""The lab's realms screen (issue 13, the demo): three realms side by side, each one's
row for the demo card; stop one and pay anyway, stop a second and the payment is
refused naming both, with nothing in the gateway's ledger."""

from __future__ import annotations

import stat
from collections.abc import Callable

import pytest
from textual.widgets import Button

import splitvault as sv
from splitvault.tui import DemoApp
from splitvault.tui._lab import LabScreen
from splitvault.tui._realms import DEMO_PAN, RealmDemo
from splitvault.tui._realms_screen import RealmsScreen
from splitvault.tui._shares import fingerprint

from .helpers import SIZE, click_button, enroll_directly, screen_text, settle
from .test_focus import _each_focus_is_visible
from .test_keys import _fits

Demo = Callable[..., DemoApp]
PAY = "Pay 12,000 KRW (p)"


def _realms(app: DemoApp) -> RealmDemo:
    realms = app.vault.realm_demo
    assert realms is not None and realms.card_id is not None
    return realms


def _flat(app: DemoApp) -> str:
    """The screen's text with every run of spaces and line breaks as one space: the
    result lines wrap at 80 columns."""
    return " ".join(screen_text(app).split())


def _screen(app: DemoApp) -> RealmsScreen:
    assert isinstance(app.screen, RealmsScreen)
    return app.screen


@pytest.mark.parametrize("size", [SIZE, (120, 40)])
async def test_stop_one_pay_stop_two_refused_nothing_charged(demo: Demo,
                                                             size: tuple[int, int]) -> None:
    """From the lab: the realms screen, a payment with all three running, one with
    realm-1 stopped (approved), one with realm-2 stopped too: ``ServerUnavailable``
    naming both, no ledger entry at the gateway, the acquirer not asked."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=size) as pilot:
        await click_button(pilot, "Lab")
        assert isinstance(app.screen, LabScreen)
        assert "t Realms" in screen_text(app)
        await click_button(pilot, "Realms")
        screen = _screen(app)
        realms = _realms(app)
        card_id = realms.card_id
        assert card_id is not None
        text = screen_text(app)
        for i in (1, 2, 3):
            assert f"realm-{i} · running" in text
        assert text.count(card_id[:8]) == 3 and "0 of 3" in text
        assert DEMO_PAN.replace(" ", "") not in text and DEMO_PAN not in text
        _fits(app)

        await click_button(pilot, PAY)
        assert screen._payment is not None and screen._payment.approved
        assert "✓ Approved 12,000 KRW" in _flat(app)
        assert len(realms.acquirer.calls) == 1

        await pilot.press("1")
        await settle(pilot)
        assert realms.realms[0].stopped and "realm-1 · STOPPED" in screen_text(app)
        assert str(app.screen.query_one("#toggle-1", Button).label) == "Start (1)"
        await click_button(pilot, PAY)
        assert screen._payment.approved
        assert "with realm-1 stopped: 2 realms were enough" in _flat(app)
        assert realms.gateway.payment_state(card_id, screen._payment.idempotency_key) \
            == "approved"
        assert len(realms.acquirer.calls) == 2

        await click_button(pilot, "Stop (2)")
        assert realms.stopped == ("realm-1", "realm-2")
        await pilot.press("p")
        await settle(pilot)
        payment = screen._payment
        assert payment is not None and not payment.approved
        assert isinstance(payment.error, sv.ServerUnavailable)
        assert "realm-1" in str(payment.error) and "realm-2" in str(payment.error)
        assert "realm-3" not in str(payment.error).split("no answer from", 1)[1]
        assert realms.gateway.payment_state(card_id, payment.idempotency_key) is None
        assert payment.ledger is None and len(realms.acquirer.calls) == 2
        text = _flat(app)
        assert "✗ Refused, ServerUnavailable" in text
        assert "Nothing charged: the gateway's ledger has no entry" in text
        assert "the acquirer was not asked" in text
        _fits(app)  # the longest the screen gets

        # Both back: the card pays again, and realm-3's counted guess is given back.
        await pilot.press("1", "2")
        await settle(pilot)
        assert not realms.stopped
        await click_button(pilot, PAY)
        assert screen._payment.approved and len(realms.acquirer.calls) == 3


async def test_rows_are_hashes_of_the_stored_bytes_never_the_shares(demo: Demo) -> None:
    """Each pane shows a hash of its realm's wrapped key share and data share as
    stored; neither the unwrapped values nor their hashes are on the screen, and each
    realm holds different shares."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Lab")
        await pilot.press("t")
        await settle(pilot)
        realms = _realms(app)
        text = screen_text(app)
        shown = set()
        for realm in realms.realms:
            [(key_share, share)] = realm.server.inspector().query(
                "SELECT oprf_key, share FROM cards WHERE card_id = ?", realms.card_id)
            for purpose, wrapped in (("oprf-key", key_share), ("share", share)):
                assert fingerprint(bytes(wrapped)) in text
                shown.add(fingerprint(bytes(wrapped)))
                clear = realm.server.inspector().unwrap(purpose, str(realms.card_id),
                                                        bytes(wrapped))
                assert fingerprint(clear) not in text
                assert bytes(clear[:4]).hex() not in text
        assert len(shown) == 6


async def test_the_deployment_is_private_kept_and_removed_at_exit(demo: Demo) -> None:
    """The deployment lives in its own 0700 temporary folder, apart from the wallet's
    data folder; leaving the screen keeps it (and the realms' state), quitting the demo
    removes it."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Lab")
        await click_button(pilot, "Realms")
        realms = _realms(app)
        folder = realms.folder
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert folder.parent != app.vault.data_dir
        assert app.vault.cards()[0].card_id != realms.card_id  # not the wallet's card
        await pilot.press("3")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, LabScreen)
        await pilot.press("t")
        await settle(pilot)
        assert app.vault.realm_demo is realms and realms.stopped == ("realm-3",)
        assert "realm-3 · STOPPED" in screen_text(app)
        await _each_focus_is_visible(pilot, "lab, realms")
    assert not folder.exists()
