"""Malformed, oversized and unknown input: a 4xx with a stable code, and nothing changes."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_support import PAN, PIN, ServerProcess, device_card, enroll, pay

import splitvault as sv
from splitvault._wire import EVALUATE, dumps
from splitvault.hazmat import HttpShareService


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def enrolled(live_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[sv.Device, str]]:
    path = tmp_path_factory.mktemp("dev") / "d.db"
    with sv.Device.open(path, server=live_server.url, kdf=sv.KdfProfile.TEST_ONLY) as device:
        yield device, enroll(device)


@pytest.fixture
def client(live_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=10.0) as c:
        yield c


def _state(server: ServerProcess, card_id: str) -> tuple[int, int, bool]:
    with server.inspect() as inspect:
        state = inspect.card_state(card_id)
        return inspect.verify_audit().entries, state.guesses_used, state.locked


def _evaluate_body(card_id: str, *, age: float = 0.0) -> dict[str, Any]:
    """An evaluate body with a fresh nonce, timestamped ``age`` seconds ago, and a
    signature no device made."""
    return {"card_id": card_id, "nonce": b64(os.urandom(16)),
            "timestamp": int((time.time() - age) * 1000),
            "blinded": b64(bytes(32)), "signature": b64(bytes(64)), "share_version": 0,
            "refresh_key": "", "possession": ""}


def _variants(good: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    def body(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    yield "not json", b"{"
    yield "array", b"[]"
    yield "empty", b""
    yield "unknown field", body(extra=1)
    yield "missing field", json.dumps({k: v for k, v in good.items() if k != "blinded"}).encode()
    yield "int card id", body(card_id=7)
    yield "null signature", body(signature=None)
    yield "bad base64", body(blinded="!" * 43)
    yield "padded base64", body(blinded=b64(bytes(32)) + "=")
    yield "non-canonical base64", body(blinded="A" * 42 + "B")
    yield "short bytes", body(blinded=b64(bytes(31)))
    yield "short nonce", body(nonce=b64(bytes(15)))
    yield "float timestamp", body(timestamp=float(good["timestamp"]))
    yield "string timestamp", body(timestamp=str(good["timestamp"]))
    yield "bool timestamp", body(timestamp=True)
    yield "negative timestamp", body(timestamp=-1)
    yield "uppercase id", body(card_id=good["card_id"].upper())
    yield "duplicate key", body()[:-1] + b', "card_id": "' + good["card_id"].encode() + b'"}'
    yield "NaN", body()[:-1] + b', "x": NaN}'
    yield "invalid utf-8", b'{"card_id": "\xff"}'
    yield "utf-16", body().decode().encode("utf-16")
    yield "deep nesting", b"[" * 8000 + b"]" * 8000
    yield "huge integer", body()[:-1] + b', "n": ' + b"9" * 5000 + b"}"
    yield "lone surrogate", body(card_id="\ud800" * 32)


def test_malformed_bodies_are_400_and_change_nothing(
        live_server: ServerProcess, enrolled: tuple[sv.Device, str],
        client: httpx.Client) -> None:
    _, card_id = enrolled
    before = _state(live_server, card_id)
    for name, content in _variants(_evaluate_body(card_id)):
        response = client.post("/v1/evaluate", content=content,
                                headers={"content-type": "application/json"})
        assert response.status_code == 400, name
        assert response.json()["error"] == "malformed_request", name
        assert set(response.json()) == {"error", "message"}, name
    assert _state(live_server, card_id) == before


def test_wrong_payment_types_are_400(live_server: ServerProcess,
                                     enrolled: tuple[sv.Device, str],
                                     client: httpx.Client) -> None:
    _, card_id = enrolled
    before = _state(live_server, card_id)
    good = {"card_id": card_id, "challenge_id": "ab" * 16, "amount": 100, "currency": "USD",
            "merchant": "Shop", "idempotency_key": "k", "envelope": b64(b"x" * 80),
            "pin_signature": b64(bytes(136))}
    for change in ({"amount": True}, {"amount": 1.0}, {"amount": "100"}, {"amount": 0},
                   {"amount": 10**13}, {"currency": "usd"}, {"merchant": ""},
                   {"idempotency_key": "has space"}, {"envelope": ""}):
        response = client.post("/v1/authorize", json={**good, **change})
        assert response.status_code == 400, change
        assert response.json()["error"] == "malformed_request", change
    assert _state(live_server, card_id) == before


def test_oversized_bodies_are_413_before_reading(live_server: ServerProcess,
                                                 enrolled: tuple[sv.Device, str],
                                                 client: httpx.Client) -> None:
    _, card_id = enrolled
    before = _state(live_server, card_id)
    big = b'{"card_id": "' + b"a" * 20_000 + b'"}'
    response = client.post("/v1/evaluate", content=big,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "malformed_request"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"card_id": "'
        for _ in range(40):
            yield b"a" * 1024

    response = client.post("/v1/evaluate", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "malformed_request"
    assert _state(live_server, card_id) == before


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; everything the server sends until it
    closes or goes quiet for 5 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(data)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and b"connection: close" not in received:
                    break  # a kept-alive reply: headers are all this test reads
        return received


def test_oversized_header_block_is_400_and_closed(live_server: ServerProcess) -> None:
    """llhttp has no header size limit of its own: the guard holds one (8 KB),
    whether the block comes in one read or many, complete or not."""
    port = int(live_server.url.rsplit(":", 1)[1])
    big = b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * 9000 + b"\r\n\r\n"
    assert _raw(port, big).startswith(b"HTTP/1.1 400")
    endless = b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * 9000  # never ends
    assert _raw(port, endless).startswith(b"HTTP/1.1 400")
    # A large body arriving in the same read as a small header block is not headers.
    body = b'{"card_id": "' + b"a" * 12_000 + b'"}'
    post = (b"POST /v1/evaluate HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    reply = _raw(port, post)  # the app's JSON 400 for the body, not the guard's cut
    assert reply.startswith(b"HTTP/1.1 400") and b"application/json" in reply
    assert httpx.get(f"{live_server.url}/healthz").status_code == 200


def test_wrong_media_type_is_415(client: httpx.Client) -> None:
    response = client.post("/v1/evaluate", content=json.dumps(_evaluate_body("a" * 32)),
                           headers={"content-type": "text/plain"})
    assert response.status_code == 415 and response.json()["error"] == "malformed_request"


def test_unknown_route_and_method_are_json(client: httpx.Client) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    response = client.get("/v1/evaluate")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"


def test_unknown_card_and_bad_device_signature_are_identical(
        live_server: ServerProcess, enrolled: tuple[sv.Device, str],
        client: httpx.Client) -> None:
    """No status, body or header tells a stranger whether a card id exists."""
    _, card_id = enrolled
    before = _state(live_server, card_id)
    responses = []
    for target in (os.urandom(16).hex(), card_id):
        body = _evaluate_body(target)
        responses.append(client.post("/v1/evaluate", json=body))
    unknown, forged = responses
    assert unknown.status_code == forged.status_code == 404
    assert unknown.content == forged.content
    assert unknown.json() == {"error": "unknown_card", "message": "unknown card"}
    ignore = {"date", "x-request-id"}
    assert ({k: v for k, v in unknown.headers.items() if k not in ignore}
            == {k: v for k, v in forged.headers.items() if k not in ignore})
    assert _state(live_server, card_id) == before


def test_request_id_is_echoed_or_made(client: httpx.Client) -> None:
    assert client.get("/healthz", headers={"x-request-id": "abc-123"}).headers[
        "x-request-id"] == "abc-123"
    for bad in (b"bad id", b"x" * 65, "caf\u00e9".encode("latin-1"), b"a\tb"):
        made = client.get("/healthz", headers={"x-request-id": bad}).headers["x-request-id"]
        assert made.encode() != bad and len(made) == 16


def test_readyz_and_openapi(client: httpx.Client) -> None:
    assert client.get("/readyz").json() == {"status": "ready"}
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/authorize" in document["paths"]


def test_logs_are_json_lines_without_secrets(live_server: ServerProcess,
                                             enrolled: tuple[sv.Device, str]) -> None:
    device, card_id = enrolled
    pay(device, card_id, key="log-check")
    lines = live_server.log_lines()  # json.loads of every line: each one is JSON
    requests = [line for line in lines if line.get("msg") == "request"]
    assert requests
    for line in requests:
        assert {"ts", "level", "request_id", "method", "path", "status",
                "duration_ms"} <= set(line)
    text = live_server.log.read_text()
    stored = device_card(device, card_id)
    for secret in (PAN, PIN, b64(stored.device_share), b64(stored.sign_seed), "Coffee Lab"):
        assert secret not in text
    assert any(line.get("card_id") == card_id for line in requests)


def test_error_body_decodes_to_the_same_exception(enrolled: tuple[sv.Device, str],
                                                  live_server: ServerProcess) -> None:
    """The client raises what the in-process server raises, from the JSON body."""
    _, card_id = enrolled
    service = HttpShareService(live_server.url)
    try:
        with pytest.raises(sv.UnknownCard):
            service.evaluate(EVALUATE.from_json(_evaluate_body(card_id)))
        with pytest.raises(sv.InvalidChallenge):  # ten minutes old: not fresh
            service.evaluate(EVALUATE.from_json(_evaluate_body(card_id, age=600.0)))
    finally:
        service.close_transport()
    assert dumps  # the codec the client uses is the server's


@pytest.mark.slow
def test_rate_limit_gives_429(own_server: ServerProcess, tmp_path: Path) -> None:
    own_server.args += ["--rate-limit", "1", "--rate-burst", "3"]
    own_server.start()
    with httpx.Client(base_url=own_server.url) as c:
        statuses = [c.get("/v1/info").status_code for _ in range(6)]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
        limited = c.get("/v1/info")
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200  # probes are never limited
    service = HttpShareService(own_server.url)
    try:
        with pytest.raises(sv.ServerUnavailable, match="rate limiting"):
            service.info()
    finally:
        service.close_transport()


@pytest.mark.parametrize("age", [0.0, 600.0, -600.0])
def test_made_up_challenge_does_not_reveal_the_card(enrolled: tuple[sv.Device, str],
                                                    client: httpx.Client, age: float) -> None:
    """A made-up evaluate nonce, fresh or stale or from the future, and an authorization
    on a made-up challenge id: the same answers for a card that exists and one that
    does not."""
    _, card_id = enrolled
    bodies = []
    for target in (os.urandom(16).hex(), card_id):
        evaluate = client.post("/v1/evaluate", json=_evaluate_body(target, age=age))
        authorize = client.post("/v1/authorize", json={
            "card_id": target, "challenge_id": os.urandom(16).hex(), "amount": 100,
            "currency": "USD", "merchant": "Shop", "idempotency_key": "k",
            "envelope": b64(b"x" * 80), "pin_signature": b64(bytes(136))})
        bodies.append((evaluate.status_code, evaluate.content, authorize.status_code,
                       authorize.content))
    assert bodies[0] == bodies[1]
