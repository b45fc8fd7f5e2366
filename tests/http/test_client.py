"""HttpShareService against scripted transports: error mapping and the retry policy."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

import splitvault as sv
from splitvault.hazmat import AuthorizeRequest, EvaluateRequest, HttpShareService, RateLimiter

CARD = "ab" * 16
EVALUATE = EvaluateRequest(CARD, bytes(16), 1_700_000_000_000, bytes(32), bytes(64))
REPLY = {"evaluated": "A" * 43, "attempts_left": 4, "challenge_id": "ef" * 16,
         "nonce": "A" * 43, "expires_at": 1.0, "share_version": 0}


def service(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[HttpShareService,
                                                                          list[str]]:
    calls: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return handler(request)

    svc = HttpShareService("http://127.0.0.1:9", transport=httpx.MockTransport(record))
    return svc, calls


def error(status: int, body: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


@pytest.mark.parametrize("body,expected", [
    ({"error": "wrong_pin", "message": "x", "attempts_left": 3}, sv.WrongPin),
    ({"error": "card_locked", "message": "x"}, sv.CardLocked),
    ({"error": "unknown_card", "message": "x"}, sv.UnknownCard),
    ({"error": "invalid_challenge", "message": "x"}, sv.InvalidChallenge),
    ({"error": "idempotency_conflict", "message": "x"}, sv.IdempotencyConflict),
    ({"error": "payment_in_doubt", "message": "x"}, sv.PaymentInDoubt),
    ({"error": "acquirer_unavailable", "message": "x"}, sv.AcquirerUnavailable),
    ({"error": "tampered_data", "message": "x"}, sv.TamperedData),
    ({"error": "malformed_request", "message": "malformed field: blinded"},
     sv.MalformedRequest),
    ({"error": "invalid_payment", "message": "x"}, sv.InvalidPayment),
    ({"error": "rate_limited", "message": "x"}, sv.ServerUnavailable),
    ({"error": "internal_error", "message": "x"}, sv.ServerUnavailable),
    ({"error": "something_new", "message": "x"}, sv.ServerUnavailable),
    ({"error": "wrong_pin", "message": "no count"}, sv.ServerUnavailable),
    ({"error": "card_locked"}, sv.ServerUnavailable),
    ("<html>bad gateway</html>", sv.ServerUnavailable),
])
def test_error_replies_map_to_typed_exceptions(body: object,
                                               expected: type[Exception]) -> None:
    svc, _ = service(error(400, body))
    with pytest.raises(expected) as caught:
        svc.evaluate(EVALUATE)
    if expected is sv.WrongPin:
        assert caught.value.attempts_left == 3  # type: ignore[attr-defined]


def test_fixed_errors_keep_their_own_wording() -> None:
    svc, _ = service(error(423, {"error": "card_locked", "message": "evil text"}))
    with pytest.raises(sv.CardLocked) as caught:
        svc.evaluate(EVALUATE)
    assert "evil" not in str(caught.value)


@pytest.mark.parametrize("content", [
    b"not json", b"{}", b'{"evaluated": "AAAA", "attempts_left": 1}', b"[]",
    b'{"evaluated": "' + b"A" * 43 + b'", "attempts_left": -1}', b"x" * 70_000,
    json.dumps({**REPLY, "attempts_left": -1}).encode(),
    json.dumps({**REPLY, "nonce": "A" * 22}).encode(),
    json.dumps({k: v for k, v in REPLY.items() if k != "challenge_id"}).encode(),
])
def test_garbled_success_is_server_unavailable(content: bytes) -> None:
    svc, _ = service(lambda request: httpx.Response(200, content=content))
    with pytest.raises(sv.ServerUnavailable):
        svc.evaluate(EVALUATE)


def failing(exc: type[httpx.HTTPError], then: httpx.Response | None = None,
            times: int = 100) -> Callable[[httpx.Request], httpx.Response]:
    count = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        count[0] += 1
        if count[0] <= times or then is None:
            raise exc("simulated", request=request)
        return then

    return handler


INFO_OK = httpx.Response(200, json={"guess_limit": 5, "challenge_ttl": 60.0})


def test_connect_errors_are_retried_for_any_call() -> None:
    """Nothing was sent: even evaluate may try again."""
    svc, calls = service(failing(httpx.ConnectError, then=httpx.Response(200, json=REPLY),
                                 times=2))
    assert svc.evaluate(EVALUATE).attempts_left == 4
    assert len(calls) == 3


def test_connect_errors_give_up() -> None:
    svc, calls = service(failing(httpx.ConnectError))
    with pytest.raises(sv.ServerUnavailable, match="cannot connect"):
        svc.evaluate(EVALUATE)
    assert len(calls) == 3


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.RemoteProtocolError,
                                 httpx.ReadError, httpx.WriteError])
def test_evaluate_is_never_resent_once_it_may_have_arrived(exc: type[httpx.HTTPError]) -> None:
    """A second evaluate would spend a second guess."""
    svc, calls = service(failing(exc))
    with pytest.raises(sv.ServerUnavailable, match="may have reached"):
        svc.evaluate(EVALUATE)
    assert calls == ["/v1/evaluate"]


def test_authorize_is_never_resent_by_the_transport() -> None:
    svc, calls = service(failing(httpx.ReadTimeout))
    with pytest.raises(sv.ServerUnavailable):
        svc.authorize(AuthorizeRequest(CARD, "cd" * 16, 1, "USD", "m", "k", b"e", bytes(64)))
    assert calls == ["/v1/authorize"]


def test_info_is_resent_after_a_read_timeout() -> None:
    """Reading the server's info changes nothing, so the transport may resend it (the
    only call it resends once it may have arrived, now that there is no challenge)."""
    svc, calls = service(failing(httpx.ReadTimeout, then=INFO_OK, times=1))
    assert svc.info().guess_limit == 5
    assert calls == ["/v1/info", "/v1/info"]


def test_rate_limiter_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3.0, clock=lambda: now[0], max_clients=2)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("a") == 0.0  # one token back after 1/rate seconds
    assert limiter.take("b") == 0.0  # another address has its own bucket
    limiter.take("c")  # evicts "a", the least recently seen
    assert len(limiter._buckets) == 2 and "a" not in limiter._buckets
    assert RateLimiter.retry_after(0.2) == "1"
