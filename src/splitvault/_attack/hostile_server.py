"""Scenario 12, a hostile share server (or an on-path attacker where TLS is off): it
answers every device request slowly on purpose, one byte at a time, to hold the device
(and the person at the till) for as long as it likes.

- :func:`trickle_headers`: a valid status line, then one header byte every 0.2 s;
- :func:`trickle_body`: complete headers announcing a body, then one body byte every
  0.2 s.

Each byte arrives well inside any per-read timeout, so only a total deadline stops
it. The defense holds when the device's call fails with ``ServerUnavailable`` *and*
the server sees the device close the connection while it still had bytes to send.
The wait is bounded twice: the server stops after :data:`TRICKLE_SECONDS`, and the
attack gives up on a device call that outlives that.

In-process only: the attacker here is the server, played on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from dataclasses import dataclass, field

from .. import _errors
from ..hazmat import HttpShareService
from ._harness import AttackResult, Deployment, Lab, Options, guarded

__all__ = ["TrickleServer", "run", "trickle_body", "trickle_headers"]

HAD = "the server's end of the device's connection"
DEVICE_TIMEOUT = 1.0
"""The device's timeout in this attack: short, so the attack takes a second or two."""
BYTE_EVERY = 0.2
"""Far inside any per-read timeout: each byte restarts a per-operation clock."""
TRICKLE_SECONDS = 12.0
"""How long the server would go on: far beyond the device's deadline plus retries."""
_HEADERS = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"


@dataclass
class Connection:
    """What the hostile server saw on one connection."""

    sent: int = 0
    closed_by_device: bool = False
    finished: bool = False


@dataclass
class TrickleServer:
    """A raw socket server on 127.0.0.1 that trickles its replies. ``body`` False:
    trickle the header block; True: send headers announcing a body, trickle that."""

    body: bool = False
    byte_every: float = BYTE_EVERY
    seconds: float = TRICKLE_SECONDS
    connections: list[Connection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            seen = Connection()
            self.connections.append(seen)
            thread = threading.Thread(target=self._serve, args=(conn, seen), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, seen: Connection) -> None:
        with conn:
            request = b""
            conn.settimeout(5.0)
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        seen.closed_by_device = True
                        return
                    request += chunk
            steps = int(self.seconds / self.byte_every)
            if self.body:
                conn.sendall(_HEADERS + f"content-length: {steps}\r\n\r\n".encode())
                payload = b" " * steps  # JSON whitespace: a valid start of any body
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                payload = b"x-slow: " + b"a" * steps
            for byte in payload[:steps]:
                if self._stop.is_set():
                    return
                readable, _, _ = select.select([conn], [], [], self.byte_every)
                try:
                    if readable and not conn.recv(1):
                        seen.closed_by_device = True
                        return
                    conn.sendall(bytes([byte]))
                except OSError:
                    seen.closed_by_device = True
                    return
                seen.sent += 1
            seen.finished = True

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._accepter.join(2.0)
        for thread in self._threads:
            thread.join(2.0)

    def __enter__(self) -> TrickleServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call_info(url: str, timeout: float = DEVICE_TIMEOUT,
              give_up: float = TRICKLE_SECONDS + 5.0) -> tuple[str, bool]:
    """Call ``info`` through the device's client in a thread; (what it raised or
    returned, whether it ended before ``give_up`` seconds)."""
    outcome: list[str] = []
    service = HttpShareService(url, timeout=timeout)

    def call() -> None:
        try:
            service.info()
        except _errors.VaultError as exc:
            outcome.append(type(exc).__name__)
        except Exception as exc:  # the verdict must show an untyped error
            outcome.append(f"untyped {type(exc).__name__}")
        else:
            outcome.append("an answer")

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(give_up)
    if not thread.is_alive():
        service.close_transport()
    return (outcome[0] if outcome else "still waiting"), not thread.is_alive()


def _trickle(name: str, body: bool) -> AttackResult:
    def attack() -> AttackResult:
        with TrickleServer(body=body) as server:
            raised, ended = call_info(server.url)
            seen = list(server.connections)
        cut = [c for c in seen if c.closed_by_device and not c.finished]
        passed = ended and raised == "ServerUnavailable" and bool(seen) and \
            len(cut) == len(seen)
        if not ended:
            got = f"held the device for over {TRICKLE_SECONDS + 5:g} s"
        elif len(cut) != len(seen) or not seen:
            got = (f"{raised}, but only after the server had sent everything "
                   f"({sum(c.sent for c in seen)} bytes)")
        else:
            got = (f"{raised}: the device closed {len(cut)} connection(s) after "
                   f"{max(c.sent for c in cut)} trickled bytes (deadline {DEVICE_TIMEOUT:g} s)")
        return AttackResult(name, HAD, got, passed)

    return guarded(name, HAD, attack)


def trickle_headers(lab: Lab | None = None) -> AttackResult:
    return _trickle("trickle the reply's headers byte by byte", body=False)


def trickle_body(lab: Lab | None = None) -> AttackResult:
    return _trickle("trickle the reply's body byte by byte", body=True)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    return [trickle_headers(), trickle_body()]
