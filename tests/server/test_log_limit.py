"""The log limiter: N lines of a kind per interval, then one summary line; served
requests are never limited."""

from __future__ import annotations

import logging

from splitvault.server._ratelimit import LimitedLogHandler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def record(msg: str, *args: object, name: str = "uvicorn.error",
           fields: dict[str, object] | None = None) -> logging.LogRecord:
    rec = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)
    if fields is not None:
        rec.fields = fields
    return rec


def test_a_flood_becomes_n_lines_and_one_summary() -> None:
    """1000 lines of one kind in a window: 5 pass, then "suppressed 995 similar"."""
    clock, inner = Clock(), Collect()
    handler = LimitedLogHandler(inner, lines=5, interval=10.0, clock=clock)
    for i in range(1000):
        handler.handle(record("connection closed: %s timeout", f"h{i % 3}"))
    assert len(inner.lines) == 5
    clock.now = 11.0
    handler.handle(record("something else"))
    assert inner.lines[5:] == ["suppressed 995 similar messages", "something else"]


def test_kinds_are_limited_separately_and_served_requests_never() -> None:
    clock, inner = Clock(), Collect()
    handler = LimitedLogHandler(inner, lines=2, interval=10.0, clock=clock)
    for _ in range(10):
        handler.handle(record("a"))
        handler.handle(record("b"))
        handler.handle(record("request", name="splitvault.http",
                              fields={"status": 200, "error": None}))
    assert inner.lines.count("a") == 2 and inner.lines.count("b") == 2
    assert inner.lines.count("request") == 10


def test_close_flushes_the_pending_summary() -> None:
    clock, inner = Clock(), Collect()
    handler = LimitedLogHandler(inner, lines=1, interval=10.0, clock=clock)
    for _ in range(4):
        handler.handle(record("x"))
    handler.close()
    assert inner.lines == ["x", "suppressed 3 similar messages"]
