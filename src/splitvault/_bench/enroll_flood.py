"""Payment latency while strangers flood enrollment (issue 9, item 4).

``enroll_begin`` needs only a key the caller just made, so strangers can send as many
as they like. Before the caps, each one left a pending row for 10 minutes and the
sweep scanned them all inside the writer lock: at 100 k pending rows a few stranger
connections raised an owner's payment median from 7 ms to 181 ms. Now pending rows
are capped per address and in total (checked under one gate row) and the sweep uses
an index; this measures what an owner sees meanwhile.

On the HTTP benchmark's server (``http.py``), right after its open loop: the same
open loop of payments (same rate, same clients, latency from the scheduled arrival),
while a *stranger process* sends ``enroll_begin`` requests at :data:`STRANGER_RATE`
per second from :data:`STRANGER_THREADS` connections, each under a fresh key. From
loopback they are one address: the first :data:`~splitvault.ServerProfile`
``pending_per_origin`` make pending rows, every later one is refused by the store
(429), which still costs a write transaction on the gate row, the cost that matters.
The stranger runs in its own process so that its CPU is the machine's, not the
owners' client threads' GIL.

Alone, ``python -m splitvault._bench.enroll_flood --url URL --rate R --seconds S`` is
the stranger: it prints one JSON object of answer counts by HTTP status.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import subprocess  # nosec B404: our interpreter, fixed arguments
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ._load import Clients, open_loop, percentiles

__all__ = ["STRANGER_RATE", "STRANGER_THREADS", "TARGET_P50_RATIO", "run"]

STRANGER_RATE = 50.0
"""Enrollment requests per second the stranger sends: the default per-address rate
limit (``serve --rate-limit``, 50/s), all one address gets. (At 200/s, four such
addresses, the owners' p50 rose 2-11x on the 2-core development machine: each refused
``enroll_begin`` still costs its signature check and OPRF evaluation before the store
refuses it, README, Performance.)"""
STRANGER_THREADS = 4
"""Connections the strangers use."""
TARGET_P50_RATIO = 2.0
"""Owner payment p50 under the flood / without it, at most (the bug was 26x)."""


def run(group: Clients, url: str, rate: float, duration: float, database: Path,
        alone: dict[str, float | None]) -> dict[str, Any]:
    """The open loop at ``rate`` payments/s for ``duration`` s under the flood;
    ``alone``: the percentiles of the same open loop without it (same run)."""
    proc = subprocess.Popen(  # noqa: S603  # nosec B603: our interpreter, fixed arguments
        [sys.executable, "-m", "splitvault._bench.enroll_flood", "--url", url, "--rate",
         str(STRANGER_RATE), "--seconds", str(duration + 0.5)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.25)  # the strangers' connections up before the first payment
        flooded = open_loop(group, rate, duration)
        out, _ = proc.communicate(timeout=duration + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    answers = {str(k): int(v) for k, v in json.loads(out or "{}").items()}
    pct = percentiles(flooded.latencies)
    p50, base = pct["p50_ms"], alone.get("p50_ms")
    ratio = round(p50 / base, 2) if p50 is not None and base else None
    return {
        "rate_per_s": rate,
        "scheduled": max(1, int(rate * duration)),
        "completed": len(flooded.latencies),
        "errors": len(flooded.errors),
        **pct,
        "alone_p50_ms": alone.get("p50_ms"),
        "p50_ratio_to_alone": ratio,
        "stranger_rate_per_s": STRANGER_RATE,
        "stranger_answers": answers,
        "pending_rows_after": _pending(database),
        "targets": {"p50_ratio_max": TARGET_P50_RATIO,
                    "p50_ratio_met": ratio is not None and ratio <= TARGET_P50_RATIO},
    }


def render(flood: dict[str, Any]) -> str:
    answers = ", ".join(f"{n} x {code}" for code, n in sorted(flood["stranger_answers"].items()))
    met = "met" if flood["targets"]["p50_ratio_met"] else "NOT MET"
    return (f"  open loop while strangers send {flood['stranger_rate_per_s']:g} enroll_begin/s "
            f"({answers or 'no answers'}; {flood['pending_rows_after']} pending rows after): "
            f"p50 {flood['p50_ms']} ms (alone {flood['alone_p50_ms']} ms, x"
            f"{flood['p50_ratio_to_alone']}), p99 {flood['p99_ms']} ms, "
            f"{flood['completed']}/{flood['scheduled']} done   "
            f"target p50 <= {flood['targets']['p50_ratio_max']:g}x alone: {met}")


def _pending(database: Path) -> int | None:
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT count(*) FROM cards WHERE state = 'pending'").fetchone()
        return int(row[0])
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _stranger(url: str, rate: float, seconds: float, threads: int) -> Counter[str]:
    """Send ``enroll_begin`` at ``rate``/s for ``seconds`` s, each under a fresh key,
    arrivals on a fixed schedule per thread; the answers by HTTP status."""
    import httpx

    from .._attack.card_ids import enroll_begin
    from .._wire import ENROLL_BEGIN, dumps

    answers: Counter[str] = Counter()
    lock = threading.Lock()
    start = time.perf_counter() + 0.1
    per_thread = rate / threads

    def send(n: int) -> None:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            i = 0
            while True:
                due = start + (i * threads + n) / (per_thread * threads)
                if due - start > seconds:
                    return
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                body = dumps(ENROLL_BEGIN, enroll_begin(None, secrets.token_bytes(32)))
                try:
                    code = str(client.post("/v1/enroll/begin", content=body, headers={
                        "content-type": "application/json"}).status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with lock:
                    answers[code] += 1
                i += 1

    workers = [threading.Thread(target=send, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description="the stranger: flood enroll_begin")
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=STRANGER_RATE)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=STRANGER_THREADS)
    args = parser.parse_args()
    print(json.dumps(_stranger(args.url, args.rate, args.seconds, args.threads)))


if __name__ == "__main__":
    main()
