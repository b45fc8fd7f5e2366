"""``AsyncDevice``: the device role for asyncio apps, ``Device``'s methods as coroutines.

The protocol itself stays in :class:`Device`; this is a thin wrapper that moves each
call off the event loop. Argon2id (about 0.1 s at the INTERACTIVE profile) and the
server's round trips would otherwise stall every other task on the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from .._authorization import Authorization, CardSummary
from .._card import Card
from .._card_state import CardState
from .._pin import Pin
from .._profiles import KdfProfile, PinPolicy
from ._device import Device
from ._history import PaymentRecord

if TYPE_CHECKING:
    from .._protocol import ShareService
    from ..server import ShareServer

__all__ = ["AsyncDevice"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class AsyncDevice:
    """The device role for asyncio: every method of :class:`Device` as a coroutine.

    ::

        device = await sv.AsyncDevice.open("device.db", server="https://host:8700",
                                           pin_sha256="<fingerprint>")
        async with device:
            auth = await device.authorize(card_id, pin, amount=12000, currency="KRW",
                                          merchant="Gift Shop", idempotency_key="order-1")

    Each call runs the blocking :class:`Device` in a worker thread
    (``loop.run_in_executor``, as ``asyncio.to_thread`` does), and a per-instance lock
    lets one call run at a time, in the order they were made: calls on one device are
    serialized as they are on a ``Device`` used from one thread. Use one
    ``AsyncDevice`` per device store.

    Cancelling a call (a timeout, a cancelled task) does not stop it once its thread
    has started, since a thread cannot be interrupted: the cancellation takes effect
    when the call has finished, so a ``Pin`` is never wiped by its ``with`` block
    while the device still reads it. Its result is then lost to the caller; an
    ``authorize`` retried with the same idempotency key returns the recorded result
    and is never charged twice.
    """

    def __init__(self, device: Device) -> None:
        self._device = device
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path, *, server: ShareServer | ShareService | str,
                   kdf: KdfProfile = KdfProfile.INTERACTIVE,
                   pin_policy: PinPolicy = PinPolicy.DEFAULT,
                   pin_sha256: str | None = None,
                   timeout: float = 10.0) -> AsyncDevice:
        """Open (or create) the device store at ``path``, as :meth:`Device.open` does,
        with the same arguments, without blocking the event loop."""
        device = await _finish(asyncio.get_running_loop().run_in_executor(
            None, functools.partial(Device.open, path, server=server, kdf=kdf,
                                    pin_policy=pin_policy, pin_sha256=pin_sha256,
                                    timeout=timeout)))
        return cls(device)

    @property
    def kdf(self) -> KdfProfile:
        """The KDF profile new cards are enrolled with."""
        return self._device.kdf

    @property
    def pin_policy(self) -> PinPolicy:
        """Which PINs may be chosen."""
        return self._device.pin_policy

    async def close(self) -> None:
        """Close the store and the connection to the server, after any running call."""
        await self._run(self._device.close)

    async def __aenter__(self) -> AsyncDevice:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncDevice {self._device._store.path}>"

    # -- the public API, as Device's ---------------------------------------------------

    async def enroll(self, card: Card, pin: Pin, *, security_phrase: str | None = None) -> str:
        """:meth:`Device.enroll`: split ``card`` under ``pin``; returns the card id."""
        return await self._run(self._device.enroll, card, pin, security_phrase=security_phrase)

    async def authorize(self, card_id: str, pin: Pin, *, amount: int, currency: str,
                        merchant: str, idempotency_key: str) -> Authorization:
        """:meth:`Device.authorize`: pay ``amount`` (minor units of ``currency``) to
        ``merchant``, exactly once per ``idempotency_key``."""
        return await self._run(self._device.authorize, card_id, pin, amount=amount,
                               currency=currency, merchant=merchant,
                               idempotency_key=idempotency_key)

    async def check_new_pin(self, pin: Pin) -> None:
        """:meth:`Device.check_new_pin`: raise ``InvalidPin`` or ``WeakPin`` unless
        ``pin`` may be chosen."""
        await self._run(self._device.check_new_pin, pin)

    async def cards(self) -> list[CardSummary]:
        """:meth:`Device.cards`: id, brand, last 4 digits and expiry of each card."""
        return await self._run(self._device.cards)

    async def check_server(self) -> None:
        """:meth:`Device.check_server`: raise what is wrong with the server, if anything."""
        await self._run(self._device.check_server)

    async def history(self, card_id: str) -> list[PaymentRecord]:
        """:meth:`Device.history`: this device's record of the card's payments."""
        return await self._run(self._device.history, card_id)

    async def card_state(self, card_id: str) -> CardState:
        """:meth:`Device.card_state`: the card's PIN state as the server holds it."""
        return await self._run(self._device.card_state, card_id)

    async def security_phrase(self, card_id: str) -> str | None:
        """:meth:`Device.security_phrase`: the phrase chosen at enrollment."""
        return await self._run(self._device.security_phrase, card_id)

    async def change_pin(self, card_id: str, old_pin: Pin, new_pin: Pin) -> None:
        """:meth:`Device.change_pin`: replace the PIN (proving ``old_pin`` spends a
        guess)."""
        await self._run(self._device.change_pin, card_id, old_pin, new_pin)

    async def reenroll(self, card_id: str, card: Card, new_pin: Pin) -> None:
        """:meth:`Device.reenroll`: the way back for a locked card."""
        await self._run(self._device.reenroll, card_id, card, new_pin)

    async def cancel_interrupted(self) -> int:
        """:meth:`Device.cancel_interrupted`: cancel every half-done enrollment."""
        return await self._run(self._device.cancel_interrupted)

    async def delete(self, card_id: str) -> None:
        """:meth:`Device.delete`: destroy both shares; the card is gone for good."""
        await self._run(self._device.delete, card_id)

    # -- internals -----------------------------------------------------------------------

    async def _run(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        async with self._lock:
            # copy_context: the thread sees the caller's context variables, as with
            # asyncio.to_thread.
            call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
            return await _finish(asyncio.get_running_loop().run_in_executor(None, call))


async def _finish(future: asyncio.Future[_T]) -> _T:
    """The result of ``future``, awaited to the end even if this task is cancelled
    meanwhile; a cancellation is raised once the thread is done (see AsyncDevice)."""
    cancelled: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        future.exception()  # retrieved, so asyncio logs no "never retrieved" warning
        raise cancelled
    return future.result()
