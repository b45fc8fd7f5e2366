"""AsyncDevice: Device's methods as coroutines, one call at a time, off the event loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import splitvault as sv
from support import OTHER_PIN, PIN


@pytest.fixture
def other_pin() -> Iterator[sv.Pin]:
    with sv.Pin.from_digits(OTHER_PIN) as p:
        yield p


@pytest.fixture
async def adevice(tmp_path: Path, server: sv.ShareServer) -> AsyncIterator[sv.AsyncDevice]:
    device = await sv.AsyncDevice.open(tmp_path / "adevice.db", server=server,
                                       kdf=sv.KdfProfile.TEST_ONLY)
    async with device:
        yield device


async def _pay(device: sv.AsyncDevice, card_id: str, pin: sv.Pin,
               key: str = "order-1") -> sv.Authorization:
    return await device.authorize(card_id, pin, amount=12000, currency="KRW",
                                  merchant="Gift Shop", idempotency_key=key)


def test_same_public_methods_as_device() -> None:
    """Every public method of Device is on AsyncDevice, as a coroutine function with
    the same parameters; open takes the same arguments as Device.open."""
    public = {n for n, _ in inspect.getmembers(sv.Device, inspect.isfunction)
              if not n.startswith("_")}
    assert public <= set(dir(sv.AsyncDevice))
    for name in public | {"open"}:
        method = getattr(sv.AsyncDevice, name)
        assert inspect.iscoroutinefunction(method), name
        assert (list(inspect.signature(method).parameters)
                == list(inspect.signature(getattr(sv.Device, name)).parameters)), name


async def test_enroll_pay_and_manage(adevice: sv.AsyncDevice, card: sv.Card, pin: sv.Pin,
                                     other_pin: sv.Pin) -> None:
    """The whole life of a card through the async API: enroll, list, phrase, pay (and
    a retry gets the recorded result), change the PIN, delete."""
    card_id = await adevice.enroll(card, pin, security_phrase="blue heron")
    assert [c.card_id for c in await adevice.cards()] == [card_id]
    assert await adevice.security_phrase(card_id) == "blue heron"
    auth = await _pay(adevice, card_id, pin)
    assert auth.approved and auth.masked_pan.endswith("1111")
    assert await _pay(adevice, card_id, pin) == auth
    await adevice.check_new_pin(other_pin)
    await adevice.change_pin(card_id, pin, other_pin)
    with pytest.raises(sv.WrongPin):
        await _pay(adevice, card_id, pin, key="order-2")
    assert (await _pay(adevice, card_id, other_pin, key="order-2")).approved
    await adevice.delete(card_id)
    assert await adevice.cards() == []


async def test_errors_are_the_same_as_device(adevice: sv.AsyncDevice, card: sv.Card,
                                             pin: sv.Pin) -> None:
    """Errors come out of the coroutine unchanged: caller mistakes, wrong PIN counts."""
    card_id = await adevice.enroll(card, pin)
    with pytest.raises(sv.InvalidPayment):
        await adevice.authorize(card_id, pin, amount=12000.5,  # type: ignore[arg-type]
                                currency="KRW", merchant="Shop", idempotency_key="k")
    with sv.Pin.from_digits("000000") as weak, pytest.raises(sv.WeakPin):
        await adevice.check_new_pin(weak)
    with sv.Pin.from_digits("258046") as wrong, pytest.raises(sv.WrongPin) as err:
        await _pay(adevice, card_id, wrong)
    assert err.value.attempts_left == 4
    with pytest.raises(sv.UnknownCard):
        await adevice.security_phrase("00" * 16)


async def test_calls_run_off_the_loop_one_at_a_time(adevice: sv.AsyncDevice, card: sv.Card,
                                                    pin: sv.Pin,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls run in a worker thread, never two at once on one device, while the event
    loop keeps running other tasks."""
    card_id = await adevice.enroll(card, pin)
    loop_thread = threading.get_ident()
    active: list[int] = []
    overlap: list[int] = []
    real = sv.Device.security_phrase

    def slow(self: sv.Device, card_id: str) -> str | None:
        assert threading.get_ident() != loop_thread
        active.append(1)
        overlap.append(len(active))
        time.sleep(0.02)
        active.pop()
        return real(self, card_id)

    monkeypatch.setattr(sv.Device, "security_phrase", slow)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.002)

    tick = asyncio.create_task(ticker())
    results = await asyncio.gather(*(adevice.security_phrase(card_id) for _ in range(5)))
    tick.cancel()
    assert results == [None] * 5
    assert overlap == [1] * 5
    assert ticks >= 10  # the loop ran meanwhile: about 100 ms of calls, 2 ms ticks


async def test_cancel_waits_for_the_running_call(adevice: sv.AsyncDevice,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelling a call whose thread has started takes effect when that thread is done,
    so a caller's Pin is not wiped while the device still reads it; the next call runs
    after it, not beside it."""
    started = threading.Event()
    finished = threading.Event()

    def slow_cards(self: sv.Device) -> list[sv.CardSummary]:
        started.set()
        time.sleep(0.1)
        finished.set()
        return []

    monkeypatch.setattr(sv.Device, "cards", slow_cards)
    task = asyncio.create_task(adevice.cards())
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


async def test_wraps_an_open_device(tmp_path: Path, server: sv.ShareServer, card: sv.Card,
                                    pin: sv.Pin) -> None:
    """AsyncDevice(device) wraps a Device already open; closing it closes the device."""
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    adevice = sv.AsyncDevice(device)
    assert adevice.kdf is sv.KdfProfile.TEST_ONLY
    assert adevice.pin_policy is sv.PinPolicy.DEFAULT
    assert "d.db" in repr(adevice)
    card_id = await adevice.enroll(card, pin)
    assert device.cards()[0].card_id == card_id
    await adevice.close()
    with sv.Device.open(tmp_path / "d.db", server=server,
                        kdf=sv.KdfProfile.TEST_ONLY) as again, \
            sv.Pin.from_digits(PIN) as same:
        assert again.authorize(card_id, same, amount=1, currency="KRW", merchant="Shop",
                               idempotency_key="k").approved
