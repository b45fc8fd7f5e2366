"""Issue 9 item 9, server side: shutdown refuses new work, drains what it admitted, and
only then closes (wipes) the ShareServer. A real ``splitvault serve`` process."""

from __future__ import annotations

import json
import signal
import socket
import time

import httpx
import pytest
from http_support import ServerProcess

pytestmark = pytest.mark.security

BODY = b'{"not": "an enrollment"}'
BOUND = 15.0
"""The test's own bound on every wait: far above what any step takes."""


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    sock.settimeout(BOUND)
    return sock


def _read_reply(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(body) >= length:
                break
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


def test_shutdown_refuses_new_work_drains_then_closes(own_server: ServerProcess) -> None:
    """A request admitted before SIGTERM is answered by the app (not 503); a request
    arriving during the drain gets 503 ``shutting_down`` as JSON; the process exits 0
    and logs drained before it logs the share server closed."""
    server = own_server.start()
    admitted = _connect(server)
    admitted.sendall(b"POST /v1/enroll/begin HTTP/1.1\r\nhost: t\r\n"
                     b"content-type: application/json\r\n"
                     b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY[:5])
    with httpx.Client(timeout=BOUND) as client:  # one round trip: A's headers are in
        assert client.get(f"{server.url}/healthz").status_code == 200
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    refusal = None
    deadline = time.monotonic() + BOUND
    with httpx.Client(timeout=BOUND) as client:
        while refusal is None and time.monotonic() < deadline:
            reply = client.get(f"{server.url}/v1/info", headers={"connection": "close"})
            if reply.status_code == 503:
                refusal = reply
            else:
                time.sleep(0.02)  # the signal is not handled yet
    assert refusal is not None, "no 503 while draining"
    assert refusal.headers["content-type"] == "application/json"
    assert refusal.json()["error"] == "shutting_down"
    admitted.sendall(BODY[5:])
    status, body = _read_reply(admitted)
    admitted.close()
    assert status == 400 and json.loads(body)["error"] == "malformed_request"
    proc = server.proc
    assert proc.wait(BOUND) == 0
    messages = [str(line.get("msg")) for line in server.log_lines()]
    steps = [next(i for i, m in enumerate(messages) if m.startswith(prefix)) for prefix in
             ("shutdown: refusing new requests", "shutdown: drained",
              "shutdown: share server closed")]
    assert steps == sorted(steps)
    served = [i for i, line in enumerate(server.log_lines())
              if line.get("path") == "/v1/enroll/begin" and line.get("status") == 400]
    assert served and steps[0] < served[0] < steps[1]
