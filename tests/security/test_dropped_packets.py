"""Issue 9 item 1: a network that only drops packets must not lock the card for good.

The device never spends a guess on its own; evaluations whose proofs never arrive lock
nothing (they test no PIN: every PIN-derived value travels sealed to the server); and a
locked card comes back for its owner, with the device and the card, under a new PIN.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import splitvault as sv
from splitvault._attack import dropped_packets
from splitvault._attack._harness import Lab
from splitvault.hazmat import UNPROVEN_LIMIT, DeviceStore
from support import held

pytestmark = pytest.mark.security




def test_dropped_authorizations_do_not_lock_the_card(lab: Lab) -> None:
    """Ten attempts with the right PIN, every authorization dropped: one evaluation per
    attempt (the device never starts another on its own), the card stays unlocked and
    the right PIN then pays."""
    held(dropped_packets.drop_authorizations(lab))


def test_lost_authorization_reply_is_resent_and_gets_the_recorded_result(lab: Lab) -> None:
    """The reply to a charged authorization is lost: the device resends the same request,
    the server answers with the recorded result; one charge, one evaluation."""
    held(dropped_packets.drop_authorization_reply(lab))


def test_lost_evaluation_replies_do_not_lock_the_card(lab: Lab) -> None:
    """Twice the guess limit of evaluation replies lost after the server counted them:
    nothing locks, the right PIN then pays."""
    held(dropped_packets.drop_evaluation_replies(lab))


def test_unproven_evaluations_give_no_offline_pin_test(lab: Lab) -> None:
    """A thief with the files, the whole transcript (enrollment, payments, two PIN
    changes) and fresh evaluations of candidate PINs finds no verifier and no
    verifying signature to test a candidate against; the positive control shows the
    right candidate's key is the server's verifier."""
    held(dropped_packets.unproven_evaluations_test_nothing(lab))


def test_locked_card_comes_back_by_reenrollment(lab: Lab) -> None:
    """Locked by five wrong PINs, the card pays again after re-enrollment with the card
    and a new PIN; the old PIN and a copy of the device from before get nothing."""
    held(dropped_packets.locked_card_reenrolls(lab))


class _Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def test_unproven_budget_refuses_without_locking_and_renews(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """Past the unproven budget an evaluation is refused (not locked); after the window
    the right PIN pays."""
    clock = _Clock()
    server = sv.ShareServer.open(tmp_path / "s.db", clock=clock)
    device = sv.Device(DeviceStore(tmp_path / "d.db"), server, kdf=sv.KdfProfile.TEST_ONLY,
                       clock=clock)
    card_id = device.enroll(card, pin)
    held_card = device._store.get(card_id)
    for _ in range(UNPROVEN_LIMIT):
        device._prove_pin(held_card, pin)
    with pytest.raises(sv.InvalidChallenge, match="unanswered"):
        device._prove_pin(held_card, pin)
    assert not server.card_state(card_id).locked
    clock.now += 15 * 60 + 1
    paid = device.authorize(card_id, pin, amount=100, currency="KRW", merchant="Shop",
                            idempotency_key="after")
    assert paid.approved and server.card_state(card_id).attempts_left == 5
    server.close()
