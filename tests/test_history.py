"""The device's own record of its payments (``Device.history``), and ``check_server``."""

from __future__ import annotations

import pytest

import splitvault as sv
from support import OTHER_PIN, pay


def test_each_answer_is_kept_with_amount_merchant_time_and_code(
        device: sv.Device, card_id: str, pin: sv.Pin) -> None:
    approved = pay(device, card_id, pin, key="a", amount=12000, merchant=" Gift Shop ")
    [record] = device.history(card_id)
    assert record == sv.PaymentRecord(card_id, "a", approved.timestamp.timestamp(), 12000,
                                      "KRW", "Gift Shop", "approved",
                                      approved.approval_code)
    assert record.paid


def test_a_decline_keeps_its_reason(device: sv.Device, card_id: str, pin: sv.Pin) -> None:
    declined = pay(device, card_id, pin, key="big", amount=10**11)
    assert not declined.approved
    [record] = device.history(card_id)
    assert (record.outcome, record.detail) == ("declined", declined.decline_reason)
    assert not record.paid


def test_a_wrong_pin_is_kept_with_the_guesses_left_and_a_retry_replaces_it(
        device: sv.Device, card_id: str, pin: sv.Pin) -> None:
    with sv.Pin.from_digits(OTHER_PIN) as wrong, pytest.raises(sv.WrongPin):
        pay(device, card_id, wrong, key="k")
    [record] = device.history(card_id)
    assert (record.outcome, record.attempts_left) == ("wrong_pin", 4)
    pay(device, card_id, pin, key="k")  # the same payment, the right PIN
    [record] = device.history(card_id)
    assert record.outcome == "approved"


def test_a_locked_card_is_recorded_and_errors_before_an_answer_are_not(
        device: sv.Device, card_id: str) -> None:
    with sv.Pin.from_digits(OTHER_PIN) as wrong:
        for n in range(5):
            with pytest.raises((sv.WrongPin, sv.CardLocked)):
                pay(device, card_id, wrong, key=f"k{n}")
        with pytest.raises(sv.CardLocked):
            pay(device, card_id, wrong, key="after")
        with pytest.raises(sv.InvalidPayment):
            pay(device, card_id, wrong, key="bad", amount=0)
    records = device.history(card_id)
    assert records[-1].outcome == "locked" and records[-1].idempotency_key == "after"
    assert "bad" not in {r.idempotency_key for r in records}


def test_history_is_per_card_and_goes_with_the_card(
        device: sv.Device, card_id: str, card: sv.Card, pin: sv.Pin) -> None:
    other = device.enroll(card, pin)
    pay(device, card_id, pin, key="one")
    assert device.history(other) == []
    device.delete(card_id)
    with pytest.raises(sv.UnknownCard):
        device.history(card_id)


def test_check_server_passes_for_a_working_server(device: sv.Device) -> None:
    device.check_server()
