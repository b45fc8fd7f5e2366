"""The whole protocol over HTTP, with a real server process and a real Device."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_support import PIN, WRONG, ServerProcess, enroll, pay

import splitvault as sv

NEW_PIN = "402917"


def test_enroll_and_authorize(http_device: sv.Device) -> None:
    """A card enrolled over HTTP pays, and the device lists it without the PAN."""
    card_id = enroll(http_device)
    result = pay(http_device, card_id)
    assert result.approved and result.approval_code
    assert result.masked_pan.endswith("1111") and result.amount == 12000
    assert [c.card_id for c in http_device.cards()] == [card_id]


def test_idempotent_retry_returns_the_recorded_result(http_device: sv.Device) -> None:
    """The same key and parameters give an equal Authorization: one charge."""
    card_id = enroll(http_device)
    first = pay(http_device, card_id, key="order-42")
    assert pay(http_device, card_id, key="order-42") == first


def test_same_key_other_amount_conflicts(http_device: sv.Device) -> None:
    card_id = enroll(http_device)
    pay(http_device, card_id, key="order-7")
    with pytest.raises(sv.IdempotencyConflict):
        pay(http_device, card_id, key="order-7", amount=13000)


def test_decline_is_a_result(http_device: sv.Device) -> None:
    """Over the simulated acquirer's limit: a recorded decline, not an error."""
    card_id = enroll(http_device)
    result = pay(http_device, card_id, key="big", amount=2_000_000)
    assert not result.approved and result.decline_reason == "amount over limit"


def test_wrong_pin_counts_down_to_lock(http_device: sv.Device) -> None:
    card_id = enroll(http_device)
    left = []
    for i in range(4):
        with pytest.raises(sv.WrongPin) as caught:
            pay(http_device, card_id, WRONG, key=f"k{i}")
        left.append(caught.value.attempts_left)
    assert left == [4, 3, 2, 1]
    with pytest.raises(sv.CardLocked):  # the fifth wrong PIN locks
        pay(http_device, card_id, WRONG, key="k5")
    with pytest.raises(sv.CardLocked):
        pay(http_device, card_id, PIN, key="k6")  # the right PIN no longer helps


def test_right_pin_resets_the_count(http_device: sv.Device) -> None:
    card_id = enroll(http_device)
    for i in range(3):
        with pytest.raises(sv.WrongPin):
            pay(http_device, card_id, WRONG, key=f"w{i}")
    assert pay(http_device, card_id, key="ok").approved
    with pytest.raises(sv.WrongPin) as caught:
        pay(http_device, card_id, WRONG, key="w9")
    assert caught.value.attempts_left == 4


def test_change_pin(http_device: sv.Device) -> None:
    card_id = enroll(http_device)
    with sv.Pin.from_digits(PIN) as old, sv.Pin.from_digits(NEW_PIN) as new:
        http_device.change_pin(card_id, old, new)
    assert pay(http_device, card_id, NEW_PIN, key="after").approved
    with pytest.raises(sv.WrongPin):
        pay(http_device, card_id, PIN, key="old")


def test_delete(http_device: sv.Device, live_server: ServerProcess) -> None:
    card_id = enroll(http_device)
    http_device.delete(card_id)
    assert http_device.cards() == []
    with live_server.inspect() as server, pytest.raises(sv.UnknownCard):
        server.card_state(card_id)


def test_info(live_server: ServerProcess) -> None:
    from splitvault.hazmat import HttpShareService

    service = HttpShareService(live_server.url)
    try:
        info = service.info()
        assert (info.guess_limit, info.challenge_ttl) == (5, 60.0)
    finally:
        service.close_transport()


@pytest.mark.slow
def test_lock_persists_across_restart(own_server: ServerProcess, tmp_path: Path) -> None:
    own_server.start()
    with sv.Device.open(tmp_path / "d.db", server=own_server.url,
                        kdf=sv.KdfProfile.TEST_ONLY) as device:
        card_id = enroll(device)
        for i in range(4):
            with pytest.raises(sv.WrongPin):
                pay(device, card_id, WRONG, key=f"k{i}")
        with pytest.raises(sv.CardLocked):
            pay(device, card_id, WRONG, key="k5")
        own_server.restart()
        with pytest.raises(sv.CardLocked):
            pay(device, card_id, PIN, key="k6")
    with own_server.inspect() as server:
        assert server.card_state(card_id).locked


def test_graceful_shutdown_exit_code(own_server: ServerProcess) -> None:
    """SIGTERM: uvicorn drains, the ShareServer is closed, the process exits 0."""
    own_server.start()
    assert own_server.stop() == 0
    assert any(line.get("msg") == "Shutting down" for line in own_server.log_lines())


def test_card_state_over_http(http_device: sv.Device) -> None:
    """Device.card_state reaches a remote server: the demo's guess counter in remote mode."""
    card_id = enroll(http_device)
    assert http_device.card_state(card_id) == sv.CardState(0, 5, False)
    with pytest.raises(sv.WrongPin):
        pay(http_device, card_id, "580247", key="wrong-1")
    assert http_device.card_state(card_id).guesses_used == 1
