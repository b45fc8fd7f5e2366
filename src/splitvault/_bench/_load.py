"""Load against a ``splitvault serve`` subprocess: start it, enroll clients, drive them.

Shared by the HTTP benchmark (SQLite) and the PostgreSQL one. Each client is a thread
with its own ``Device`` and card, enrolled before any clock starts, paying with fresh
idempotency keys; the KDF is TEST_ONLY so Argon2id does not hide the protocol's cost.

Two ways to drive them:

* **closed loop** (:func:`closed_loop`): every client pays again as soon as its last
  payment returned. It finds the throughput; its latencies are those of a saturated
  server (by Little's law, clients / throughput).
* **open loop** (:func:`open_loop`): payments are *scheduled* at fixed arrival times,
  ``rate`` per second, whatever the server does; a free client takes the next one when
  it is due, and latency runs from the scheduled time, not from when a client got to
  it. A slow reply then delays the arrivals behind it and that wait is counted, so the
  tail is not hidden by the load generator backing off (no coordinated omission).
"""

from __future__ import annotations

import gc
import itertools
import os
import subprocess  # nosec B404: starts our own server process, fixed arguments
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import splitvault as sv
from splitvault.server import Kek

__all__ = [
    "Clients",
    "Server",
    "clients",
    "closed_loop",
    "open_loop",
    "percentiles",
    "serve",
]

PIN = "739184"
_PAYMENT: dict[str, Any] = {"amount": 1000, "currency": "KRW", "merchant": "Bench"}


@dataclass
class Server:
    """A running ``serve`` process (the supervisor, with ``--workers`` > 1)."""

    proc: subprocess.Popen[str]
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and every process it forked (its workers),
        from /proc: what the server side burned, whatever the worker count."""
        return sum(_cpu(pid) for pid in (self.proc.pid, *_children(self.proc.pid)))


@contextmanager
def serve(root: Path, *, db: str | None = None, workers: int = 1,
          args: Sequence[str] = ()) -> Iterator[Server]:
    """``splitvault serve`` on plain HTTP on 127.0.0.1, any free port; stopped after.
    ``args`` go on its command line too (``--role realm --deployment FILE``)."""
    kek = root / "kek.key"
    Kek.generate().write(kek)
    proc = subprocess.Popen(  # noqa: S603  # nosec B603: our interpreter, fixed arguments
        [sys.executable, "-m", "splitvault.server._serve", "--db",
         db if db is not None else str(root / "server.db"), "--kek-file", str(kek),
         "--port", "0", "--log-level", "warning", "--workers", str(workers),
         "--rate-limit", "0",  # every client is 127.0.0.1: one bucket would throttle all
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield Server(proc, _wait_ready(proc))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    url = ""
    for line in proc.stdout or ():
        if "listening on" in line:
            url = line.split()[-1]
            break
    deadline = time.monotonic() + 30
    while url and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the benchmark's server did not start")


@dataclass
class Clients:
    devices: list[sv.Device]
    cards: list[str]
    pin: sv.Pin
    _keys: Iterator[int] = field(default_factory=itertools.count)

    def pay(self, n: int) -> None:
        """One authorization by client ``n`` under a fresh idempotency key."""
        self.devices[n].authorize(self.cards[n], self.pin, idempotency_key=f"k{next(self._keys)}",
                                  **_PAYMENT)


@contextmanager
def clients(root: Path, url: str | sv.Deployment, count: int) -> Iterator[Clients]:
    """``count`` devices with one enrolled card each, talking to ``url`` (one server)
    or to a t-of-n deployment's realms and gateway."""
    card = sv.Card(pan="4111111111111111", expiry="12/30", holder="BENCH")
    devices: list[sv.Device] = []
    with sv.Pin.from_digits(PIN) as pin:
        try:
            cards = []
            for n in range(count):
                device = sv.Device.open(root / f"device{n}.db", server=url,
                                        kdf=sv.KdfProfile.TEST_ONLY, timeout=60.0)
                devices.append(device)
                cards.append(device.enroll(card, pin))
            # The load generator's own full collections would otherwise walk every
            # long-lived object (the devices, their HTTP clients, the modules and, in
            # `splitvault bench`, the earlier parts' leftovers) with all client threads
            # stopped: 17-19 ms each on the 2-core machine, seen as the open loop's
            # maximum. Frozen, a collection walks only what the load itself allocates
            # (about 1 ms): the server's latency, not the generator's pauses.
            gc.collect()
            gc.freeze()
            try:
                yield Clients(devices, cards, pin)
            finally:
                gc.unfreeze()
        finally:
            for device in devices:
                device.close()


@dataclass
class Run:
    """What one load run saw: latencies in seconds, error codes, wall time."""

    latencies: list[float]
    errors: list[str]
    elapsed: float

    @property
    def per_s(self) -> float:
        return round(len(self.latencies) / self.elapsed, 1)


def closed_loop(group: Clients, duration: float) -> Run:
    """Every client pays back to back for ``duration`` seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    until = started + duration

    def client(n: int) -> None:
        while time.perf_counter() < until:
            _timed_pay(group, n, latencies, errors)

    _all_threads(client, len(group.devices))
    return Run(latencies, errors, time.perf_counter() - started)


def all_at_once(group: Clients) -> Run:
    """Every client pays once, all at the same time."""
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    _all_threads(lambda n: _timed_pay(group, n, latencies, errors), len(group.devices))
    return Run(latencies, errors, time.perf_counter() - started)


def _timed_pay(group: Clients, n: int, latencies: list[float], errors: list[str]) -> None:
    """Client ``n`` pays once: its latency, or its error's code."""
    began = time.perf_counter()
    try:
        group.pay(n)
        latencies.append(time.perf_counter() - began)
    except sv.VaultError as exc:
        errors.append(exc.code)


def open_loop(group: Clients, rate: float, duration: float) -> Run:
    """``rate * duration`` payments scheduled every ``1 / rate`` s; each one's latency
    is measured from its scheduled arrival time (see the module docstring)."""
    count = max(1, int(rate * duration))
    first = time.perf_counter() + 0.1
    due = [first + i / rate for i in range(count)]
    taken = iter(range(count))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def client(n: int) -> None:
        while True:
            with lock:
                i = next(taken, None)
            if i is None:
                return
            wait = due[i] - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                group.pay(n)
                latencies.append(time.perf_counter() - due[i])
            except sv.VaultError as exc:
                errors.append(exc.code)

    _all_threads(client, len(group.devices))
    return Run(latencies, errors, time.perf_counter() - first)


def _all_threads(target: Any, count: int) -> None:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def percentiles(latencies: list[float]) -> dict[str, float | None]:
    """p50, p99 and max in milliseconds (nearest rank), None when nothing completed."""
    ms = sorted(x * 1000.0 for x in latencies)
    if not ms:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}

    def rank(q: float) -> float:
        return round(ms[min(len(ms) - 1, max(0, int(len(ms) * q + 0.5) - 1))], 1)
    return {"p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": round(ms[-1], 1)}


def _cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone or not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a ``serve --workers`` supervisor's workers)."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def cpu_of(pids: list[int]) -> float:
    """Summed user + system CPU seconds of ``pids``."""
    return sum(_cpu(pid) for pid in pids)
