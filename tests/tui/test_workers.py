"""Slow work runs in a thread: the UI keeps going, shows it is busy, wipes every PIN,
and handles idempotency for the user."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from splitvault import Authorization, Pin, ServerUnavailable
from splitvault.tui import DemoApp
from splitvault.tui._result import ResultScreen
from splitvault.tui._wallet import WalletScreen
from splitvault.tui._widgets import Working

from .helpers import (
    PIN,
    SIZE,
    click_button,
    enroll_directly,
    keypad,
    pay,
    screen_text,
    settle,
    tap_pin,
)

Demo = Callable[..., DemoApp]


class Recorder:
    """Wraps ``vault.authorize``: records each call's key and Pin, and can hold a call
    until released or fail the first ones with ``ServerUnavailable``."""

    def __init__(self, real: Callable[..., Authorization], *, failures: int = 0,
                 hold: bool = False) -> None:
        self.real = real
        self.failures = failures
        self.keys: list[str] = []
        self.pins: list[Pin] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, card_id: str, pin: Pin, **kwargs: Any) -> Authorization:
        self.keys.append(kwargs["idempotency_key"])
        self.pins.append(pin)
        self.entered.set()
        self.release.wait(10)
        if self.failures:
            self.failures -= 1
            raise ServerUnavailable("cannot reach the share server")
        return self.real(card_id, pin, **kwargs)


async def test_ui_keeps_running_while_the_worker_works(
        demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the authorization is held in its thread, the busy bar shows, the keypad is
    frozen, q does not pull the databases away, and the screen still answers."""
    app = demo()
    enroll_directly(app)
    recorder = Recorder(app.vault.authorize, hold=True)
    monkeypatch.setattr(app.vault, "authorize", recorder)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Pay")
        await click_button(pilot, "Pay with PIN")
        await tap_pin(pilot, PIN, wait=False)
        for _ in range(200):
            if recorder.entered.is_set():
                break
            await pilot.pause()
        assert recorder.entered.is_set()
        assert app.busy and app.screen.query_one(Working).busy
        assert keypad(app).disabled
        assert "Proving the PIN" in screen_text(app)
        await pilot.press("q")  # refused while busy
        await pilot.pause()
        assert app.is_running
        recorder.release.set()
        await settle(pilot)
        assert isinstance(app.screen, ResultScreen) and app.screen.view.kind == "approved"
        assert not app.busy


async def test_every_pin_is_wiped_after_use(demo: Demo,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The Pin handed to the worker is zeroed once the call returns, right or wrong."""
    app = demo()
    enroll_directly(app)
    recorder = Recorder(app.vault.authorize)
    monkeypatch.setattr(app.vault, "authorize", recorder)
    async with app.run_test(size=SIZE) as pilot:
        await pay(pilot, pin="580247", fast=True)
        await click_button(pilot, "Try the PIN again")
        await tap_pin(pilot, PIN)
    assert len(recorder.pins) == 2 and all(pin.wiped for pin in recorder.pins)


async def test_retry_after_a_network_error_reuses_the_key(
        demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Server unreachable: "Try again" sends the same idempotency key (no double
    charge); the next payment gets a new key."""
    app = demo()
    enroll_directly(app)
    recorder = Recorder(app.vault.authorize, failures=1)
    monkeypatch.setattr(app.vault, "authorize", recorder)
    async with app.run_test(size=SIZE) as pilot:
        await pay(pilot, fast=True)
        assert isinstance(app.screen, ResultScreen) and app.screen.view.kind == "error"
        assert "could not be reached" in screen_text(app)
        await click_button(pilot, "Try again")
        await tap_pin(pilot, PIN)
        assert isinstance(app.screen, ResultScreen) and app.screen.view.kind == "approved"
        await click_button(pilot, "Done")
        await pay(pilot, fast=True)
    first, retry, second = recorder.keys
    assert first == retry and second != first
    assert first.startswith("demo-")


async def test_delete_destroys_the_card(demo: Demo) -> None:
    """Delete asks first, then removes both shares in a worker."""
    app = demo()
    card_id = enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Delete")
        await click_button(pilot, "Keep")
        assert len(app.vault.cards()) == 1
        await click_button(pilot, "Delete")
        await click_button(pilot, "Delete (y)")
        assert isinstance(app.screen, WalletScreen)
        assert app.vault.cards() == []
        assert "No cards yet" in screen_text(app)
        assert app.vault.scan_report(card_id) is None
