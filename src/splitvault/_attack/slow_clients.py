"""Scenario 13, slow clients: a host that opens hundreds of connections and sends each
request's headers a byte at a time (slowloris), to starve everyone else.

- :func:`hold_connections`: 200 connections (from four other loopback addresses, so
  the per-address cap does not simply refuse them) send half a request line and
  stall; a device's ``info`` must still be answered, and the server must close every
  stalled connection itself once its header time is up. Against ``--server`` they
  come from this host, 100 of them: under the default per-address cap, which would
  otherwise refuse this host's device too.

In-process this runs against a real ``splitvault serve`` subprocess (header timeout
2 s, so the attack takes a few seconds); with ``--server`` against the deployment,
with its own header timeout (up to :data:`REMOTE_BOUND`).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess  # nosec B404: starts our own server process, fixed arguments
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from .. import _errors
from ..hazmat import HttpShareService
from ..server import Kek
from ._harness import AttackResult, Deployment, Lab, Options, guarded

__all__ = ["hold_connections", "run", "serve_process"]

HAD = "hundreds of connections, a byte now and then"
SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
"""In-process, where the stalled connections come from (Linux routes all of 127/8)."""
PER_SOURCE = 50
REMOTE_CONNECTIONS = 100
HEADER_TIMEOUT = 2.0
"""The in-process server's header timeout: short, so the attack is quick."""
REMOTE_BOUND = 40.0
"""How long to wait for a deployment to close stalled connections (default 10 s)."""


@contextlib.contextmanager
def serve_process(*flags: str) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """A ``splitvault serve`` subprocess on 127.0.0.1 (its URL, process and log file)."""
    with tempfile.TemporaryDirectory(prefix="splitvault-attack-serve-") as folder:
        root = Path(folder)
        Kek.generate().write(root / "kek.key")
        log = root / "server.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(  # noqa: S603  # nosec B603: our interpreter, fixed arguments
                [sys.executable, "-m", "splitvault.server._serve", "--db",
                 str(root / "server.db"), "--kek-file", str(root / "kek.key"), "--port", "0",
                 "--host", "127.0.0.1", *flags],
                stdout=subprocess.PIPE, stderr=err, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            url = ""
            for line in proc.stdout or ():
                if "listening on" in line:
                    url = line.split()[-1]
                    break
            if not url:
                proc.wait(15)
                raise RuntimeError("the server did not start: " + log.read_text()[-300:])
            yield url, proc, log
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout:
                proc.stdout.close()


def _stall(host: str, port: int, source: str | None) -> socket.socket | None:
    try:
        sock = socket.create_connection((host, port), timeout=5.0,
                                        source_address=(source, 0) if source else None)
        sock.sendall(b"GET /v1/info HTTP/1.1\r\nhost: x\r\nx-slow: ")
    except OSError:
        return None
    sock.setblocking(False)
    return sock


def _closed(sock: socket.socket) -> bool:
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _attack_url(url: str, pin_sha256: str | None, bound: float,
                sources: list[str | None]) -> AttackResult:
    name = "hold hundreds of half-sent requests open"
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    held = [s for s in (_stall(host, port, source) for source in sources) if s]
    if len(held) < len(sources):
        for sock in held:
            sock.close()
        return AttackResult(name, HAD, f"could open only {len(held)} connections", False,
                            "the attack could not be mounted")
    try:
        service = HttpShareService(url, pin_sha256=pin_sha256)
        try:
            service.info()
            answered = True
        except _errors.VaultError:
            answered = False
        finally:
            service.close_transport()
        still = set(range(len(held)))
        deadline = time.monotonic() + bound
        while still and time.monotonic() < deadline:
            still -= {i for i in still if _closed(held[i])}
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()
    passed = answered and not still
    got = (("the device was still answered" if answered else "the device got NO answer")
           + f"; {len(held) - len(still)} of {len(held)} stalled connections closed "
             "by the server")
    return AttackResult(name, HAD, got, passed)


def hold_connections(lab: Lab) -> AttackResult:
    name = "hold hundreds of half-sent requests open"

    def attack() -> AttackResult:
        if lab.url is not None:
            return _attack_url(lab.url, lab.pin_sha256, REMOTE_BOUND,
                               [None] * REMOTE_CONNECTIONS)
        with serve_process("--header-timeout", str(HEADER_TIMEOUT)) as (url, _, _):
            return _attack_url(url, None, HEADER_TIMEOUT + 10.0,
                               [s for s in SOURCES for _ in range(PER_SOURCE)])

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    with deployment.lab() as lab:
        return [hold_connections(lab)]
