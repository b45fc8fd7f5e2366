"""Background work in ``splitvault serve``: a job run every N seconds on a daemon thread
(reconciliation, receipt delivery), and the ``--...-every`` flags that set N."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .._errors import ConfigurationError

__all__ = ["every", "interval"]


def every(run: Callable[[], object], seconds: float, *, thread: str, what: str,
          log: logging.Logger) -> Callable[[], None]:
    """Call ``run`` every ``seconds`` on a daemon thread until the returned stop
    function is called; it waits for a run in progress, so the caller may then close
    the server. A failing run is logged by type only (its text may hold anything) and
    tried again next time."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                run()
            except Exception as exc:
                log.warning("%s failed: %s", what, type(exc).__name__)

    worker = threading.Thread(target=loop, name=f"splitvault-{thread}", daemon=True)
    worker.start()

    def halt() -> None:
        stop.set()
        worker.join()
    return halt


def interval(value: str | float, flag: str) -> float:
    """A ``--...-every`` value: seconds, 0 for never; ``ConfigurationError`` naming
    ``flag`` otherwise."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigurationError(
            f"{flag} must be a number of seconds (0 for never), got {value!r}")
    return seconds
