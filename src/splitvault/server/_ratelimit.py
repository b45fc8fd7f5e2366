"""Per-client rate limiting: a token bucket per client address, in memory; and the
limiter of log lines, so that a flood of bad connections cannot flood the log too.

This bounds how much work one address can make the server do (OPRF evaluations,
fsyncs, Argon2-free but not free signature checks). It is not what protects the PIN:
the per-card guess limit does that, whatever the address. The client address is the
TCP peer; behind a reverse proxy every client shares the proxy's address, so limit
there instead (or raise the limit here).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE", "LimitedLogHandler", "RateLimiter"]

DEFAULT_RATE = 50.0
"""Requests per second per address: a device pays in two or three requests, so this is
a dozen payments a second from one address, well below what one worker serves (the
old 1000/s never engaged). Benchmarks from one address pass ``--rate-limit 0``."""
DEFAULT_BURST = 100.0
"""Bucket size: two seconds at the default rate, so a burst of parallel clients passes."""
MAX_CLIENTS = 10_000
"""Addresses tracked at once. Past this the least recently seen is forgotten, so a
flood of spoofed-looking addresses cannot grow memory without bound."""


class RateLimiter:
    """``take(address)`` answers 0.0 (go ahead) or the seconds until a token is free.

    Called from the event loop only, so it needs no lock. ``clock`` is injectable for
    tests; it must be monotonic.
    """

    def __init__(self, rate: float = DEFAULT_RATE, burst: float = DEFAULT_BURST, *,
                 clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_CLIENTS) -> None:
        if not (rate > 0 and burst >= 1 and max_clients >= 1):
            raise ValueError("rate must be positive, burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, address: str) -> float:
        now = self._clock()
        tokens, then = self._buckets.pop(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[address] = (tokens, now)  # re-inserted last: most recently seen
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """The ``Retry-After`` header value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait)))


LOG_LINES = 20
"""Lines of one kind let through per interval: enough to see what is happening."""
LOG_INTERVAL = 10.0
"""Seconds per window: a flood costs at most LOG_LINES + 1 lines per kind per window."""
MAX_LOG_KINDS = 256
"""Kinds tracked at once; past this a new kind shares one catch-all bucket, so messages
that embed peer details cannot grow the table."""


class LimitedLogHandler(logging.Handler):
    """Wraps a handler: at most ``lines`` records of one kind per ``interval``, then one
    summary line "suppressed K similar messages" when the window closes.

    A kind is (logger, message template, error code). An access-log line of a
    request that succeeded is never limited: that log is the record of what was
    served. Everything else (uvicorn's "Invalid HTTP request", asyncio's accept errors,
    our connection refusals and timeouts, 4xx/5xx access lines) is.
    """

    def __init__(self, inner: logging.Handler, *, lines: int = LOG_LINES,
                 interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(inner.level)
        self.inner = inner
        self.lines = lines
        self.interval = interval
        self._clock = clock
        self._windows: dict[tuple[str, str, str], list[Any]] = {}
        self._swept = clock()

    def emit(self, record: logging.LogRecord) -> None:
        now = self._clock()
        if now - self._swept >= 1.0:
            self._sweep(now)
        fields = getattr(record, "fields", None)
        error = fields.get("error") if isinstance(fields, dict) else None
        status = fields.get("status") if isinstance(fields, dict) else None
        if record.name == "splitvault.http" and not error and isinstance(status, int) \
                and 0 < status < 400:
            self.inner.handle(record)
            return
        key = (record.name, str(record.msg)[:80], str(error or ""))
        if key not in self._windows and len(self._windows) >= MAX_LOG_KINDS:
            key = ("*", "*", "*")
        window = self._windows.setdefault(key, [now, 0, 0, record])  # start, seen, dropped
        window[1] += 1
        if window[1] > self.lines:
            window[2] += 1
            window[3] = record
            return
        self.inner.handle(record)

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key, (start, _, dropped, last) in list(self._windows.items()):
            if now - start >= self.interval:
                del self._windows[key]
                if dropped:
                    self._summary(last, dropped)

    def _summary(self, like: logging.LogRecord, dropped: int) -> None:
        record = logging.LogRecord(like.name, logging.WARNING, __file__, 0,
                                   "suppressed %d similar messages", (dropped,), None)
        record.fields = {"similar_to": str(like.msg)[:80]}
        self.inner.handle(record)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self._sweep(float("inf"))
        self.inner.close()
        super().close()
