"""``splitvault serve``: the share server over HTTP(S).

``cli.py`` calls :func:`add_arguments` and :func:`run`; ``python -m
splitvault.server._serve`` does the same on its own. Every flag can also come from
the environment (``SPLITVAULT_DB``, ``SPLITVAULT_KEK_FILE``, ...); a flag wins.

``--workers N`` forks N worker processes that share one listening socket, under a
supervisor that restarts one that dies (``_workers.py``). Each is a whole server:
nothing they must agree on (guess counts, ledger leases, nonces, the primary key)
lives in a process, so workers on one host, or ``serve`` processes on several hosts
over one PostgreSQL database, act as one service. SQLite serializes writers across
processes with its file locks, so ``--workers N`` is safe on one host with it too.
In each worker the event loop takes the concurrency; ``ShareServer`` calls run in a
thread pool, and a background thread refreshes its view of the store (primary key,
heartbeat, sweep of expired rows).

Shutdown (SIGTERM or SIGINT), in this order, because ``ShareServer.close()`` wipes
the keys and a value wrapped after that would be sealed under zeros:

1. refuse new work: every request that arrives from now on gets 503
   ``shutting_down`` (the listener stays open meanwhile, so a client or load balancer
   gets that clear answer rather than a refused connection);
2. drain: wait (up to ``GRACEFUL_SECONDS``) for the requests admitted before; then
   uvicorn stops accepting and closes idle connections;
3. wait for every ``ShareServer`` call still running in a worker thread, and only then
   close the ShareServer. If one is still running after ``STUCK_SECONDS``, the process
   exits (status 1) *without* closing it: the keys die with the process, and no call
   ever runs on wiped keys.

A second signal skips the rest of the drain (step 2), never step 3. A kill -9 at any
point leaves the database consistent: every change is one transaction, committed
before its reply is sent.

Slow clients: connection caps, header, body and request deadlines and a bound on
requests in flight come from :class:`~splitvault.server._limits.ServeLimits`.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import uvicorn

from .._errors import VaultError
from .._profiles import ServerProfile
from ._access import ServeGuard, configure_logging
from ._devtls import dev_certificate
from ._http import ROLES, create_app
from ._kek import Kek
from ._limits import DEFAULT as DEFAULT_LIMITS
from ._limits import ServeLimits, guarded_protocol
from ._outbox import DELIVER_EVERY, load_sink
from ._periodic import every as run_every
from ._periodic import interval
from ._ratelimit import DEFAULT_BURST, DEFAULT_RATE, RateLimiter
from ._reconcile import RECONCILE_EVERY
from ._risk import RiskRules
from ._server import ShareServer
from ._simulated import simulated_acquirer
from ._workers import MAX_WORKERS, Refresher, supervise

__all__ = ["add_arguments", "run"]

GRACEFUL_SECONDS = 10.0
"""How long shutdown waits for in-flight requests: far above a request's normal
duration, well below the 90 s a service manager waits before SIGKILL."""
STUCK_SECONDS = 60.0
"""How long shutdown waits for ShareServer calls still running after the drain
before exiting without closing it (never closing it under a running call)."""
log = logging.getLogger("splitvault.serve")
reconcile_log = logging.getLogger("splitvault.reconcile")
outbox_log = logging.getLogger("splitvault.outbox")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SPLITVAULT_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``serve``; each one defaults to its ``SPLITVAULT_*`` variable."""
    add = parser.add_argument
    add("--db", default=_env("DB", "server.db"), help="server database (env SPLITVAULT_DB)")
    add("--kek-file", default=_env("KEK_FILE"),
        help="key-encryption key file (env SPLITVAULT_KEK_FILE); this or --kek is required")
    add("--kek", action="append", default=None, metavar="FILE|PKCS11_URI",
        help="a key file or an RFC 7512 pkcs11: URI of a key in an HSM; repeat for several "
             "(both keys during a rotation). Env SPLITVAULT_KEK: specs separated by "
             "whitespace (a URI never holds any)")
    add("--host", default=_env("HOST", "127.0.0.1"), help="address to bind (env SPLITVAULT_HOST)")
    add("--port", default=_env("PORT", "8700"), help="TCP port, 0 for any (env SPLITVAULT_PORT)")
    add("--tls-cert", default=_env("TLS_CERT"), help="PEM certificate (env SPLITVAULT_TLS_CERT)")
    add("--tls-key", default=_env("TLS_KEY"), help="PEM private key (env SPLITVAULT_TLS_KEY)")
    add("--dev-tls", action="store_true", default=_env("DEV_TLS", "") in ("1", "true", "yes"),
        help="serve HTTPS with a self-signed certificate kept beside the database, and "
             "print its SHA-256 fingerprint for devices to pin (env SPLITVAULT_DEV_TLS=1)")
    add("--rate-limit", default=_env("RATE_LIMIT", str(DEFAULT_RATE)),
        help=f"requests per second per client address, 0 for no limit (default "
             f"{DEFAULT_RATE:g}; env SPLITVAULT_RATE_LIMIT)")
    add("--rate-burst", default=_env("RATE_BURST", str(DEFAULT_BURST)),
        help=f"bucket size per client address (default {DEFAULT_BURST:g}; "
             f"env SPLITVAULT_RATE_BURST)")
    d = DEFAULT_LIMITS
    add("--max-connections", default=_env("MAX_CONNECTIONS"),
        help=f"open connections in total (default {d.max_connections}; "
             "env SPLITVAULT_MAX_CONNECTIONS)")
    add("--max-connections-per-address", default=_env("MAX_CONNECTIONS_PER_ADDRESS"),
        help=f"open connections per client address (default "
             f"{d.max_connections_per_address}; env SPLITVAULT_MAX_CONNECTIONS_PER_ADDRESS)")
    add("--header-timeout", default=_env("HEADER_TIMEOUT"),
        help=f"seconds for a request's headers to arrive (default {d.header_seconds:g}; "
             "env SPLITVAULT_HEADER_TIMEOUT)")
    add("--body-timeout", default=_env("BODY_TIMEOUT"),
        help=f"seconds for a request's body to arrive (default {d.body_seconds:g}; "
             "env SPLITVAULT_BODY_TIMEOUT)")
    add("--profile", default=_env("PROFILE", "default"), choices=("default", "test-only"),
        help="server limits: 'default' (5 guesses, 30 s payment leases) or 'test-only' "
             "(3 s leases, for crash tests only; env SPLITVAULT_PROFILE)")
    add("--workers", default=_env("WORKERS", "1"),
        help="worker processes sharing the listening socket; each is a full server, and "
             "with PostgreSQL any number of them on any number of hosts act as one "
             "(default 1; env SPLITVAULT_WORKERS)")
    add("--reconcile-every", default=_env("RECONCILE_EVERY", str(RECONCILE_EVERY)),
        help=f"seconds between settling payments in doubt with the acquirer, 0 for never "
             f"(default {RECONCILE_EVERY:g}; env SPLITVAULT_RECONCILE_EVERY)")
    add("--risk-rules", default=_env("RISK_RULES"), metavar="FILE",
        help="fraud rules (TOML; README, 'Fraud rules'), or 'default' for "
             "RiskRules.DEFAULT; none if left out (env SPLITVAULT_RISK_RULES)")
    add("--receipts", default=_env("RECEIPTS"), metavar="MODULE:NAME",
        help="the receipt sink (an object with deliver(receipt), or a class or factory "
             "to call); receipts are queued with each outcome and delivered after it "
             "(env SPLITVAULT_RECEIPTS)")
    add("--simulated-books", default=_env("SIMULATED_BOOKS"), metavar="FILE",
        help="the simulated acquirer keeps its books in FILE (fsync'd per booking, shared "
             "with 'splitvault reconcile --simulated-books'), so they survive a restart; "
             "for demos and crash tests (env SPLITVAULT_SIMULATED_BOOKS)")
    add("--simulated-faults", default=_env("SIMULATED_FAULTS"), metavar="SEED:RATE",
        help="the simulated acquirer injects seeded random faults of every kind at RATE "
             "(0 to 1), e.g. 7:0.2; crash tests only (env SPLITVAULT_SIMULATED_FAULTS)")
    add("--deliver-every", default=_env("DELIVER_EVERY", str(DELIVER_EVERY)),
        help=f"seconds between receipt deliveries, 0 for never (default "
             f"{DELIVER_EVERY:g}; env SPLITVAULT_DELIVER_EVERY)")
    add("--role", default=_env("ROLE", "all"), choices=ROLES,
        help="'all' (default): the single share server (one realm and the gateway, "
             "2-of-2); 'realm' or 'gateway': one server of a t-of-n deployment "
             "(README, 'Realms'; env SPLITVAULT_ROLE)")
    add("--deployment", default=_env("DEPLOYMENT"), metavar="FILE",
        help="the deployment file ('splitvault deployment init') a realm or gateway "
             "follows: a realm seals shares only to its gateways, a gateway takes shares "
             "only of its realms; read again when it changes (env SPLITVAULT_DEPLOYMENT)")
    add("--log-level", default=_env("LOG_LEVEL", "info"),
        choices=("debug", "info", "warning", "error"),
        help="JSON logs on stderr at this level (env SPLITVAULT_LOG_LEVEL)")


class _StartupError(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT. 0 after a clean shutdown, 2 on a startup error
    (printed as one line on stderr)."""
    try:
        port, rate, burst = _numbers(args)
        workers = _worker_count(args.workers)
        limits = _limits(args)
        kek_file, args.kek = _kek_file(args.kek_file), _kek_specs(args)
        ssl_files = _tls(args)
        if args.deployment and args.role == "all":
            raise _StartupError("--deployment is for --role realm or --role gateway; the "
                                "single server ('all') has no deployment")
        # A bad SEED:RATE or books file is one line here, not one per worker.
        simulated_acquirer(args.simulated_books, args.simulated_faults)
        sock = _bind(args.host, port)
    except (_StartupError, VaultError) as exc:
        print(f"splitvault serve: error: {exc}", file=sys.stderr)
        return 2
    if workers == 1:
        return _serve_one(args, sock, limits, rate, burst, kek_file, ssl_files)
    try:
        # Open once here, so that a bad database or key is one clear line before any
        # worker starts (and a new database's schema is made once); then fork.
        ShareServer.open(args.db, kek_file=kek_file, kek=args.kek, announce=False,
                         risk=_risk(args)).close()
    except VaultError as exc:
        sock.close()
        print(f"splitvault serve: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level, sys.stderr)
    configure_logging(args.log_level, sys.stderr)
    _announce(sock, ssl_files, workers)
    return supervise(workers, lambda: _serve_one(args, sock, limits, rate, burst, kek_file,
                                                 ssl_files, announce=False))


def _serve_one(args: argparse.Namespace, sock: socket.socket, limits: ServeLimits,
               rate: float, burst: float, kek_file: Path | None,
               ssl_files: tuple[str, str] | None, *, announce: bool = True) -> int:
    """One worker: a ShareServer and a uvicorn server on the shared listening socket."""
    try:
        every = interval(args.reconcile_every, "--reconcile-every")
        deliver = interval(args.deliver_every, "--deliver-every")
        acquirer = simulated_acquirer(args.simulated_books, args.simulated_faults)
        server = ShareServer.open(args.db, kek_file=kek_file, kek=args.kek,
                                  profile=_profile(args), risk=_risk(args), acquirer=acquirer,
                                  receipts=load_sink(args.receipts) if args.receipts else None,
                                  deployment=args.deployment)
    except VaultError as exc:
        sock.close()
        print(f"splitvault serve: error: {exc}", file=sys.stderr)
        return 2
    refresher = Refresher(server)
    configure_logging(args.log_level, sys.stderr)
    fitted = limits.fit_file_limit()
    if fitted.max_connections < limits.max_connections:
        log.warning("open-file limit too low: max connections lowered to %d",
                    fitted.max_connections)
    app = create_app(server, limiter=RateLimiter(rate, burst) if rate > 0 else None,
                     role=args.role)
    guard = ServeGuard(app, max_requests=fitted.max_requests)
    config = uvicorn.Config(
        guard, log_config=None, access_log=False, lifespan="off", workers=1,
        proxy_headers=False,  # the rate limit keys on the TCP peer, not a header
        server_header=False, timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
        ssl_certfile=ssl_files[0] if ssl_files else None,
        ssl_keyfile=ssl_files[1] if ssl_files else None,
        http=guarded_protocol(fitted), timeout_keep_alive=fitted.keep_alive_seconds,
        h11_max_incomplete_event_size=fitted.max_header_bytes, backlog=fitted.backlog,
    )
    if announce:
        _announce(sock, ssl_files, 1)
    refresher.start()
    # Stopped before the server closes: a run in progress finishes on live keys.
    stop_reconciling = (run_every(server.reconcile, every, thread="reconcile",
                                  what="reconciliation", log=reconcile_log)
                        if every else lambda: None)
    stop_delivering = (run_every(server.deliver_outbox, deliver, thread="outbox",
                                 what="outbox delivery", log=outbox_log)
                       if deliver and server.receipts is not None else lambda: None)
    try:
        with _quiet_signals():
            _DrainingServer(config, guard).run(sockets=[sock])
    finally:
        sock.close()
        stop_reconciling()
        stop_delivering()
        refresher.stop()
        closed = _close_when_idle(app.in_flight.wait_idle, server)
    return 0 if closed else 1


def _announce(sock: socket.socket, ssl_files: tuple[str, str] | None, workers: int) -> None:
    scheme = "https" if ssl_files else "http"
    host, bound = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if workers > 1:
        print(f"splitvault: {workers} worker processes", flush=True)
    print(f"splitvault: listening on {scheme}://{shown}:{bound}", flush=True)


def _risk(args: argparse.Namespace) -> RiskRules | None:
    """The ``--risk-rules`` file; a malformed one is a startup error naming the problem."""
    if not args.risk_rules:
        return None
    if args.risk_rules == "default":
        return RiskRules.DEFAULT
    return RiskRules.from_toml(args.risk_rules)


def _profile(args: argparse.Namespace) -> ServerProfile:
    if args.role == "realm":
        # A realm's limit is per realm and counts every evaluation (``_realm.py``).
        return ServerProfile.REALM
    return ServerProfile.TEST_ONLY if args.profile == "test-only" else ServerProfile.DEFAULT


def _worker_count(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        raise _StartupError("--workers must be a whole number") from None
    if not 1 <= workers <= MAX_WORKERS:
        raise _StartupError(f"--workers must be 1 to {MAX_WORKERS}")
    return workers


def _close_when_idle(wait_idle: Callable[[float], bool], server: ShareServer) -> bool:
    """Step 3: no ShareServer call may run on wiped keys, whatever happened before."""
    if not wait_idle(STUCK_SECONDS):
        log.error("shutdown: share server calls still running; exiting without closing "
                  "the share server")
        return False
    server.close()
    log.info("shutdown: share server closed")
    return True


class _DrainingServer(uvicorn.Server):
    """uvicorn's server with steps 1 and 2 of the shutdown in front of its own."""

    def __init__(self, config: uvicorn.Config, guard: ServeGuard) -> None:
        super().__init__(config)
        self.guard = guard
        self._drain = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain:  # a second signal: stop draining, shut down now
            super().handle_exit(sig, frame)
            return
        self._drain = True
        self.guard.drain()  # from this instant, new requests get 503
        # Logged here, at the instant it takes effect, so the log's order is the true
        # order (on_tick runs up to a tick later, after requests that finish meanwhile).
        log.info("shutdown: refusing new requests; draining %d in flight", self.guard.active)

    async def on_tick(self, counter: int) -> bool:
        if self._drain and not self.should_exit:
            drained = await self.guard.drained(GRACEFUL_SECONDS)
            if drained:
                log.info("shutdown: drained")
            else:
                log.warning("shutdown: %d requests still in flight after %g s",
                            self.guard.active, GRACEFUL_SECONDS)
            self.should_exit = True
        return bool(await super().on_tick(counter))


def _numbers(args: argparse.Namespace) -> tuple[int, float, float]:
    try:
        port, rate, burst = int(args.port), float(args.rate_limit), float(args.rate_burst)
    except ValueError:
        raise _StartupError("--port, --rate-limit and --rate-burst must be numbers") from None
    if not 0 <= port <= 65535:
        raise _StartupError("--port must be 0 to 65535")
    if not (0 <= rate < float("inf") and 1 <= burst < float("inf")):
        raise _StartupError("--rate-limit must be >= 0 and --rate-burst >= 1")
    return port, rate, burst


def _limits(args: argparse.Namespace) -> ServeLimits:
    try:
        return DEFAULT_LIMITS.with_overrides(
            max_connections=_maybe(int, args.max_connections),
            max_connections_per_address=_maybe(int, args.max_connections_per_address),
            header_seconds=_maybe(float, args.header_timeout),
            body_seconds=_maybe(float, args.body_timeout))
    except ValueError as exc:
        raise _StartupError(f"connection limits: {exc}") from None


def _maybe(kind: type[int] | type[float], value: str | None) -> int | float | None:
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None


def _kek_specs(args: argparse.Namespace) -> list[str] | None:
    """``--kek`` (a flag wins), else ``SPLITVAULT_KEK``; a URI is only parsed here: its
    token is opened once, with the server, and no error of either names a PIN."""
    from ._keysource import check_file_spec, is_pkcs11_spec, split_specs
    from ._pkcs11_uri import parse_pkcs11_uri

    specs = list(args.kek) if args.kek else split_specs(_env("KEK"))
    for spec in specs:
        if is_pkcs11_spec(spec):
            parse_pkcs11_uri(spec)
        else:
            check_file_spec(spec)
            for key in Kek.load_all(spec):
                key.wipe()
    if not specs and not args.kek_file:
        # No default key, ever: a server that made up its own key beside the database
        # would let a copy of the database directory be opened.
        raise _StartupError(
            "no key-encryption key: pass --kek-file or --kek (env SPLITVAULT_KEK_FILE, "
            "SPLITVAULT_KEK; create one with `splitvault keys generate`)")
    return specs or None


def _kek_file(value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value)
    for key in Kek.load_all(path):  # missing, readable by others or malformed: say so now
        key.wipe()
    return path


def _tls(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.dev_tls:
        if args.tls_cert or args.tls_key:
            raise _StartupError("--dev-tls cannot be combined with --tls-cert/--tls-key")
        cert, key, fingerprint = dev_certificate(Path(args.db))
        print(f"splitvault: dev TLS certificate SHA-256 fingerprint: {fingerprint}", flush=True)
        return str(cert), str(key)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise _StartupError("--tls-cert and --tls-key go together")
    if args.tls_cert:
        for name in (args.tls_cert, args.tls_key):
            if not Path(name).is_file():
                raise _StartupError(f"TLS file not found: {name}")
        return str(args.tls_cert), str(args.tls_key)
    if args.host not in _LOOPBACK and not _is_loopback(args.host):
        print("splitvault serve: warning: plain HTTP on a non-loopback address; devices "
              "refuse http:// except to loopback. Use --tls-cert/--tls-key.", file=sys.stderr)
    return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """Bind before starting, so the URL printed is the real one (also for port 0)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
        # proto must say TCP: asyncio sets TCP_NODELAY only on sockets that do, and
        # without it every reply waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise _StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@contextmanager
def _quiet_signals() -> Iterator[None]:
    """uvicorn re-raises the signal that stopped it once it is done; with the default
    SIGTERM handler that would kill us before the ShareServer is closed. A no-op
    handler during the run turns that re-raise into a normal return."""
    def ignore(signum: int, frame: object) -> None:
        pass

    previous = {sig: signal.signal(sig, ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="splitvault serve",
                                     description="Run the share server over HTTP(S).")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(_main())

