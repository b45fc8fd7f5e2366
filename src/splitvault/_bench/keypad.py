"""Press-to-repaint latency of the SecureKeypad, reshuffle included.

Drives the keypad through Textual's pilot in a headless 80x24 app, alternating a digit
(a position key) and Backspace, so every press changes the count *and* draws and
relabels a new layout. For each press it takes the time from just before
``pilot.press`` to the moment the first frame showing the change has been composed
and encoded for the terminal.

That end point is caught by overriding ``App._display`` (private Textual API, fine for a
benchmark): it is where Textual hands each composed frame to the driver. The pilot's own
idle detection sleeps at least 2 x 20 ms per key *after* the frame, so the time until
``pilot.press`` returns is reported too, as ``harness_median_ms``, but that measures the
test harness, not the keypad. Animations are off, so the siren adds no frames. Frames
are rate-limited to 60 per second (TEXTUAL_FPS), so up to ~17 ms of any latency is
waiting for the next frame slot.

Part of ``splitvault bench``; alone: ``python -m splitvault._bench.keypad [n]``.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any

from rich.console import RenderableType
from textual._compositor import CompositorUpdate
from textual.app import ComposeResult
from textual.screen import Screen

from splitvault.keypad import POSITION_KEYS, KeypadSafeApp, SecureKeypad

TARGET_MEDIAN_MS = 16.0
"""One frame at 60 Hz."""


class _BenchApp(KeypadSafeApp[None]):
    """Hosts one keypad and timestamps the first frame after a watched change."""

    def __init__(self) -> None:
        super().__init__()
        self.watch_for: Callable[[], bool] | None = None
        self.frame_at: float | None = None

    def compose(self) -> ComposeResult:
        yield SecureKeypad(rng=random.Random(1), length=4)  # noqa: S311  # nosec B311: seeded, not secret

    def _display(self, screen: Screen[Any], renderable: RenderableType | None) -> None:
        super()._display(screen, renderable)
        if renderable is None or self.watch_for is None or not self.watch_for():
            return
        if isinstance(renderable, CompositorUpdate):
            # Headless, Textual skips encoding the frame; a terminal app pays for it.
            renderable.render_segments(self.console)
        self.frame_at = perf_counter()
        self.watch_for = None


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _measure(n: int) -> dict[str, Any]:
    app = _BenchApp()
    app.animation_level = "none"  # only the keypad's own repaints, no siren frames
    latencies: list[float] = []
    harness: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        keypad = app.query_one(SecureKeypad)
        await pilot.pause()
        for press in range(n):
            if press % 2 == 0:
                key = POSITION_KEYS[keypad.digit_layout.index(press % 10)]
            else:
                key = "backspace"
            layout = keypad.digit_layout
            app.frame_at = None
            app.watch_for = lambda layout=layout: keypad.digit_layout != layout
            started = perf_counter()
            await pilot.press(key)
            harness.append((perf_counter() - started) * 1000)
            if app.frame_at is None:
                await pilot.pause()  # the frame slot came after the pilot's idle wait
            if app.frame_at is None:
                raise RuntimeError(f"press {press} ({key!r}) produced no new frame")
            latencies.append((app.frame_at - started) * 1000)
    median = statistics.median(latencies)
    return {
        "median_ms": round(median, 2),
        "p95_ms": round(_percentile(latencies, 0.95), 2),
        "n": n,
        "min_ms": round(min(latencies), 2),
        "max_ms": round(max(latencies), 2),
        "harness_median_ms": round(statistics.median(harness), 2),
        "target_median_ms": TARGET_MEDIAN_MS,
        "meets_target": median < TARGET_MEDIAN_MS,
    }


def run(n: int = 200, *, quick: bool = False) -> dict[str, Any]:
    """Measure ``n`` presses (20 with ``quick``); median and 95th percentile in ms."""
    n = 20 if quick else n
    if n < 1:
        raise ValueError("n must be at least 1")
    return asyncio.run(_measure(n))


def render(result: dict[str, Any]) -> str:
    verdict = "meets" if result["meets_target"] else "MISSES"
    return (
        "SecureKeypad press-to-repaint (reshuffle included, through the pilot)\n"
        f"  median {result['median_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms over "
        f"{result['n']} presses: {verdict} the {TARGET_MEDIAN_MS:.0f} ms target\n"
        f"  (the pilot's own idle wait per press, not counted: "
        f"{result['harness_median_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 200), indent=2))
