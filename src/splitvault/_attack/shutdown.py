"""Scenario 14, shutdown under load: a request is in flight when the operator (or the
service manager) stops the server. Wiping the keys first would let that request wrap
a value under zeros; stopping to accept first would drop it.

- :func:`stop_mid_request`: with a request half sent, SIGTERM. A request arriving
  during the drain must get 503 ``shutting_down``; the half-sent one, once finished,
  must be answered by the app; the log must say drained before share server closed,
  and the process must exit 0.

In-process only (it stops the server): a real ``splitvault serve`` subprocess.
"""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx

from ._harness import AttackResult, Deployment, Lab, Options, guarded, skipped
from .slow_clients import serve_process

__all__ = ["run", "stop_mid_request"]

HAD = "a request in flight when the server is told to stop"
BODY = b'{"not": "an enrollment"}'
BOUND = 15.0


def _reply(sock: socket.socket) -> int:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def stop_mid_request(lab: Lab) -> AttackResult:
    name = "stop the server with a request in flight"

    def attack() -> AttackResult:
        with serve_process() as (url, proc, log):
            port = int(url.rsplit(":", 1)[1])
            sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
            with sock:
                sock.sendall(b"POST /v1/enroll/begin HTTP/1.1\r\nhost: x\r\ncontent-type: "
                             b"application/json\r\ncontent-length: "
                             + str(len(BODY)).encode() + b"\r\n\r\n" + BODY[:5])
                with httpx.Client(timeout=BOUND) as client:
                    client.get(f"{url}/healthz")
                    proc.send_signal(signal.SIGTERM)
                    during = 0
                    deadline = time.monotonic() + BOUND
                    while during != 503 and time.monotonic() < deadline:
                        try:
                            during = client.get(f"{url}/v1/info",
                                                headers={"connection": "close"}).status_code
                        except httpx.HTTPError:
                            during = -1  # refused: the listener is gone
                            break
                sock.sendall(BODY[5:])
                admitted = _reply(sock)
            code = proc.wait(BOUND)
            messages = [str(json.loads(line).get("msg")) for line in
                        log.read_text().splitlines() if line.startswith("{")]
        order = [next((i for i, m in enumerate(messages) if m.startswith(p)), -1) for p in
                 ("shutdown: drained", "shutdown: share server closed")]
        in_order = -1 < order[0] < order[1]
        passed = during == 503 and admitted not in (0, 503) and code == 0 and in_order
        got = (f"during the drain: {'503' if during == 503 else 'no 503'}; the request in "
               f"flight: {admitted or 'no answer'}; keys wiped "
               f"{'after the drain' if in_order else 'WITHOUT a drain first'}; exit {code}")
        return AttackResult(name, HAD, got, passed)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    if deployment.remote:
        return [skipped("stop the server with a request in flight", HAD, "stops the server")]
    with deployment.lab() as lab:
        return [stop_mid_request(lab)]
