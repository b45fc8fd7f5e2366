"""The guess counter when evaluations wait for their proofs."""

from __future__ import annotations

from pathlib import Path

import pytest

import splitvault as sv
from splitvault.hazmat import DeviceStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.security
def test_parallel_evaluations_neither_block_nor_lock_and_abandoned_ones_neither(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """Evaluations waiting for their proofs (a device paying several times at once) are
    not guesses: more than the limit of them are granted, and once they expire unproven
    the card is still unlocked and the right PIN pays. Only wrong proofs count."""
    clock = Clock()
    server = sv.ShareServer.open(tmp_path / "s.db", clock=clock)
    # The device shares the server's clock: its requests are timestamped, and a
    # timestamp two minutes off the server's clock is refused.
    device = sv.Device(DeviceStore(tmp_path / "d.db"), server, kdf=sv.KdfProfile.TEST_ONLY,
                       clock=clock)
    card_id = device.enroll(card, pin)
    held = device._store.get(card_id)
    for _ in range(7):
        device._prove_pin(held, pin)
    state = server.card_state(card_id)
    assert state.guesses_used == 0 and not state.locked
    clock.now += sv.ServerProfile.DEFAULT.challenge_ttl + 1
    paid = device.authorize(card_id, pin, amount=100, currency="KRW", merchant="Shop",
                            idempotency_key="after")
    assert paid.approved and not server.card_state(card_id).locked
    server.close()
