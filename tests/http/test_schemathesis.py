"""Property-based API testing against the published OpenAPI document.

Schemathesis generates valid and invalid requests for every operation (bounded: 30
examples each, no shrinking). The server must never answer 5xx, must answer what the
document says (statuses, content types, bodies), must reject what the schema forbids,
and nothing it rejects may change state: the audit log and a real card's guess
counter are compared before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from http_support import ServerProcess, enroll
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import positive_data_acceptance

import splitvault as sv
from splitvault._wire import MAX_BODY
from splitvault.server._openapi import openapi_document

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_dict(openapi_document(MAX_BODY))
schema.config.generation.update(max_examples=30)
# An invalid body may also be a too large one: 413 is a correct rejection too.
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses, "413"]


def _snapshot(server: ServerProcess, card_id: str) -> tuple[int, int, bool]:
    with server.inspect() as inspect:
        state = inspect.card_state(card_id)
        return inspect.verify_audit().entries, state.guesses_used, state.locked


@pytest.fixture(scope="module")
def baseline(live_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[str, tuple[int, int, bool]]]:
    path = tmp_path_factory.mktemp("st") / "d.db"
    with sv.Device.open(path, server=live_server.url, kdf=sv.KdfProfile.TEST_ONLY) as device:
        card_id = enroll(device)
    yield card_id, _snapshot(live_server, card_id)


@schema.parametrize()
@settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_api(case: Any, live_server: ServerProcess,
             baseline: tuple[str, tuple[int, int, bool]]) -> None:
    response = case.call(base_url=live_server.url, timeout=10)
    # A well-formed request still fails here (it carries no valid signature), so the
    # "positive data is accepted" check does not apply to this API.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500
    if 400 <= response.status_code < 500 and response.status_code != 429:
        card_id, before = baseline
        assert _snapshot(live_server, card_id) == before


def test_nothing_changed(live_server: ServerProcess,
                         baseline: tuple[str, tuple[int, int, bool]]) -> None:
    card_id, before = baseline
    assert _snapshot(live_server, card_id) == before
