"""Scenarios 13 and 14 against a real ``splitvault serve`` subprocess: slow clients
(issue 9 item 2) and shutdown with a request in flight (issue 9 item 9)."""

from __future__ import annotations

import pytest

from splitvault._attack import shutdown, slow_clients
from splitvault._attack._harness import Lab

pytestmark = pytest.mark.security



def test_attack_slow_clients(lab: Lab) -> None:
    """Scenario 13: 200 stalled connections; the device is answered and the server
    closes every one of them itself."""
    result = slow_clients.hold_connections(lab)
    assert result.passed, f"{result.attacker_got} {result.detail}"


def test_attack_shutdown_mid_request(lab: Lab) -> None:
    """Scenario 14: 503 during the drain, the request in flight answered, keys wiped
    only after the drain."""
    result = shutdown.stop_mid_request(lab)
    assert result.passed, f"{result.attacker_got} {result.detail}"
