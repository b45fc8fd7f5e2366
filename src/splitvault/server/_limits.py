"""What one client may hold of the server: connections, time, and a share of the work.

uvicorn has no header timeout (a connection that sends half a request line waits
forever) and no per-address cap, and its ``limit_concurrency`` counts *connections*,
so a thousand idle sockets would make it answer 503 to everyone. So ``serve`` runs
uvicorn's own httptools protocol (:class:`GuardedHttpTools`; the parser is llhttp, in
C: uvicorn's pure-Python h11 parser cost more CPU per request than the share server's
own work, ``benchmarks/HTTP_PROFILE.md``) with, per connection:

- a cap on connections per client address and in total, checked on accept; a
  connection over either cap is closed at once, before a byte is read;
- a header deadline: each request's header block must be complete within
  ``header_seconds`` of the connection (or of the previous response), and at most
  ``max_header_bytes`` long (llhttp has no limit of its own);
- a body deadline: its body within ``body_seconds`` of its headers;
- a request deadline: the response complete within ``request_seconds`` of the start.

A connection past a deadline is aborted (no reply: a slow client is not owed one).
A ``ShareServer`` call already running finishes in its thread; its reply is dropped.
The bound on requests inside the app (``max_requests``) is :class:`ServeGuard`'s
in ``_access.py``. Log lines about all this go through the log limiter.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DEFAULT", "GuardedHttpTools", "ServeLimits", "guarded_protocol"]

log = logging.getLogger("splitvault.serve")


@dataclass(frozen=True)
class ServeLimits:
    """A named set of limits; :data:`DEFAULT` is what ``serve`` runs with, and the
    ``--max-connections``, ``--max-connections-per-address``, ``--header-timeout`` and
    ``--body-timeout`` flags override single fields of it."""

    max_connections: int = 1000
    """Open connections in total: the flood of issue 9 was about a thousand; each costs
    a descriptor and a few KB, and the file limit is raised to hold them."""
    max_connections_per_address: int = 128
    """Per client address: above the benchmark's 32 and the 50-thread guessing test
    from one address, far below what lets one host fill the server."""
    max_requests: int = 256
    """Requests inside the app at once; more get 503 at once instead of queueing for
    the 40 worker threads until every client times out."""
    header_seconds: float = 10.0
    """A request's header block must be complete this long after the connection (or
    the previous response): a device sends it in one write, a slowloris never does."""
    body_seconds: float = 10.0
    """Its body (at most 64 KB, a few hundred bytes in practice) within this of its
    headers: equal to the device's whole-call deadline."""
    request_seconds: float = 30.0
    """The response complete within this of the request's start: three times the
    device's deadline, so only a stuck or hostile exchange reaches it."""
    keep_alive_seconds: int = 5
    """Idle time between requests (uvicorn's own timer); the device drops idle pooled
    connections after 2 s, below this."""
    max_header_bytes: int = 8 * 1024
    """Largest header block (request line included): our headers are a few hundred
    bytes; more only buys an attacker memory."""
    backlog: int = 2048
    """Kernel accept queue: absorbs a burst of connects while the loop is busy."""

    def with_overrides(self, **fields: Any) -> ServeLimits:
        """A copy with the given fields replaced (None values ignored), checked."""
        limits = replace(self, **{k: v for k, v in fields.items() if v is not None})
        limits.check()
        return limits

    def check(self) -> None:
        """``ValueError`` unless every limit is positive and the deadlines nest."""
        if min(self.max_connections, self.max_connections_per_address, self.max_requests,
               self.max_header_bytes, self.backlog) < 1:
            raise ValueError("connection and request limits must be at least 1")
        if not (0 < self.header_seconds <= self.request_seconds and self.body_seconds > 0
                and self.keep_alive_seconds > 0):
            raise ValueError("timeouts must be positive and the header timeout at most "
                             f"the request deadline ({self.request_seconds:g} s)")

    def fit_file_limit(self) -> ServeLimits:
        """Raise the soft open-file limit to hold ``max_connections`` plus a reserve, or
        lower ``max_connections`` to what fits: past the file limit, accept() fails and
        asyncio logs an error at every attempt (the log flood of issue 9)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.max_connections + _FD_RESERVE
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY and soft < wanted:
            return replace(self, max_connections=max(1, soft - _FD_RESERVE))
        return self


DEFAULT = ServeLimits()
"""The limits ``serve`` runs with unless a flag overrides one."""
_FD_RESERVE = 64
"""Descriptors kept for the database, its WAL, log files and the thread pool."""


class _Addresses:
    """Open connections per client address and in total (event loop only: no lock)."""

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self.open: Counter[str] = Counter()
        self.total = 0

    def admit(self, address: str) -> bool:
        if (self.total >= self.limits.max_connections
                or self.open[address] >= self.limits.max_connections_per_address):
            return False
        self.open[address] += 1
        self.total += 1
        return True

    def release(self, address: str) -> None:
        self.total -= 1
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with connection caps, the three deadlines and the
    header size cap. One timer per connection, re-armed at each phase: headers, body,
    response."""

    addresses: _Addresses  # set by guarded_protocol() on the subclass it makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer: asyncio.TimerHandle | None = None
        self._phase = "header"
        self._header_bytes = 0
        self._started = self.loop.time()
        self._address = self.client[0] if self.client else "unknown"
        self._admitted = self.addresses.admit(self._address)
        if not self._admitted:
            cap = ("total" if self.addresses.total >= self.addresses.limits.max_connections
                   else "per-address")
            log.warning("connection refused: %s connection cap reached", cap,
                        extra={"fields": {"client": self._address}})
            transport.abort()
            return
        self._arm(self.addresses.limits.header_seconds, "header")

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.cancel()  # type: ignore[union-attr]
            self._timer = None
        if getattr(self, "_admitted", False):
            self._admitted = False
            self.addresses.release(self._address)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Counted before parsing, judged after: a chunk that completes the headers may
        # carry the body too, and only bytes that are still headers count.
        waiting = self._phase == "header"
        if waiting:
            self._header_bytes += len(data)
        super().data_received(data)
        if (waiting and self._phase == "header" and not self.transport.is_closing()
                and self._header_bytes > self.addresses.limits.max_header_bytes):
            self._too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._message_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle.response_complete or self.transport.is_closing():
            return
        limits = self.addresses.limits
        left = limits.request_seconds - (self.loop.time() - self._started)
        self._arm(min(limits.body_seconds, left), "body")  # until on_message_complete

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._phase == "body" and not self.transport.is_closing():
            limits = self.addresses.limits
            self._arm(limits.request_seconds - (self.loop.time() - self._started), "request")

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request is parsed already
        super().on_response_complete()  # starts it, if there is one
        if self.transport.is_closing():
            return
        self._started = self.loop.time()
        self._header_bytes = 0
        if pipelined:
            self._arm(self.addresses.limits.request_seconds, "request")
        else:
            self._arm(self.addresses.limits.header_seconds, "header")

    def _count(self, size: int) -> None:
        """The header block of this message, whatever the bytes per read (a pipelined
        request is parsed while the one before it runs)."""
        self._message_bytes += size
        if self._message_bytes > self.addresses.limits.max_header_bytes:
            # Raised inside the parser's callback: httptools turns it into the parse
            # error that uvicorn answers with 400 and a close.
            raise ValueError("header block too large")

    def _too_large(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        log.warning("connection closed: header block over %d bytes",
                    self.addresses.limits.max_header_bytes,
                    extra={"fields": {"client": self._address}})
        self.send_400_response("Invalid HTTP request received.")

    def _arm(self, seconds: float, phase: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._phase = phase
        self._timer = self.loop.call_later(max(0.0, seconds), self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        log.warning("connection closed: %s timeout", self._phase,
                    extra={"fields": {"client": self._address}})
        self.transport.abort()


def guarded_protocol(limits: ServeLimits) -> type[GuardedHttpTools]:
    """A :class:`GuardedHttpTools` subclass bound to ``limits`` and one address table,
    for ``uvicorn.Config(http=...)``."""
    return type("GuardedHttpTools", (GuardedHttpTools,), {"addresses": _Addresses(limits)})
