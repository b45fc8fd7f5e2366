"""``Device.card_state``: the card's PIN state from the server, for its own device only."""

from __future__ import annotations

import dataclasses
import secrets
import time
from pathlib import Path

import pytest

import splitvault as sv
from splitvault.crypto.signing import sign
from splitvault.hazmat import CardStatusRequest
from support import PIN, pay

WRONG = "580247"


def test_state_follows_wrong_pins_and_the_lock(device: sv.Device, card_id: str,
                                               server: sv.ShareServer) -> None:
    """The device sees what the server holds: 0 wrong PINs, then 1, then locked; asking
    spends nothing."""
    assert device.card_state(card_id) == sv.CardState(0, 5, False)
    with sv.Pin.from_digits(WRONG) as wrong, pytest.raises(sv.WrongPin):
        device.authorize(card_id, wrong, amount=1000, currency="KRW", merchant="Shop",
                         idempotency_key="w-0")
    state = device.card_state(card_id)
    assert (state.guesses_used, state.attempts_left, state.locked) == (1, 4, False)
    assert device.card_state(card_id) == server.card_state(card_id)
    for i in range(1, 5):
        with sv.Pin.from_digits(WRONG) as wrong, pytest.raises((sv.WrongPin, sv.CardLocked)):
            device.authorize(card_id, wrong, amount=1000, currency="KRW", merchant="Shop",
                             idempotency_key=f"w-{i}")
    assert device.card_state(card_id).locked
    assert device.card_state(card_id).attempts_left == 0


def test_asking_spends_no_guess(device: sv.Device, card_id: str) -> None:
    for _ in range(10):
        device.card_state(card_id)
    with sv.Pin.from_digits(PIN) as pin:
        assert pay(device, card_id, pin).approved


@pytest.mark.security
def test_only_the_device_may_ask(device: sv.Device, card_id: str,
                                 server: sv.ShareServer) -> None:
    """A stranger's key and a made-up card id get the same UnknownCard; a captured
    query cannot be replayed."""
    stranger = bytearray(secrets.token_bytes(32))

    def request(cid: str, seed: bytes | bytearray) -> CardStatusRequest:
        r = CardStatusRequest(cid, secrets.token_bytes(16), int(time.time() * 1000), b"")
        return dataclasses.replace(r, signature=sign(seed, r.signed_bytes()))
    with pytest.raises(sv.UnknownCard) as known:
        server.card_status(request(card_id, stranger))
    with pytest.raises(sv.UnknownCard) as made_up:
        server.card_status(request(secrets.token_hex(16), stranger))
    assert str(known.value) == str(made_up.value)
    from splitvault.hazmat import DeviceStore  # the device's own key, from its files

    store = DeviceStore(Path(device._store.path))
    seed = store.get(card_id).sign_seed
    store.close()
    captured = request(card_id, seed)
    assert server.card_status(captured).guesses_used == 0
    with pytest.raises(sv.InvalidChallenge):
        server.card_status(captured)
