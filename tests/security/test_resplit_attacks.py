"""Issue 12's attacks: a copy of the device from before a payment, and an old server
backup with the current device (scenarios 20 and 21 of ``splitvault attack``).

Then what R shows the network (nothing: it travels sealed to a key the PIN proof
signs, bound to one card and version), and last the guards broken on purpose (the
re-split's verdicts, the re-split's write with the approval): every attack must FAIL
then, so the attacks can tell a broken defense from a working one.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections.abc import Callable
from typing import Any

import pytest

import splitvault as sv
from splitvault._attack import device_copy, server_backup
from splitvault._attack._harness import AttackResult, Lab, Victim, pay
from splitvault._attack._needles import Needles
from splitvault._resplit import open_refresh, seal_refresh
from splitvault.crypto import envelope
from splitvault.crypto.errors import AuthenticationFailed
from splitvault.crypto.shares import combine
from splitvault.hazmat import AuthorizeRequest, SqlStore, judge_share_version
from splitvault.server import _sql  # judge, patched where the store looks it up
from support import held

pytestmark = pytest.mark.security
Attack = Callable[[Lab], AttackResult]
ATTACKS = [device_copy.copy_after_the_owner_pays, device_copy.copy_that_pays_first,
           server_backup.backup_read_with_the_kek, server_backup.backup_restored]
JUDGED = [a for a in ATTACKS if a is not server_backup.backup_read_with_the_kek]
"""The attacks that rest on the server's verdict on a presented version (reading a
backup with the KEK asks the server nothing: it rests on the re-split alone)."""


# -- 20. a copy of the device from before a payment --------------------------------------


def test_a_copy_from_before_the_owners_payments_is_refused(lab: Lab) -> None:
    """Copy the device's files, the owner pays twice, the copy pays with the right PIN:
    DeviceCloned, no evaluation returned, no guess spent, nothing charged, the card
    marked cloned and the audit log saying clone_detected."""
    held(device_copy.copy_after_the_owner_pays(lab))


def test_a_copy_that_pays_first_is_caught_and_reenrollment_cuts_it_off(lab: Lab) -> None:
    """The copy pays first; the owner's next payment is refused with DeviceCloned
    ("another copy of this device"), nothing charged, the card marked cloned; the owner
    re-enrolls and pays, and the copy, even with the new PIN, is refused
    (stale_copy_refused) without marking the card again."""
    held(device_copy.copy_that_pays_first(lab))


# -- 21. an old server backup with the current device -------------------------------------


def test_an_old_server_backup_does_not_combine_with_the_current_device(lab: Lab) -> None:
    """Every share version in a backup from before two payments, opened with the KEK,
    with every share version the device holds now: none opens the card (the live
    server's share of the device's version does: the control)."""
    held(server_backup.backup_read_with_the_kek(lab))


def test_a_restored_old_backup_refuses_the_device_and_spends_nothing(lab: Lab) -> None:
    """The server restored from that backup: the device's payment with the right PIN is
    ServerRolledBack, with no evaluation, guess, charge or ledger row, and audited; a
    device from the backup's time still pays there (the control); the owner re-enrolls
    the card there and pays again (the way back)."""
    held(server_backup.backup_restored(lab))


# -- the attacks see a broken guard ----------------------------------------------------


def _stale_is_current(version: int, floor: int, next_key: bytes | None, presented: int,
                      presented_key: bytes) -> str:
    """The guard broken: every version the server has moved past, or never made, is
    taken as current."""
    verdict = judge_share_version(version, floor, next_key, presented, presented_key)
    return "current" if verdict in ("stale", "cut_off", "ahead") else verdict


def _no_resplit(finish: Callable[..., bool]) -> Callable[..., bool]:
    """The guard broken: an approval is recorded without its re-split."""
    def finish_payment(self: SqlStore, *args: Any, **kwargs: Any) -> bool:
        kwargs["step"] = None
        return finish(self, *args, **kwargs)
    return finish_payment


@pytest.mark.parametrize("attack", JUDGED, ids=lambda a: a.__name__)
def test_the_attacks_fail_when_stale_versions_are_taken_as_current(
        lab: Lab, attack: Attack, monkeypatch: pytest.MonkeyPatch) -> None:
    """``judge`` answering "current" for a copy's version or a version the server never
    made: each attack reports FAIL (a copy pays, or the device's refusal is not the
    typed one)."""
    monkeypatch.setattr(_sql, "judge", _stale_is_current)
    result = attack(lab)
    assert not result.passed and not result.skipped, result


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.__name__)
def test_the_attacks_fail_when_an_approval_does_not_resplit(
        lab: Lab, attack: Attack, monkeypatch: pytest.MonkeyPatch) -> None:
    """``finish_payment`` dropping the re-split it was given: the shares never change,
    so a copy of the device pays and an old backup opens the card; each attack
    reports FAIL."""
    monkeypatch.setattr(SqlStore, "finish_payment", _no_resplit(SqlStore.finish_payment))
    result = attack(lab)
    assert not result.passed and not result.skipped, result


# -- what R shows the network ----------------------------------------------------------


def _held_shares(lab: Lab, owner: Victim, card_id: str) -> dict[str, bytes]:
    """Every share each side holds of the card now (unwrapped), and their XORs."""
    assert lab.server is not None
    inspector = lab.server.inspector()
    [(share, share_next, version)] = inspector.query(
        "SELECT share, share_next, share_version FROM cards WHERE card_id = ?", card_id)
    held_ = owner.device._store.get(card_id)
    out = {f"D_{held_.share_version}": held_.device_share,
           f"S_{version}": bytes(inspector.unwrap("share", card_id, bytes(share)))}
    if held_.next_share is not None:
        out[f"D_{held_.share_version + 1}"] = held_.next_share
    if share_next is not None:
        out[f"S_{int(version) + 1}"] = bytes(inspector.unwrap("share", card_id,
                                                               bytes(share_next)))
    return out


def test_r_and_the_shares_never_travel_in_the_clear(lab: Lab) -> None:
    """Over the real HTTP app, enrollment and three payments (each re-split, R sealed to
    the device's refresh key): no share of any version, no R and not the data key
    appear in any request or reply body, in any encoding."""
    owner = lab.device("owner", over_http=True)
    card_id = lab.enroll(owner)
    seen: dict[str, bytes] = {}
    for n in range(3):
        before = _held_shares(lab, owner, card_id)
        pay(owner, card_id, key=f"order-{n}")
        seen.update(before)
        seen.update(_held_shares(lab, owner, card_id))
    versions = sorted(k for k in seen if k.startswith("D_"))
    assert len(versions) >= 3  # the shares really moved on
    needles = Needles()
    for label, value in seen.items():
        needles.data(label, value)
    for a, b in itertools.pairwise(versions):
        needles.data(f"R = {a} xor {b}", combine(seen[a], seen[b]))
    needles.data("K", combine(seen["D_0"], seen["S_0"]))
    bodies = [body for bridge in lab.bridges for body in bridge.bodies]
    assert len(bodies) >= 10
    found = [hit for body in bodies for hit in needles.search(body)]
    assert found == []
    # Control: a share that did travel, hex-encoded in a body, would be found.
    assert needles.search(b'{"x": "' + seen["S_1"].hex().encode() + b'"}')


def test_a_sealed_r_opens_for_its_key_card_and_version_only() -> None:
    """R sealed to the device's refresh key for (card, version) does not open with any
    other key, for another card or for another version: a captured R cannot be moved;
    and one not tagged under the current version's token (a forgery by someone who
    knows only the refresh public key) is refused."""
    secret = secrets.token_bytes(32)
    r, token, tag_key = (secrets.token_bytes(32) for _ in range(3))
    card_id = "c" * 32
    sealed = seal_refresh(envelope.public_key(secret), r, token, tag_key, card_id, 3)
    got_r, got_token = open_refresh(secret, sealed, card_id, 3, tag_key)
    assert (bytes(got_r), bytes(got_token)) == (r, token)
    for other_secret, other_card, version in ((secrets.token_bytes(32), card_id, 3),
                                              (secret, "d" * 32, 3), (secret, card_id, 2),
                                              (secret, card_id, 4)):
        with pytest.raises(AuthenticationFailed):
            open_refresh(other_secret, sealed, other_card, version, tag_key)
    forged = seal_refresh(envelope.public_key(secret), r, token, secrets.token_bytes(32),
                          card_id, 3)
    with pytest.raises(AuthenticationFailed):
        open_refresh(secret, forged, card_id, 3, tag_key)


def test_a_refresh_key_swapped_in_flight_fails_the_proof(lab: Lab) -> None:
    """A network attacker who puts its own key in the authorization (to have R sealed to
    it) breaks the PIN proof, which signs the key: refused like a wrong PIN, nothing
    charged, no re-split drawn."""
    assert lab.server is not None
    owner = lab.device("owner")
    card_id = lab.enroll(owner)
    attacker = envelope.public_key(secrets.token_bytes(32))
    owner.wire.rewrite = lambda m: (dataclasses.replace(m, refresh_key=attacker)
                                    if isinstance(m, AuthorizeRequest) else m)
    with pytest.raises(sv.WrongPin):
        pay(owner, card_id)
    assert lab.acquirer_calls() == 0
    assert lab.server.inspector().query(
        "SELECT share_next FROM cards WHERE card_id = ?", card_id) == [(None,)]
