"""Many simultaneous evaluations on one card: the unproven budget holds over HTTP, and
none of them locks the card."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from http_support import ServerProcess, device_card, enroll, signed_evaluate

import splitvault as sv
from splitvault.hazmat import UNPROVEN_LIMIT, HttpShareService

ATTEMPTS = 50


@pytest.mark.slow
def test_fifty_parallel_guesses_get_at_most_the_limit(live_server: ServerProcess,
                                                       tmp_path: Path) -> None:
    with sv.Device.open(tmp_path / "d.db", server=live_server.url,
                        kdf=sv.KdfProfile.TEST_ONLY) as device:
        card_id = enroll(device)
        stored = device_card(device, card_id)
    barrier = threading.Barrier(ATTEMPTS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        service = HttpShareService(live_server.url, timeout=60.0)
        try:
            barrier.wait()
            service.evaluate(signed_evaluate(stored))
            outcome = "evaluated"
        except sv.VaultError as exc:
            outcome = exc.code
        finally:
            service.close_transport()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(ATTEMPTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(outcomes) == ATTEMPTS
    # An evaluation is no PIN test (PIN-derived values travel sealed): beyond the
    # unproven budget "invalid_challenge" (too many unanswered PIN checks), never a
    # lock and never more evaluations than the budget.
    assert set(outcomes) <= {"evaluated", "invalid_challenge"}
    assert outcomes.count("evaluated") <= UNPROVEN_LIMIT
    with sqlite3.connect(live_server.db) as db:
        (guesses,) = db.execute("SELECT count(*) FROM audit WHERE event = 'guess_used' "
                                "AND card_id = ?", (card_id,)).fetchone()
    assert guesses <= UNPROVEN_LIMIT
    with live_server.inspect() as server:
        state = server.card_state(card_id)
        assert not state.locked and state.attempts_left == 5
