"""kill -9 at random moments: no guess is forgotten, no payment changes its answer."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from http_support import ServerProcess, device_card, enroll, pay, signed_evaluate

import splitvault as sv
from splitvault.hazmat import DeviceCard, HttpShareService

ROUNDS = 5


class Load:
    """Payments on one card and wrong-PIN guesses on another, until stopped."""

    def __init__(self, device: sv.Device, service: HttpShareService, payer: str,
                 victim: DeviceCard, tag: str) -> None:
        self.device, self.service, self.payer, self.victim, self.tag = (
            device, service, payer, victim, tag)
        self.approved: dict[str, str] = {}
        self.unknown: list[str] = []
        self.evaluations = 0  # evaluate replies this client actually received
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        locked = False
        for i in range(10_000):
            if self.stop.is_set():
                return
            key = f"{self.tag}-{i}"
            try:
                result = pay(self.device, self.payer, key=key, amount=100 + i)
                if result.approved and result.approval_code:
                    self.approved[key] = result.approval_code
            except sv.ServerUnavailable:
                self.unknown.append(key)
            if locked:
                continue
            try:
                self.service.evaluate(signed_evaluate(self.victim))
                self.evaluations += 1
            except (sv.CardLocked, sv.InvalidChallenge):
                # locked, or its unproven-evaluation budget spent: either way this card
                # grants no more evaluations for now
                locked = True
            except sv.ServerUnavailable:
                pass


@pytest.mark.slow
def test_kill_9_keeps_guesses_and_payments(own_server: ServerProcess, tmp_path: Path) -> None:
    rng = random.Random(20240611)
    # Short payment leases: a retry of a payment the killed server was charging waits
    # out its lease (then "in doubt") within the device's deadline.
    own_server.args += ["--profile", "test-only"]
    own_server.start()
    device = sv.Device.open(tmp_path / "d.db", server=own_server.url,
                            kdf=sv.KdfProfile.TEST_ONLY, timeout=5.0)
    service = HttpShareService(own_server.url, timeout=5.0)
    seen: dict[str, str] = {}
    try:
        payer = enroll(device)
        victims = [device_card(device, enroll(device)) for _ in range(ROUNDS)]
        for round_no, victim in enumerate(victims):
            load = Load(device, service, payer, victim, f"r{round_no}")
            load.thread.start()
            time.sleep(rng.uniform(0.1, 0.6))
            own_server.kill()
            load.stop.set()
            load.thread.join(60)
            own_server.start()  # same database, same port

            with own_server.inspect() as server:
                # Every evaluation the client received was counted (against the card's
                # unproven-evaluation budget) before it left: none forgotten by the kill.
                counted = server.inspector().query(
                    "SELECT unproven FROM cards WHERE card_id = ?", victim.card_id)[0][0]
                assert counted >= load.evaluations
            # Every approval the client saw is still recorded, with the same code; a key
            # whose answer was lost gets one answer, and keeps it.
            i_of = {key: int(key.rsplit("-", 1)[1]) for key in [*load.approved, *load.unknown]}
            for key, code in load.approved.items():
                again = pay(device, payer, key=key, amount=100 + i_of[key])
                assert again.approval_code == code
                seen[key] = code
            for key in load.unknown:
                answers = set()
                for _ in range(2):
                    try:
                        answers.add(pay(device, payer, key=key, amount=100 + i_of[key])
                                    .approval_code)
                    except sv.PaymentInDoubt:
                        answers.add("in doubt")
                assert len(answers) == 1, key
                assert key not in seen
    finally:
        service.close_transport()
        device.close()
        own_server.stop()
    with own_server.inspect() as server:
        server.verify_audit()
