"""``splitvault serve``: the share server over HTTP(S), one process.

``cli.py`` calls :func:`add_arguments` and :func:`run`; ``python -m
splitvault.server._serve`` does the same on its own. Every flag can also come from
the environment (``SPLITVAULT_DB``, ``SPLITVAULT_KEK_FILE``, ...); a flag wins.

One worker process, always: SQLite and the payment flow's in-flight tracking (a retry
waits for a concurrent attempt with the same key *in this process*) assume it. The
event loop takes the concurrency; ``ShareServer`` calls run in a thread pool.

Shutdown (SIGTERM or SIGINT): stop accepting, let in-flight requests finish (up to
``GRACEFUL_SECONDS``), wait for running ``ShareServer`` calls, then close it. A kill
-9 at any point leaves the database consistent: every change is one SQLite
transaction, committed with ``synchronous=FULL`` before its reply is sent.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from .._errors import VaultError
from ._access import configure_logging
from ._devtls import dev_certificate
from ._http import create_app
from ._kek import Kek
from ._ratelimit import DEFAULT_BURST, DEFAULT_RATE, RateLimiter
from ._server import ShareServer

__all__ = ["add_arguments", "run"]

GRACEFUL_SECONDS = 10.0
"""How long shutdown waits for in-flight requests: far above a request's normal
duration, well below the 90 s a service manager waits before SIGKILL."""
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SPLITVAULT_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``serve``; each one defaults to its ``SPLITVAULT_*`` variable."""
    add = parser.add_argument
    add("--db", default=_env("DB", "server.db"), help="server database (env SPLITVAULT_DB)")
    add("--kek-file", default=_env("KEK_FILE"),
        help="key-encryption key file, required (env SPLITVAULT_KEK_FILE)")
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
        kek_file = _kek_file(args.kek_file)
        ssl_files = _tls(args)
        sock = _bind(args.host, port)
    except (_StartupError, VaultError) as exc:
        print(f"splitvault serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        server = ShareServer.open(args.db, kek_file=kek_file)
    except VaultError as exc:
        sock.close()
        print(f"splitvault serve: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level, sys.stderr)
    app = create_app(server, limiter=RateLimiter(rate, burst) if rate > 0 else None)
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", workers=1,
        proxy_headers=False,  # the rate limit keys on the TCP peer, not a header
        server_header=False, timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
        ssl_certfile=ssl_files[0] if ssl_files else None,
        ssl_keyfile=ssl_files[1] if ssl_files else None,
    )
    scheme = "https" if ssl_files else "http"
    host, bound = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"splitvault: listening on {scheme}://{shown}:{bound}", flush=True)
    try:
        with _quiet_signals():
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        app.in_flight.wait_idle(GRACEFUL_SECONDS)
        server.close()
        sock.close()
    return 0


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


def _kek_file(value: str | None) -> Path:
    # No default key, ever: a server that made up its own key beside the database
    # would let a copy of the database directory be opened.
    if not value:
        raise _StartupError(
            "no key-encryption key: pass --kek-file or set SPLITVAULT_KEK_FILE "
            "(create one with `splitvault keys generate`)")
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

