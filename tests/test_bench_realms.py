"""The realm benchmark (issue 13) runs and reports every number it promises.

Nothing here asserts a speed: the target's verdict is a bool either way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from splitvault._bench import realms

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("realm-processes")]


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def check_loaded(part: dict[str, Any], servers: set[str]) -> None:
    """A closed loop's figures: throughput, latency, nothing failed, CPU of every
    server process asked (and their total) and of the clients."""
    assert positive(part["auth_per_s"]) and positive(part["authorizations"])
    assert part["errors"] == 0
    assert positive(part["p50_ms"]) and part["p99_ms"] >= part["p50_ms"]
    cpu = part["server_cpu_ms_per_auth"]
    assert set(cpu) == {*servers, "total"}
    assert cpu["total"] == pytest.approx(sum(v for k, v in cpu.items() if k != "total"),
                                         abs=0.05)
    assert positive(part["clients_cpu_ms_per_auth"])


def check_alone(alone: dict[str, Any], steps: set[str]) -> None:
    """One client's payments: the total and the wall time of each server step."""
    assert positive(alone["payments"]) and positive(alone["p50_ms"])
    assert alone["errors"] == 0 and alone["error_codes"] == []
    assert set(alone["steps_p50_ms"]) == steps
    assert all(positive(ms) for ms in alone["steps_p50_ms"].values())
    assert isinstance(alone["device_p50_ms"], float)


def test_quick_run_reports_realms_against_the_single_server() -> None:
    """Quick mode: the single server, three realms with a gateway, and the same with
    realm-1 killed, each loaded and alone, with the ratio and its target; JSON-clean,
    and the table names each."""
    result = realms.run(quick=True)
    assert json.loads(json.dumps(result)) == result
    assert (result["realms_count"], result["threshold"]) == (3, 2)
    assert positive(result["ratio_to_single"])
    assert result["targets"]["ratio_min"] == realms.TARGET_RATIO
    assert isinstance(result["targets"]["ratio_met"], bool)
    all_realms = {"realm-1", "realm-2", "realm-3", "gateway-1"}
    check_loaded(result["single"], {"server"})
    check_alone(result["single"]["alone"], {"evaluate", "authorize"})
    check_loaded(result["realms"], all_realms)
    realm_steps = {"realm_evaluate", "realm_release", "gateway_authorize"}
    check_alone(result["realms"]["alone"], realm_steps)
    down = result["one_down"]
    assert down["killed"] == "realm-1"
    check_loaded(down, all_realms - {"realm-1"})
    check_alone(down["alone"], realm_steps)
    # Every device paid with realm-1 gone: it learned, and asked the spare.
    assert positive(down["first_payment_alone_ms"])
    assert down["first_payment_alone_errors"] == []
    first = down["first_payments"]
    assert first["payments"] == result["clients"] and first["errors"] == 0
    table = realms.render(result)
    assert "ratio realms / single" in table and "realm-1 killed" in table

