"""Worker processes for ``splitvault serve --workers N``, and each worker's refresher.

The supervisor forks N workers after binding the listening socket (the kernel spreads
connections over the processes accepting on it), then waits. A worker that dies
(kill -9, an out-of-memory kill) is replaced: the store, not the process, holds every
guess count, lease and nonce, so a new worker simply carries on, and a payment the
dead one was charging is settled by its lease (a retry waits for it, then calls it in
doubt). SIGTERM or SIGINT to the supervisor is passed to every worker, each of which
shuts down in order (``_serve.py``); the supervisor exits when all have.

POSIX only (``os.fork``); elsewhere ``--workers`` must be 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from ._keyring import REFRESH_SECONDS
from ._server import ShareServer

__all__ = ["MAX_WORKERS", "Refresher", "supervise"]

MAX_WORKERS = 64
"""Far above what one host's cores can use; a typo like 800 is refused."""
RESPAWN_MIN_SECONDS = 1.0
"""A worker that keeps dying at once is restarted at most this often, so a broken
configuration does not become a fork loop."""

log = logging.getLogger("splitvault.serve")


class Refresher:
    """Calls ``server.refresh()`` every :data:`REFRESH_SECONDS` in a daemon thread: an
    idle worker still reports its keys (a key rotation waits on that) and follows the
    primary key. A failure (database briefly unreachable) is logged and retried."""

    def __init__(self, server: ShareServer, every: float = REFRESH_SECONDS) -> None:
        self._server = server
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="splitvault-refresh",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._every):
            try:
                self._server.refresh()
            except Exception as exc:
                if not failing:  # one line per outage, not one per tick
                    log.warning("refresh failed: %s", type(exc).__name__)
                failing = True
            else:
                if failing:
                    log.info("refresh recovered")
                failing = False


def supervise(workers: int, serve_one: Callable[[], int]) -> int:
    """Run ``serve_one`` in ``workers`` forked processes until told to stop; 0 if every
    worker shut down cleanly."""
    if not hasattr(os, "fork"):
        print("splitvault serve: error: --workers > 1 needs a POSIX system", file=sys.stderr)
        return 2
    stopping = threading.Event()
    children: dict[int, int] = {}  # pid -> slot

    def spawn(slot: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            code = 1
            try:
                code = serve_one()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = slot

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    worst = 0
    try:
        for slot in range(workers):
            spawn(slot)
        last_spawn = time.monotonic()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid not in children:
                continue
            slot = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping.is_set():
                worst = max(worst, 0 if code == 0 else 1)
                continue
            log.warning("worker %d (pid %d) exited with %d; starting a new one",
                        slot, pid, code)
            wait = RESPAWN_MIN_SECONDS - (time.monotonic() - last_spawn)
            if wait > 0:
                time.sleep(wait)
            if not stopping.is_set():
                spawn(slot)
                last_spawn = time.monotonic()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return worst
