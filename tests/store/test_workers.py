"""``splitvault serve --workers N`` over PostgreSQL: workers killed with kill -9 at random
points during a load lose no guess, charge nothing twice, and leave nothing that a
retry cannot settle; the supervisor replaces them."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import splitvault as sv

from .serve_support import Serve, upgraded_postgres

PIN = "739184"
pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _pay_until_settled(device: sv.Device, card_id: str, key: str,
                       deadline: float) -> str:
    """Retry one payment (same key) until it has an answer that is not transient."""
    while True:
        try:
            with sv.Pin.from_digits(PIN) as pin:
                auth = device.authorize(card_id, pin, amount=1200, currency="KRW",
                                        merchant="Coffee Lab", idempotency_key=key)
            return f"approved:{auth.approval_code}"
        except sv.PaymentInDoubt:
            return "in_doubt"
        except (sv.ServerUnavailable, sv.InvalidChallenge, sv.AcquirerUnavailable):
            if time.monotonic() > deadline:
                return "unsettled"
            time.sleep(0.2)


def test_kill_9_workers_under_load(tmp_path: Path) -> None:
    with upgraded_postgres(tmp_path) as (url, kek):
        serve = Serve(url, kek, tmp_path / "serve.log", "--workers", "2",
                      "--profile", "test-only")
        try:
            device = sv.Device.open(tmp_path / "dev" / "device.db", server=serve.url,
                                    kdf=sv.KdfProfile.TEST_ONLY)
            with sv.Pin.from_digits(PIN) as pin:
                card_id = device.enroll(sv.Card(pan="4111111111111111", expiry="12/30",
                                                holder="KIM MINSU"), pin)
            stop = threading.Event()
            kills = Counter[str]()
            rng = random.Random(8)

            def killer() -> None:
                while not stop.wait(rng.uniform(0.2, 0.6)) and kills["n"] < 6:
                    workers = _children(serve.proc.pid)
                    if workers:
                        os.kill(rng.choice(workers), signal.SIGKILL)
                        kills["n"] += 1
            thread = threading.Thread(target=killer)
            thread.start()
            deadline = time.monotonic() + 60
            # At least 30 payments, and on until the killer has struck twice: on a fast
            # machine 30 can all finish before its first strike.
            results: dict[str, str] = {}
            while (len(results) < 30 or kills["n"] < 2) and len(results) < 400 and (
                    time.monotonic() < deadline):
                key = f"k{len(results)}"
                results[key] = _pay_until_settled(device, card_id, key, deadline)
            stop.set()
            thread.join()
            # Every key again, after the storm: the recorded answer, never a new charge.
            again = {key: _pay_until_settled(device, card_id, key, time.monotonic() + 30)
                     for key in results}
            device.close()
        finally:
            serve.stop()
        with sv.ShareServer.open(url, kek_file=kek, create=False, announce=False) as server:
            events = Counter(str(e["event"]) for e in server.audit_entries())  # verifies
            state = server.card_state(card_id)
    print(f"kills={kills['n']} outcomes={Counter(v.split(':')[0] for v in results.values())}")
    assert kills["n"] >= 1
    assert "unsettled" not in results.values(), results
    approved = {k for k, v in results.items() if v.startswith("approved")}
    assert approved, results
    # Exactly one charge recorded per approved key, none for the others.
    assert events["authorized"] == len(approved)
    for key in approved:
        assert again[key] == results[key]  # same approval code: not charged again
    for key, value in results.items():
        if value == "in_doubt":
            assert again[key] == "in_doubt"
    assert not state.locked
