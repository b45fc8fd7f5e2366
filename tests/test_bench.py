"""The benchmark runs, reports every number, and its floor stays in step with the protocol.

Nothing here asserts a speed: timings belong to the machine and its disk, not to the code.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import splitvault as sv
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
    "SQL BEGIN IMMEDIATE", "SQL COMMIT", "device SQL INSERT payments",
    "device SQL UPDATE cards", "device SQL PRAGMA",
)

#: What the re-split after every approved payment (issue 12) adds to one authorization,
#: kind by kind: the floor less these is the loop as it was before it, the one whose
#: time against the full floor ``bench`` reports as the re-split's cost. The tokens and
#: the possession proof (a version proven, not just signed) are part of it: they exist
#: only because shares have versions a copy of the device could claim.
RESPLIT_OPERATIONS = {
    # Server, evaluate: the presented version judged and the last re-split committed,
    # audited, inside the evaluation's own commit.
    "SQL SELECT cards": 2,  # ...and once more for the reply's sealed R
    "SQL UPDATE cards": 2,  # share = share_next; then S_v+1 written with the approval
    "SQL UPDATE audit_head": 2, "SQL INSERT audit": 1,
    "SQL BEGIN": 1, "SQL COMMIT": 1,  # the reply's read of the card
    # BLAKE2b: the audit record of the commit (1); the possession proof, made on the
    # device (the epoch MAC and the version MAC, each a derived key and a MAC: 4) and
    # checked on the server (the version MAC only: 2); R's tag under T_v, made and
    # checked (1 + 1).
    "BLAKE2b": 9,
    # S_v+1 drawn and KEK-wrapped, T_v+1 drawn and KEK-wrapped; R, T_v+1 and the tag
    # sealed to the device's refresh key; the device's refresh secret and its public
    # half; R opened on the device. Decrypts: the presented version's token unwrapped
    # for the proof, T_v for the tag, R opened.
    "random bytes": 7, "XChaCha20-Poly1305 encrypt": 3, "XChaCha20-Poly1305 decrypt": 3,
    "X25519 scalarmult_base": 3, "X25519 scalarmult": 2, "HKDF-SHA512": 2,
    # Device: the staged share promoted (with the new refresh secret) and the old
    # share's pages checkpointed out of the WAL; this payment's share staged.
    "device SQL BEGIN IMMEDIATE": 2, "device SQL COMMIT": 2, "device SQL UPDATE cards": 2,
    "device SQL PRAGMA": 1,
}


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
    # The durable commits: the guess counted (with the last re-split committed); the
    # proof with the pending ledger row; the outcome (with this payment's re-split). A
    # fourth is a protocol change to justify; fewer, a guess or an outcome that is no
    # longer written down before it matters.
    assert real["SQL BEGIN IMMEDIATE"] == 3
    # And three on the device, in this order: the share staged by the last payment
    # promoted once the server confirmed it, in one write with this payment's refresh
    # secret (on disk before the request R is sealed for); this payment's D_v+1
    # staged; its own record of the answer (Device.history). Plus one WAL checkpoint,
    # which moves the promoted-over share's pages out of the WAL.
    assert real["device SQL BEGIN IMMEDIATE"] == real["device SQL COMMIT"] == 3
    assert real["device SQL UPDATE cards"] == 2 and real["device SQL INSERT payments"] == 1
    assert real["device SQL PRAGMA"] == 1
    assert real["Argon2id"] == 1


def test_floor_without_resplit_leaves_out_exactly_the_resplit(tmp_path: Path) -> None:
    """The second floor, whose time against the first is what ``bench`` reports as the
    re-split's cost, is one real authorization less exactly the re-split's operations:
    nothing else removed, nothing of the re-split left in."""
    counts = core.count_operations(tmp_path)
    real = Counter(counts["authorization"])
    without = Counter(counts["floor_without_resplit"])
    assert real - without == RESPLIT_OPERATIONS
    assert not without - real


def test_short_run_reports_every_number(tmp_path: Path) -> None:
    """A short run returns the documented keys as JSON, with positive measurements, a
    table for people, and leaves nothing behind in its working directory."""
    result = core.run(seconds=0.2, workdir=tmp_path, interactive_runs=1)

    assert json.loads(json.dumps(result)) == result
    for key in ("inprocess_auth_per_s", "floor_auth_per_s", "ratio"):
        assert positive(result[key]), key
    resplit = result["resplit"]
    for key in ("floor_without_auth_per_s", "inprocess_ratio_to_floor_without"):
        assert positive(resplit[key]), key
    # The cost is a difference of two timings: its sign is the machine's, not the code's.
    for key in ("cost_ms", "cost_cpu_ms", "share_of_floor"):
        assert isinstance(resplit[key], float) and math.isfinite(resplit[key]), key
    assert resplit["operations"] == RESPLIT_OPERATIONS
    assert set(result["latency_ms"]) == {"inprocess", "floor", "floor_without_resplit"}
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
    assert positive(counts["floor_without_resplit_iterations"])
    assert counts["floor_matches"] is True
    assert isinstance(result["targets"]["ratio_met"], bool)

    # The in-flow Argon2id timer is put back: later code derives PIN keys as before.
    assert vars(_pinkey)["argon2id"] is kdf.argon2id

    table = core.render(result)
    assert "ratio in-process / floor" in table and "Argon2id" in table
    assert "re-split" in table
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs", [{"seconds": 0}, {"seconds": -1.0},
                                    {"interactive_runs": 0}])
def test_run_refuses_nonsense_settings(kwargs: dict[str, Any]) -> None:
    """Zero or negative durations and run counts are refused before anything runs."""
    with pytest.raises(ValueError, match="seconds must be positive"):
        core.run(**kwargs)


# -- the parts of `splitvault bench` beyond the core: HTTP, PostgreSQL, scale ----------

#: The sections a run reports; PostgreSQL and scale may be skipped, with a reason.
SECTIONS = ("core", "keypad", "http", "realms", "postgres", "scale")


def check_http(http: dict[str, Any]) -> None:
    assert positive(http["auth_per_s"]) and positive(http["ratio_to_inprocess"])
    assert http["errors"] == 0 and positive(http["authorizations"])
    assert positive(http["p50_ms"]) and http["p99_ms"] >= http["p50_ms"]
    opened = http["open_loop"]
    assert positive(opened["rate_per_s"]) and opened["completed"] == opened["scheduled"]
    assert positive(opened["p50_ms"]) and opened["p99_ms"] >= opened["p50_ms"]
    assert isinstance(http["targets"]["ratio_met"], bool)
    assert isinstance(http["targets"]["open_p99_met"], bool)
    # The same open loop while strangers flood enrollment: every payment done, the
    # per-address cap engaged (429s) and held (issue 9 item 4).
    flood = http["enroll_flood"]
    assert flood["completed"] == flood["scheduled"] and positive(flood["p50_ms"])
    assert flood["stranger_answers"].get("429", 0) > 0
    assert flood["pending_rows_after"] <= sv.ServerProfile.DEFAULT.pending_per_origin
    assert isinstance(flood["targets"]["p50_ratio_met"], bool)


def check_postgres(pg: dict[str, Any]) -> None:
    if "skipped" in pg:
        assert isinstance(pg["skipped"], str) and pg["skipped"]
        return
    assert [r["workers"] for r in pg["runs"]] == [1, 2]
    for r in pg["runs"]:
        assert positive(r["auth_per_s"]) and r["errors"] == 0
        assert positive(r["server_cpu_ms_per_auth"]) and positive(r["p50_ms"])
        assert r["postgres_cpu_ms_per_auth"] is not None


def check_scale(scale: dict[str, Any]) -> None:
    if "skipped" in scale:
        assert isinstance(scale["skipped"], str) and scale["skipped"]
        return
    assert scale["sizes"] == sorted(scale["sizes"]) and len(scale["sizes"]) >= 2
    for size in scale["sizes"]:
        for trip in ("evaluate", "authorize"):
            stats = scale["by_size"][str(size)][trip]
            assert positive(stats["p50_ms"]) and positive(stats["count"])
    assert all(positive(r) for r in scale["p50_ratio"].values())
    assert isinstance(scale["targets"]["p50_ratio_met"], bool)


@pytest.mark.slow
def test_quick_run_of_every_part_reports_every_section() -> None:
    """`splitvault bench --quick --json` has every section: the core, the keypad, HTTP
    (closed and open loop), PostgreSQL (or why it was skipped) and scale, as JSON, and
    a table that names each."""
    from splitvault._bench import render_all, run_all

    result = run_all(quick=True)
    assert json.loads(json.dumps(result)) == result
    assert tuple(result) == (*SECTIONS, "load_average")
    check_http(result["http"])
    check_postgres(result["postgres"])
    check_scale(result["scale"])
    table = render_all(result)
    assert "open loop" in table and "Scale" in table and "PostgreSQL" in table


def test_left_out_parts_say_so() -> None:
    """A part turned off is reported as skipped with the flag that did it, not missing."""
    from splitvault._bench import run_all

    result = run_all(quick=True, http=False, keypad=False, scale=False)
    assert result["http"] == {"skipped": "left out (--no-http)"}
    assert result["postgres"] == {"skipped": "left out (--no-http)"}
    assert result["scale"] == {"skipped": "left out (--no-scale)"}
    assert result["keypad"] == {"skipped": "left out (--no-keypad)"}


def test_open_loop_counts_the_wait_behind_a_slow_reply() -> None:
    """Latency runs from each payment's scheduled arrival, not from when a client got
    to it: one client taking 20 ms per payment against arrivals every 10 ms falls
    behind, and the n-th payment's latency includes at least n x 10 ms of waiting.
    (A lower bound that sleeping guarantees: not a speed assertion.)"""
    from splitvault._bench import _load

    class Slow:
        def __init__(self) -> None:
            self.devices = [object()]

        def pay(self, n: int) -> None:
            time.sleep(0.02)

    run = _load.open_loop(Slow(), rate=100.0, duration=0.1)  # type: ignore[arg-type]
    assert len(run.latencies) == 10 and not run.errors
    assert all(lat >= 0.02 + i * 0.01 for i, lat in enumerate(run.latencies))


def test_percentiles_are_nearest_rank() -> None:
    from splitvault._bench._load import percentiles

    assert percentiles([]) == {"p50_ms": None, "p99_ms": None, "max_ms": None}
    got = percentiles([i / 1000 for i in range(1, 101)])
    assert got == {"p50_ms": 50.0, "p99_ms": 99.0, "max_ms": 100.0}


def test_scale_fill_copies_the_shape_of_an_enrolled_card(tmp_path: Path) -> None:
    """The generated cards are like the enrolled one column by column: same blob sizes
    (the wrapped OPRF key and share included), same other values, a fresh random card
    id each, all in one statement."""
    import sqlite3

    from splitvault._bench import scale

    with sv.Pin.from_digits("739184") as pin, scale._store(tmp_path, 500, pin) as store:
        path = tmp_path / "server.db"
        ids = set(store.card_ids)
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT * FROM cards").fetchall()
        names = [d[0] for d in conn.execute("SELECT * FROM cards LIMIT 1").description]
    finally:
        conn.close()
    assert len(rows) == 500 and len({r[names.index("card_id")] for r in rows}) == 500
    real = [r for r in rows if r[names.index("card_id")] in ids]
    filler = [r for r in rows if r[names.index("card_id")] not in ids]
    assert len(real) == scale.CARDS
    for name, value in zip(names, real[0], strict=True):
        column = [r[names.index(name)] for r in filler]
        if name == "card_id":
            assert all(len(c) == 32 and int(c, 16) >= 0 for c in column)
        elif isinstance(value, bytes):
            assert {len(c) for c in column} == {len(value)}, name
            assert len(set(column)) == len(column), name  # random, not one copy
        elif name != "created_at":
            assert set(column) == {value}, name
