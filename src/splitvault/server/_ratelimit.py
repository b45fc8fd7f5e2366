"""Per-client rate limiting: a token bucket per client address, in memory.

This bounds how much work one address can make the server do (OPRF evaluations,
fsyncs, Argon2-free but not free signature checks). It is not what protects the PIN:
the per-card guess limit does that, whatever the address. The client address is the
TCP peer; behind a reverse proxy every client shares the proxy's address, so limit
there instead (or raise the limit here).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE", "RateLimiter"]

DEFAULT_RATE = 1000.0
"""Requests per second per address. Generous on purpose: the HTTP benchmark runs 32
clients from 127.0.0.1, three requests per payment, and must not be throttled."""
DEFAULT_BURST = 2000.0
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
