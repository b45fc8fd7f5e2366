"""Full authorizations per second over HTTP on loopback, with concurrent clients.

The server runs in a subprocess (``python -m splitvault.server._serve``, plain HTTP on
127.0.0.1, default rate limit); each client is a thread with its own ``Device`` and
its own card, enrolled before the clock starts, paying with fresh idempotency keys.
One authorization is two requests (evaluate, authorize). KDF: TEST_ONLY,
so Argon2id does not hide the protocol's cost. Part of ``splitvault bench``; alone,
``python -m splitvault._bench.http`` prints JSON; ``--profile`` also runs py-spy on the
server, if installed. Clients and server share the machine's cores, as the issue asks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess  # nosec B404: starts our own server process, fixed arguments
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

import splitvault as sv
from splitvault.server import Kek

PIN = "739184"


def _start(root: Path) -> tuple[subprocess.Popen[str], str]:
    kek = root / "kek.key"
    Kek.generate().write(kek)
    proc = subprocess.Popen(  # noqa: S603  # nosec B603: our interpreter, fixed arguments
        [sys.executable, "-m", "splitvault.server._serve", "--db", str(root / "server.db"),
         "--kek-file", str(kek), "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = ""
    for line in proc.stdout or ():
        if "listening on" in line:
            url = line.split()[-1]
            break
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def _client(device: sv.Device, card_id: str, tag: str, until: float,
            latencies: list[float], errors: list[str]) -> None:
    with sv.Pin.from_digits(PIN) as pin:
        i = 0
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                device.authorize(card_id, pin, amount=1000, currency="KRW", merchant="Bench",
                                 idempotency_key=f"{tag}-{i}")
                latencies.append(time.perf_counter() - started)
            except sv.VaultError as exc:
                errors.append(exc.code)
            i += 1


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None


TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


def run(duration: float = 5.0, clients: int = 32, *, profile: Path | None = None,
        quick: bool = False, inprocess_auth_per_s: float | None = None) -> dict[str, Any]:
    """Authorizations per second over HTTP; with ``inprocess_auth_per_s`` (measured in
    the same run) also their ratio to the in-process figure."""
    if quick:
        duration, clients = min(duration, 1.0), min(clients, 8)
    root = Path(tempfile.mkdtemp(prefix="splitvault-bench-"))
    proc, url = _start(root)
    spy: subprocess.Popen[bytes] | None = None
    devices: list[sv.Device] = []
    try:
        cards = []
        card = sv.Card(pan="4111111111111111", expiry="12/30", holder="BENCH")
        with sv.Pin.from_digits(PIN) as pin:
            for n in range(clients):
                device = sv.Device.open(root / f"device{n}.db", server=url,
                                        kdf=sv.KdfProfile.TEST_ONLY, timeout=60.0)
                devices.append(device)
                cards.append(device.enroll(card, pin))
        py_spy = shutil.which("py-spy") if profile is not None else None
        if py_spy is not None:
            spy = subprocess.Popen(  # noqa: S603  # nosec B603: py-spy, fixed arguments
                [py_spy, "record", "--pid", str(proc.pid), "--duration", str(int(duration)),
                 "--format", "raw", "--output", str(profile), "--threads", "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let py-spy attach
        latencies: list[float] = []
        errors: list[str] = []
        started = time.perf_counter()
        until = started + duration
        threads = [threading.Thread(target=_client, args=(devices[n], cards[n], f"c{n}",
                                                          until, latencies, errors))
                   for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        server_cpu = _cpu_seconds(proc.pid)
    finally:
        if spy is not None:
            spy.wait(60)
        for device in devices:
            device.close()
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)
    ms = sorted(x * 1000.0 for x in latencies)
    per_s = round(len(ms) / elapsed, 1)
    return {
        "ratio_to_inprocess": (round(per_s / inprocess_auth_per_s, 3)
                               if inprocess_auth_per_s else None),
        "inprocess_auth_per_s": inprocess_auth_per_s,
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "authorizations": len(ms),
        "auth_per_s": per_s,
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1) if ms else None,
        "errors": len(errors),
        "cpus": os.cpu_count(),
        # CPU the server process used over the whole run (enrollment included), if known
        "server_cpu_s": server_cpu,
    }


def render(result: dict[str, Any]) -> str:
    ratio = result.get("ratio_to_inprocess")
    lines = [
        f"HTTP on loopback, {result['clients']} concurrent clients, TEST_ONLY KDF "
        f"(clients and server share {result['cpus']} cores)",
        f"  {result['auth_per_s']:.1f} authorizations/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, {result['errors']} errors",
    ]
    if ratio is not None:
        lines.append(f"  ratio to in-process: {ratio:.2f} "
                     f"({'meets' if ratio >= TARGET_RATIO else 'MISSES'} the "
                     f"{TARGET_RATIO} target); p99 "
                     f"{'meets' if (result['p99_ms'] or 1e9) < TARGET_P99_MS else 'MISSES'}"
                     f" the {TARGET_P99_MS:.0f} ms target")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--profile", type=Path, help="py-spy raw output file for the server")
    args = parser.parse_args()
    print(json.dumps(run(args.duration, args.clients, profile=args.profile), indent=2))


if __name__ == "__main__":
    main()
