"""The benchmark runs, reports every number, and its floor stays in step with the protocol.

Nothing here asserts a speed: timings belong to the machine and its disk, not to the code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from splitvault._bench import core
from splitvault.crypto import kdf
from splitvault.device import _pinkey

#: Every kind of operation one authorization performs. If the counter stopped seeing
#: calls, "floor == authorization" would still hold (both empty): this keeps it honest.
OPERATIONS = (
    "Argon2id", "BLAKE2b", "Ed25519 keygen", "Ed25519 sign", "Ed25519 verify", "HKDF-SHA512",
    "SHA-512", "X25519 scalarmult", "X25519 scalarmult_base", "XChaCha20-Poly1305 decrypt",
    "XChaCha20-Poly1305 encrypt", "random bytes", "ristretto255 from_hash",
    "ristretto255 is_valid_point", "ristretto255 scalar_invert", "ristretto255 scalar_random",
    "ristretto255 scalar_reduce", "ristretto255 scalarmult", "SQL BEGIN",
    "SQL BEGIN IMMEDIATE", "SQL COMMIT",
)


def positive(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def test_floor_performs_exactly_one_authorizations_operations(tmp_path: Path) -> None:
    """One floor iteration makes the same library calls and SQL statements, kind by kind,
    as one real authorization: a protocol change that adds or drops work fails here
    until the floor (and its docstring table) follows."""
    counts = core.count_operations(tmp_path)
    real = counts["authorization"]
    assert counts["floor"] == real
    assert all(real.get(name, 0) > 0 for name in OPERATIONS), real
    assert real["SQL BEGIN"] + real["SQL BEGIN IMMEDIATE"] == real["SQL COMMIT"]
    # The durable commits: the guess counted; the proof with the pending ledger row; the
    # outcome. A fourth is a protocol change to justify; fewer, a guess or an outcome
    # that is no longer written down before it matters.
    assert real["SQL BEGIN IMMEDIATE"] == 3
    assert real["Argon2id"] == 1


def test_short_run_reports_every_number(tmp_path: Path) -> None:
    """A short run returns the documented keys as JSON, with positive measurements, a
    table for people, and leaves nothing behind in its working directory."""
    result = core.run(seconds=0.2, workdir=tmp_path, interactive_runs=1)

    assert json.loads(json.dumps(result)) == result
    for key in ("inprocess_auth_per_s", "floor_auth_per_s", "ratio"):
        assert positive(result[key]), key
    for stats in result["latency_ms"].values():
        assert positive(stats["mean"]) and positive(stats["median"])
    interactive = result["interactive"]
    for key in ("pin_to_result_ms", "argon2id_ms", "argon2id_in_flow_ms", "rest_ms",
                "device_ms"):
        assert positive(interactive[key]), key
    assert all(positive(ms) for ms in interactive["server_ms"].values())
    assert positive(result["machine"]["cores"]) and result["machine"]["libsodium"]
    counts = result["counts"]
    assert positive(counts["inprocess_authorizations"]) and positive(counts["floor_iterations"])
    assert counts["floor_matches"] is True
    assert isinstance(result["targets"]["ratio_met"], bool)

    # The in-flow Argon2id timer is put back: later code derives PIN keys as before.
    assert vars(_pinkey)["argon2id"] is kdf.argon2id

    table = core.render(result)
    assert "ratio in-process / floor" in table and "Argon2id" in table
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs", [{"seconds": 0}, {"seconds": -1.0},
                                    {"interactive_runs": 0}])
def test_run_refuses_nonsense_settings(kwargs: dict[str, Any]) -> None:
    """Zero or negative durations and run counts are refused before anything runs."""
    with pytest.raises(ValueError, match="seconds must be positive"):
        core.run(**kwargs)
