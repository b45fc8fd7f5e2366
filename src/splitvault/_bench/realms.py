"""Three realms at threshold 2 against the single server, over HTTP on loopback (issue 13).

Every server is a real ``serve`` process (SQLite, plain HTTP on 127.0.0.1, no rate
limit), started as ``http.py``'s is (``_load.serve``): first the single server (role
``all``), then three ``--role realm`` and one ``--role gateway`` following a deployment
file written from their keys once they are up, as ``splitvault deployment init`` does.
The same number of clients (``_load.clients``, TEST_ONLY KDF) drive each in turn.

1. **Closed loop**, single server then realms: authorizations per second, p50, p99,
   CPU per authorization of every server process and of the clients; the ratio of the
   two rates (target >= 0.5). A single-server payment is two sequential round trips
   (evaluate, authorize); a realm payment is three: ``t`` evaluations in parallel, ``t``
   releases in parallel, then the gateway, five requests in all.
2. **One client alone** (a separate probe device, :data:`PROBE_PAYMENTS` payments
   back to back), to show where an unloaded payment's time goes: each step's wall
   time (a parallel step ends with its slower realm) and what is left for the device.
3. **One realm down**: realm-1, one of the two every device asks first, is killed
   (SIGKILL). The first payment of the probe and then of every client at once is
   timed apart (each device learns that the realm is down and asks the spare), then the
   probe alone and the closed loop again.

Part of ``splitvault bench``; alone, ``python -m splitvault._bench.realms`` prints JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import splitvault as sv
from splitvault._deployment import Deployment, Endpoint
from splitvault.device import RealmClient
from splitvault.hazmat import HttpGateway, HttpRealm, HttpShareService

from ._load import (
    PIN,
    Clients,
    Run,
    Server,
    all_at_once,
    clients,
    closed_loop,
    cpu_of,
    percentiles,
    serve,
)

__all__ = ["TARGET_RATIO", "render", "run"]

TARGET_RATIO = 0.5
"""Realm throughput / single-server throughput, measured in the same run (issue 13)."""
REALMS = 3
"""Realms in the benchmark's deployment: the issue's default n."""
THRESHOLD = 2
"""Realms a payment needs: the issue's default t."""
KILLED = 0
"""The realm killed for the one-down figures: realm-1, which every device asks first
(realms in deployment order, those known to be down last), so that each device must
learn it is down and ask the spare."""
PROBE_PAYMENTS = 20
"""Payments of the probe in each alone phase: enough for a median, and below the ~45
payments after which a spare realm's catch-up no longer fits in one request body
(every payment's re-split leaves the device one delta to carry to each realm it did
not ask; measured at d6c0027: 45 payments paid around a killed realm, 50 did not)."""
TIMEOUT = 60.0
"""Every device's per-call timeout, as ``_load.clients``'s: a killed realm refuses the
connection at once, so the timeout never runs out here."""
_PAYMENT: dict[str, Any] = {"amount": 1000, "currency": "KRW", "merchant": "Bench"}


@dataclasses.dataclass
class _Rig:
    """The running realms and gateway, and the deployment file made from their keys."""

    servers: dict[str, Server]
    deployment: Deployment


@contextmanager
def _realms(root: Path) -> Iterator[_Rig]:
    """Three realms and a gateway, each its own ``serve`` process, database and KEK,
    started at once (each start waits for its process to answer)."""
    path = root / "deployment.json"
    names = [*(f"realm-{i}" for i in range(1, REALMS + 1)), "gateway-1"]
    starting = {}
    for name in names:
        (root / name).mkdir()
        role = "gateway" if name.startswith("gateway") else "realm"
        starting[name] = serve(root / name, args=("--role", role, "--deployment", str(path)))
    with ExitStack() as stack, ThreadPoolExecutor(len(names)) as pool:
        entered = {name: pool.submit(cm.__enter__) for name, cm in starting.items()}
        for name, future in entered.items():
            if future.exception() is None:  # waits; a started one is stopped on the way out
                stack.push(starting[name].__exit__)
        servers = {name: future.result() for name, future in entered.items()}
        _deployment_of(servers).save(path)
        yield _Rig(servers, Deployment.load(path))


def _deployment_of(servers: dict[str, Server]) -> Deployment:
    realms, gateways = [], []
    for name, server in servers.items():
        if name.startswith("gateway"):
            gateway = HttpGateway(server.url)
            try:
                gateways.append(Endpoint(name, server.url, gateway.gateway_info().gateway_key))
            finally:
                gateway.close_transport()
        else:
            realm = HttpRealm(server.url)
            try:
                realms.append(Endpoint(name, server.url, realm.realm_info().realm_key))
            finally:
                realm.close_transport()
    return Deployment(tuple(realms), tuple(gateways), THRESHOLD)


class _Timed:
    """A service whose every method call is timed into ``spans`` as (name, start, end)."""

    def __init__(self, inner: object, spans: list[tuple[str, float, float]]) -> None:
        self._inner, self._spans = inner, spans

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if not callable(method) or name == "close_transport":
            return method

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            result = method(*args, **kwargs)
            self._spans.append((name, began, time.perf_counter()))
            return result
        return timed


@dataclasses.dataclass
class _Probe:
    """One more device and card whose every server call is timed, paying alone."""

    device: sv.Device
    card: str
    spans: list[tuple[str, float, float]]
    transports: list[HttpRealm | HttpGateway]
    keys: Iterator[int] = dataclasses.field(default_factory=lambda: iter(range(10**9)))

    def pay(self) -> tuple[float, dict[str, float]]:
        """One payment: its latency and each step's wall time, in milliseconds (a
        refusal raises its ``VaultError``)."""
        self.spans.clear()
        began = time.perf_counter()
        with sv.Pin.from_digits(PIN) as pin:
            self.device.authorize(self.card, pin, idempotency_key=f"probe{next(self.keys)}",
                                  **_PAYMENT)
        total = time.perf_counter() - began
        steps: dict[str, float] = {}
        for name in dict.fromkeys(name for name, _, _ in self.spans):
            mine = [(s, e) for n, s, e in self.spans if n == name]
            steps[name] = max(e for _, e in mine) - min(s for s, _ in mine)
        return total * 1e3, {k: v * 1e3 for k, v in steps.items()}


@contextmanager
def _probe(root: Path, server: str | Deployment) -> Iterator[_Probe]:
    spans: list[tuple[str, float, float]] = []
    transports: list[HttpRealm | HttpGateway] = []
    service: object
    if isinstance(server, str):
        service = _Timed(HttpShareService(server, timeout=TIMEOUT), spans)
    else:
        realms = {r.key: HttpRealm(r.url, timeout=TIMEOUT) for r in server.realms}
        gateways = {g.key: HttpGateway(g.url, timeout=TIMEOUT) for g in server.gateways}
        transports += [*realms.values(), *gateways.values()]
        service = RealmClient(server, timeout=TIMEOUT,
                              realms={k: _Timed(v, spans) for k, v in realms.items()},
                              gateways={k: _Timed(v, spans) for k, v in gateways.items()})
    device = sv.Device.open(root / "probe.db", server=service,
                            kdf=sv.KdfProfile.TEST_ONLY, timeout=TIMEOUT)
    try:
        with sv.Pin.from_digits(PIN) as pin:
            card = device.enroll(sv.Card(pan="4111111111111111", expiry="12/30",
                                         holder="PROBE"), pin)
        yield _Probe(device, card, spans, transports)
    finally:
        device.close()
        for transport in transports:
            transport.close_transport()


def _alone(probe: _Probe, payments: int) -> dict[str, Any]:
    """The probe pays ``payments`` times back to back: p50 of the total and of each
    step; a refused payment is counted by its error code, not raised."""
    totals: list[float] = []
    steps: dict[str, list[float]] = {}
    errors: list[str] = []
    for _ in range(payments):
        try:
            total, step = probe.pay()
        except sv.VaultError as exc:
            errors.append(exc.code)
            continue
        totals.append(total)
        for name, ms in step.items():
            steps.setdefault(name, []).append(ms)
    p50 = {name: round(statistics.median(v), 2) for name, v in steps.items()}
    median = round(statistics.median(totals), 2) if totals else None
    return {"payments": len(totals), "p50_ms": median, "steps_p50_ms": p50,
            # What no server call covers: the device's crypto, its store, the threads.
            "device_p50_ms": (round(median - sum(p50.values()), 2)
                              if median is not None else None),
            "errors": len(errors), "error_codes": sorted(set(errors))}


def _loaded(group: Clients, duration: float, pids: dict[str, int]) -> dict[str, Any]:
    """A closed loop with the CPU every server process and the clients used in it."""
    before = {name: cpu_of([pid]) for name, pid in pids.items()}
    mine = time.process_time()
    run: Run = closed_loop(group, duration)
    clients_cpu = time.process_time() - mine
    done = max(1, len(run.latencies))
    servers = {name: round((cpu_of([pid]) - before[name]) * 1e3 / done, 2)
               for name, pid in pids.items()}
    return {"duration_s": round(run.elapsed, 2), "authorizations": len(run.latencies),
            "auth_per_s": run.per_s, **percentiles(run.latencies), "errors": len(run.errors),
            "server_cpu_ms_per_auth": {**servers, "total": round(sum(servers.values()), 2)},
            "clients_cpu_ms_per_auth": round(clients_cpu * 1e3 / done, 2)}


def _first_payments(group: Clients) -> dict[str, Any]:
    """Every client pays once, all at once: the payment in which each learns."""
    run = all_at_once(group)
    return {"payments": len(run.latencies), **percentiles(run.latencies),
            "errors": len(run.errors)}


def _single(root: Path, count: int, duration: float, alone: int) -> dict[str, Any]:
    root.mkdir()
    with serve(root) as server, clients(root, server.url, count) as group, \
            _probe(root, server.url) as probe:
        closed_loop(group, min(0.5, duration))  # warm: connections, caches, WAL
        loaded = _loaded(group, duration, {"server": server.proc.pid})
        return {**loaded, "alone": _alone(probe, alone)}


def _with_realms(root: Path, count: int, duration: float,
                 alone: int) -> tuple[dict[str, Any], dict[str, Any]]:
    root.mkdir()
    with _realms(root) as rig, clients(root, rig.deployment, count) as group, \
            _probe(root, rig.deployment) as probe:
        pids = {name: s.proc.pid for name, s in rig.servers.items()}
        closed_loop(group, min(0.5, duration))
        up = {**_loaded(group, duration, pids), "alone": _alone(probe, alone)}
        killed = rig.deployment.realms[KILLED].name
        victim = rig.servers[killed].proc
        victim.kill()
        victim.wait(10)
        del pids[killed]
        first_alone = _alone(probe, 1)
        first = _first_payments(group)
        down = {"killed": killed, "first_payment_alone_ms": first_alone["p50_ms"],
                "first_payment_alone_errors": first_alone["error_codes"],
                "first_payments": first, "alone": _alone(probe, alone),
                **_loaded(group, duration, pids)}
        return up, down


def run(duration: float = 5.0, clients_count: int = 32, *,
        quick: bool = False) -> dict[str, Any]:
    """The single server, then three realms and a gateway, then the same with one
    realm killed: the same load on each."""
    if quick:
        duration, clients_count = min(duration, 1.0), min(clients_count, 4)
    alone = 10 if quick else PROBE_PAYMENTS
    root = Path(tempfile.mkdtemp(prefix="splitvault-bench-realms-"))
    started = time.perf_counter()
    try:
        single = _single(root / "single", clients_count, duration, alone)
        up, down = _with_realms(root / "realms", clients_count, duration, alone)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = round(up["auth_per_s"] / single["auth_per_s"], 3) if single["auth_per_s"] else None
    return {
        "ratio_to_single": ratio,
        "realms_count": REALMS, "threshold": THRESHOLD, "clients": clients_count,
        "single": single, "realms": up, "one_down": down,
        "cpus": os.cpu_count(), "wall_s": round(time.perf_counter() - started, 1),
        "targets": {"ratio_min": TARGET_RATIO,
                    "ratio_met": ratio is not None and ratio >= TARGET_RATIO},
    }


def render(result: dict[str, Any]) -> str:
    single, up, down = result["single"], result["realms"], result["one_down"]
    first, t = down["first_payments"], result["targets"]
    lines = [
        f"Realms: {result['realms_count']} realms at threshold {result['threshold']} and a "
        f"gateway against the single server, HTTP on loopback, {result['clients']} "
        f"clients, TEST_ONLY KDF, SQLite (all on {result['cpus']} cores)",
        _loaded_line("single server", single),
        _loaded_line("3 realms, t=2", up),
        f"  ratio realms / single: {result['ratio_to_single']}   target >= "
        f"{t['ratio_min']}: {'met' if t['ratio_met'] else 'NOT MET'}",
        _loaded_line(f"{down['killed']} killed", down),
        f"  {down['killed']} killed, first payment of each device (it learns, asks the "
        f"spare): alone {down['first_payment_alone_ms']} ms"
        f"{_refused(down['first_payment_alone_errors'])}; all {first['payments']} at "
        f"once p50 {first['p50_ms']} ms, max {first['max_ms']} ms, {first['errors']} errors",
        "  one client alone, p50 (per step: wall time; a parallel step ends with its "
        "slower server):",
    ]
    for label, part in (("single", single), ("realms", up), ("one down", down)):
        steps = ", ".join(f"{k} {v}" for k, v in part["alone"]["steps_p50_ms"].items())
        lines.append(f"    {label}: {part['alone']['p50_ms']} ms = {steps}, device "
                     f"{part['alone']['device_p50_ms']}, {part['alone']['errors']} errors"
                     f"{_refused(part['alone']['error_codes'])}")
    return "\n".join(lines)


def _refused(codes: list[str]) -> str:
    return f" (refused: {', '.join(codes)})" if codes else ""


def _loaded_line(label: str, part: dict[str, Any]) -> str:
    cpu = ", ".join(f"{k} {v}" for k, v in part["server_cpu_ms_per_auth"].items())
    return (f"  {label}: {part['auth_per_s']:.1f} authorizations/s, p50 {part['p50_ms']} ms, "
            f"p99 {part['p99_ms']} ms, {part['errors']} errors; CPU ms per authorization: "
            f"{cpu}; clients {part['clients_cpu_ms_per_auth']}")


def main(argv: list[str] | None = None,
         out: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table", action="store_true", help="a table instead of JSON")
    args = parser.parse_args(argv)
    result = run(args.duration, args.clients, quick=args.quick)
    out(render(result) if args.table else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
