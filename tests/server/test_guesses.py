"""The guess counter when evaluations wait for their proofs."""

from __future__ import annotations

from pathlib import Path

import pytest

import splitvault as sv
from splitvault.device._store import DeviceStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.security
def test_parallel_guesses_block_without_locking_but_abandoned_ones_lock(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """With all five guesses out and their proofs still possible (a device paying several
    times at once), a sixth evaluation is refused without locking the card; once those
    five expire unproven, the next evaluation locks it."""
    clock = Clock()
    server = sv.ShareServer.open(tmp_path / "s.db", clock=clock)
    # The device shares the server's clock: its requests are timestamped, and a
    # timestamp two minutes off the server's clock is refused.
    device = sv.Device(DeviceStore(tmp_path / "d.db"), server, kdf=sv.KdfProfile.TEST_ONLY,
                       clock=clock)
    card_id = device.enroll(card, pin)
    held = device._store.get(card_id)
    for _ in range(5):
        device._prove_pin(held, pin)
    with pytest.raises(sv.InvalidChallenge, match="in progress"):
        device._prove_pin(held, pin)
    state = server.card_state(card_id)
    assert state.guesses_used == 5 and not state.locked
    clock.now += sv.ServerProfile.DEFAULT.challenge_ttl + 1
    with pytest.raises(sv.CardLocked):
        device._prove_pin(held, pin)
    assert server.card_state(card_id).locked
    with pytest.raises(sv.CardLocked):
        device.authorize(card_id, pin, amount=100, currency="KRW", merchant="Shop",
                         idempotency_key="after")
