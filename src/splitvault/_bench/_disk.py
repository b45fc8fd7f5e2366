"""Let the disk settle before a timed loop.

On a shared machine other work leaves dirty pages in the page cache (a package install,
another suite's files, an earlier part of this benchmark); the kernel writes them back
about 30 s later (``vm.dirty_expire_centisecs``), and while it does every fsync waits
behind that writeback. On the 2-core development machine, 1.5 GB written just before
the HTTP benchmark took the server's fsyncs from 0.3 ms to 8-19 ms, the closed loop
from ~175 to 94 authorizations/s and the open loop's p99 from 11-20 ms to 98-133 ms.
That is someone else's backlog, not what the protocol costs, so each timed loop starts
after an ``os.sync()``; how long it took is reported, as the sign of such a backlog.
What others write *during* a loop still counts, as it would in production.
"""

from __future__ import annotations

import os
import time

__all__ = ["settle"]


def settle() -> float:
    """Write back every dirty page on the machine (``os.sync``); the seconds it took."""
    began = time.perf_counter()
    os.sync()
    return round(time.perf_counter() - began, 3)
