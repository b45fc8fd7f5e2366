"""Driving the demo through the pilot, as a visitor would: typing, clicking keys."""

from __future__ import annotations

import asyncio
import datetime
import random
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Button, Input

from splitvault import Card, Declined, KdfProfile, Pin
from splitvault.keypad import KeypadKey, SecureKeypad
from splitvault.tui import DemoApp

SEED = 7
TODAY = datetime.date(2025, 6, 1)
PAN = "4111 1111 1111 1111"
PAN_DIGITS = "4111111111111111"
HOLDER = "KIM MINSU"
PHRASE = "blue otter"
PIN = "739184"
WRONG_PIN = "580247"
SIZE = (80, 24)
APPROVAL_CODE = "K7Q2ZP"


class FixedAcquirer:
    """Approves with one fixed code (for stable snapshots), declines over 1,000,000."""

    def __init__(self) -> None:
        self.calls = 0

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str:
        self.calls += 1
        if amount > 1_000_000:
            raise Declined("amount over limit")
        return APPROVAL_CODE


def make_app(data_dir: Path, **options: Any) -> DemoApp:
    options.setdefault("kdf", KdfProfile.TEST_ONLY)
    options.setdefault("rng", random.Random(SEED))
    options.setdefault("today", lambda: TODAY)
    if options.get("server_url") is None:
        options.setdefault("acquirer", FixedAcquirer())
    return DemoApp(data_dir, **options)


async def settle(pilot: Pilot[Any]) -> None:
    """Let every vault worker finish and its result reach the screens.

    Waiting for the workers is not enough: a worker's result is a ``StateChanged``
    message to the screen that started it, which may by then lie under another one
    (the keypad's), and its handler may push a screen that starts a worker of its own
    on mount (Textual forgets a worker once it is done). ``pilot.pause()`` only drains
    the top screen, and on a loaded machine its idle test can pass before the rest has
    run. So: drain every screen on the stack, and go round until a round starts no
    worker, ends with none running and leaves the stack as it was. A screen that
    retries on a timer (the receipt's, while the sink is down) starts workers for as
    long as it is shown: after five rounds that each started one, a round that ends
    with none running and the stack unchanged is enough."""
    app = pilot.app
    started = _count_workers(app)
    await pilot.pause()
    busy_rounds = 0
    for _ in range(100):
        while any(not worker.is_finished for worker in app.workers):
            await app.workers.wait_for_complete()
        stack, before = list(app.screen_stack), started[0]
        await _drain(app)
        await pilot.pause()
        busy_rounds = busy_rounds + 1 if started[0] != before else 0
        if ((busy_rounds == 0 or busy_rounds > 5)
                and all(worker.is_finished for worker in app.workers)
                and len(stack) == len(app.screen_stack)
                and all(a is b for a, b in zip(stack, app.screen_stack, strict=True))):
            return
    raise AssertionError("the app did not settle in 100 rounds")


def _count_workers(app: Any) -> list[int]:
    """A counter of the workers ``app`` has started, kept on the app (made once)."""
    counter: list[int] | None = getattr(app, "_settle_started", None)
    if counter is None:
        counter = app._settle_started = [0]
        add = app.workers.add_worker

        def counted(worker: Any, *args: Any, **kwargs: Any) -> None:
            counter[0] += 1
            add(worker, *args, **kwargs)

        app.workers.add_worker = counted
    return counter


async def _drain(app: Any) -> None:
    """Return once the app and every node of every screen on its stack have handled
    what was queued for them (Textual's own pilot does this for the top screen), or
    the app has failed (its error is then the test's, not a timeout)."""
    nodes = [app, *(node for screen in app.screen_stack
                    for node in screen.walk_children(with_self=True))]
    done = asyncio.Event()
    count = 0

    def handled() -> None:
        nonlocal count
        count -= 1
        if count == 0:
            done.set()

    for node in nodes:
        if node.call_later(handled):
            count += 1
    if count:
        waits = [asyncio.ensure_future(done.wait()),
                 asyncio.ensure_future(app._exception_event.wait())]
        finished, pending = await asyncio.wait(waits, timeout=30,
                                               return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if not finished:
            raise AssertionError("the app's screens did not handle their messages in 30 s")


def digit_key(app: DemoApp, digit: str) -> KeypadKey:
    """The keypad key labelled ``digit`` right now (the layout moves after each press)."""
    keys = [key for key in app.screen.query(KeypadKey) if str(key.label) == digit]
    assert len(keys) == 1, f"{len(keys)} keys labelled {digit!r}"
    return keys[0]


async def click_pin(pilot: Pilot[Any], digits: str) -> None:
    """Click each digit's key by its label, then OK: the mouse alone."""
    app = pilot.app
    assert isinstance(app, DemoApp)
    for digit in digits:
        assert await pilot.click(digit_key(app, digit))
        await pilot.pause()
    ok = [key for key in app.screen.query(KeypadKey) if str(key.label) == "OK"]
    assert await pilot.click(ok[0])
    await settle(pilot)


async def tap_pin(pilot: Pilot[Any], digits: str, *, wait: bool = True) -> None:
    """As :func:`click_pin`, faster: presses each key found by its label as a click does
    (``Button.press``), and waits only until the keypad has taken the digit (and drawn
    its next layout) instead of for three mouse events to settle."""
    app = pilot.app
    assert isinstance(app, DemoApp)
    pad = keypad(app)
    for count, digit in enumerate(digits, start=1):
        digit_key(app, digit).press()
        for _ in range(100):
            if pad.count == count:
                break
            await pilot.pause(0)
        assert pad.count == count
    [ok] = [key for key in app.screen.query(KeypadKey) if str(key.label) == "OK"]
    ok.press()
    if wait:
        await settle(pilot)


async def click_button(pilot: Pilot[Any], label: str) -> None:
    """Click the one visible button on the current screen whose label reads ``label``."""
    buttons = [b for b in pilot.app.screen.query(Button)
               if str(b.label) == label and b.display and not isinstance(b, KeypadKey)]
    assert len(buttons) == 1, f"{len(buttons)} buttons labelled {label!r}"
    assert await pilot.click(buttons[0])
    await settle(pilot)


async def type_into(pilot: Pilot[Any], selector: str, text: str, *, keys: bool = False) -> None:
    """Click a field and fill it in: key by key with ``keys``, else as a paste would
    (much faster; the field's ``restrict`` still applies)."""
    field = pilot.app.screen.query_one(selector, Input)
    assert await pilot.click(field)
    field.clear()
    if keys:
        await pilot.press(*text)
    else:
        field.insert_text_at_cursor(text)
    await pilot.pause()


async def fill_card(pilot: Pilot[Any], pan: str = PAN, expiry: str = "12/30",
                    holder: str = HOLDER) -> None:
    await type_into(pilot, "#pan", pan)
    await type_into(pilot, "#expiry", expiry)
    await type_into(pilot, "#holder", holder)


async def add_card(pilot: Pilot[Any], pin: str = PIN, phrase: str = PHRASE) -> None:
    """From the wallet: the whole enrollment, by mouse."""
    await click_button(pilot, "Add card")
    await fill_card(pilot)
    await click_button(pilot, "Continue")
    await type_into(pilot, "#phrase", phrase)
    await click_button(pilot, "Continue to PIN")
    await click_pin(pilot, pin)
    await click_pin(pilot, pin)


async def pay(pilot: Pilot[Any], pin: str = PIN, amount: str | None = None,
              *, fast: bool = False) -> None:
    """From the wallet, with a card selected: the payment form, then the keypad."""
    await click_button(pilot, "Pay")
    if amount is not None:
        await type_into(pilot, "#amount", amount)
    await click_button(pilot, "Pay with PIN")
    await (tap_pin if fast else click_pin)(pilot, pin)


def enroll_directly(app: DemoApp, pin: str = PIN, phrase: str = PHRASE) -> str:
    """Enroll a card without the UI, for tests about what comes after (the vault
    still scans both sides, as after an enrollment through the UI)."""
    card = Card.parse(PAN, "12/30", HOLDER, today=TODAY)
    with Pin.from_digits(pin) as secret:
        return app.vault.enroll(card, secret, phrase)


def keypad(app: DemoApp) -> SecureKeypad:
    return app.screen.query_one(SecureKeypad)


def screen_text(app: DemoApp) -> str:
    """Everything on screen as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
