"""A total deadline for each device request, enforced at the socket.

httpx's timeouts apply per operation: the read timeout restarts with every chunk, so a
hostile server (or an on-path attacker without TLS) that trickles its reply one byte
at a time can hold a device for hours, each byte arriving just inside the timeout.
Checking the clock between chunks is not enough either: the response *headers* are
read inside httpcore, before the caller sees a single byte.

So the device's connections use :class:`DeadlineBackend`, an httpcore network backend
whose every connect, TLS handshake, read and write waits at most until the deadline of
the call running in this thread (:func:`deadline`), and fails with httpcore's own
timeout error once it has passed. httpcore then closes the connection, as after any
timeout, and httpx reports an ``httpx.TimeoutException``. The per-operation timeouts
still apply below the deadline.

The deadline is per thread, because the sync client does each request's I/O in the
thread that called it, whichever pooled connection it uses.
"""

from __future__ import annotations

import ssl
import threading
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpcore

__all__ = ["DeadlineBackend", "deadline", "remaining"]

_local = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Run the block's I/O under a deadline ``seconds`` from now; yields it (monotonic).
    Nested calls keep the earlier deadline."""
    outer: float | None = getattr(_local, "deadline", None)
    at = time.monotonic() + seconds
    _local.deadline = at if outer is None else min(outer, at)
    try:
        yield _local.deadline
    finally:
        _local.deadline = outer


def remaining() -> float | None:
    """Seconds left before this thread's deadline (may be <= 0), or None without one."""
    at: float | None = getattr(_local, "deadline", None)
    return None if at is None else at - time.monotonic()


def _bound(timeout: float | None, error: type[Exception]) -> float | None:
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise error("request deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(
            ssl_context, server_hostname, _bound(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync socket backend with every operation bounded by :func:`deadline`."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[typing.Any] | None = None,
                    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(
            host, port, _bound(timeout, httpcore.ConnectTimeout), local_address,
            socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[typing.Any] | None = None,
                            ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(
            path, _bound(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
