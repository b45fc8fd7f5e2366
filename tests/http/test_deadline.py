"""Issue 9 item 9, device side: every device request has a total deadline. A hostile
server that trickles its reply one byte every 0.2 s (each byte well inside any
per-read timeout) is cut off: the call raises ``ServerUnavailable`` and the server
sees the device close the connection while it still had bytes to send.

No timing asserts: the server would trickle for 12 s, the device's timeout is 1 s, and
the only bound checked is that the call ended before the server ran out of bytes,
which the server itself observes."""

from __future__ import annotations

import pytest

import splitvault as sv
from splitvault._attack import hostile_server
from splitvault._attack.hostile_server import TrickleServer, call_info

pytestmark = pytest.mark.security


@pytest.mark.parametrize("body", [False, True], ids=["headers", "body"])
def test_a_trickled_reply_is_cut_off_at_the_deadline(body: bool) -> None:
    """The device gives up with ServerUnavailable; the server saw the close first."""
    with TrickleServer(body=body) as server:
        raised, ended = call_info(server.url, timeout=1.0)
        seen = list(server.connections)
    assert ended, "the device was still waiting when the test gave up"
    assert raised == "ServerUnavailable"
    assert seen, "the device never connected"
    for connection in seen:
        assert connection.closed_by_device and not connection.finished
        assert connection.sent > 0  # it did trickle: the deadline, not a read timeout


def test_the_deadline_covers_retries_too() -> None:
    """``info`` is retried after a dropped connection; the retries share the one
    deadline, so the server sees at most the retry budget of connections, each cut."""
    with TrickleServer() as server:
        service = sv.device._http.HttpShareService(server.url, timeout=1.0)
        try:
            with pytest.raises(sv.ServerUnavailable):
                service.info()
        finally:
            service.close_transport()
        seen = list(server.connections)
    assert 1 <= len(seen) <= 1 + sv.device._http.CONNECT_RETRIES
    assert all(c.closed_by_device and not c.finished for c in seen)


def test_attack_trickle_headers() -> None:
    """Scenario 12: the trickled header block does not hold the device."""
    result = hostile_server.trickle_headers()
    assert result.passed, result.attacker_got


def test_attack_trickle_body() -> None:
    """Scenario 12: the trickled body does not hold the device."""
    result = hostile_server.trickle_body()
    assert result.passed, result.attacker_got
