"""The re-split of the shares after every approved payment, and copies of a device.

In process, with the real stores on disk: both sides' shares are read back from their
files (``resplit_support.sides``) to check what each holds after every step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import splitvault as sv
from resplit_support import copy_device, current_opens, device_card, opens, sides
from splitvault.hazmat import DeviceStore
from support import PAN, PIN, pay


def _open(path: Path, server: Any) -> sv.Device:
    return sv.Device.open(path, server=server, kdf=sv.KdfProfile.TEST_ONLY)


@contextlib.contextmanager
def _opened(path: Path, server: Any) -> Iterator[sv.Device]:
    """A device (a copy of one, mostly) for the block, closed after it."""
    device = _open(path, server)
    try:
        yield device
    finally:
        device.close()


def _audit_events(server: sv.ShareServer) -> list[str]:
    return [str(e["event"]) for e in server.audit_entries()]


class Lossy:
    """The share server behind a network that loses replies: the request arrives and
    is acted on, and then its answer is dropped (``drop`` names the calls to drop, in
    order; each entry drops one reply)."""

    def __init__(self, server: sv.ShareServer) -> None:
        self.server = server
        self.drop: list[str] = []

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.server, name)

        def relay(*args: Any, **kwargs: Any) -> Any:
            reply = call(*args, **kwargs)
            if self.drop and self.drop[0] == name:
                self.drop.pop(0)
                raise sv.ServerUnavailable("reply lost")
            return reply
        return relay


@pytest.fixture
def lossy(server: sv.ShareServer) -> Lossy:
    return Lossy(server)


@pytest.fixture
def owner(tmp_path: Path, lossy: Lossy) -> Iterator[sv.Device]:
    dev = _open(tmp_path / "owner" / "device.db", lossy)
    yield dev
    dev.close()


@pytest.fixture
def enrolled(owner: sv.Device, card: sv.Card, pin: sv.Pin) -> str:
    return owner.enroll(card, pin)


def _owner_path(tmp_path: Path) -> Path:
    return tmp_path / "owner" / "device.db"


# -- the re-split itself --------------------------------------------------------------


def test_an_approval_resplits_both_shares_and_keeps_the_card(
        tmp_path: Path, server: sv.ShareServer, owner: sv.Device, enrolled: str,
        pin: sv.Pin) -> None:
    """After an approved payment both shares are new, the sealed card is the same, the
    new pair opens it, and no old share combines with a new one."""
    path = _owner_path(tmp_path)
    before = sides(server, path, enrolled)
    assert (before.server_version, before.device_version) == (0, 0)
    assert pay(owner, enrolled, pin).approved
    after = sides(server, path, enrolled)
    # Two versions on each side until the device shows the server it has the new one.
    assert after.versions_held == (2, 2)
    assert after.server_next is not None and after.device_next is not None
    assert after.sealed_record == before.sealed_record
    assert after.server_next != before.server_share
    assert after.device_next != before.device_share
    assert opens(after.device_next, after.server_next, after.sealed_record, enrolled)
    assert not opens(before.device_share, after.server_next, after.sealed_record, enrolled)
    assert not opens(after.device_next, before.server_share, after.sealed_record, enrolled)
    # The next request commits: one version each side again, version 1.
    assert pay(owner, enrolled, pin, key="order-2").approved
    done = sides(server, path, enrolled)
    assert done.server_version == done.device_version == 1
    assert done.device_share == after.device_next
    assert done.server_share == after.server_next
    assert current_opens(done, enrolled)
    assert owner.cards()[0].share_version == 2  # version 1, and 2 staged
    assert "shares_committed" in _audit_events(server)


def test_a_declined_payment_does_not_resplit(tmp_path: Path, server: sv.ShareServer,
                                             owner: sv.Device, enrolled: str,
                                             pin: sv.Pin) -> None:
    result = pay(owner, enrolled, pin, amount=sv.SimulatedAcquirer.DEFAULT_LIMIT + 1)
    assert not result.approved
    assert sides(server, _owner_path(tmp_path), enrolled).versions_held == (1, 1)


def test_a_retry_of_the_key_returns_the_result_without_a_second_resplit(
        tmp_path: Path, server: sv.ShareServer, owner: sv.Device, enrolled: str,
        pin: sv.Pin) -> None:
    first = pay(owner, enrolled, pin)
    once = sides(server, _owner_path(tmp_path), enrolled)
    again = pay(owner, enrolled, pin)  # same key: the recorded result
    assert again == first
    twice = sides(server, _owner_path(tmp_path), enrolled)
    # The retry's evaluation committed version 1; no new re-split was drawn.
    assert twice.server_version == 1 and twice.server_next is None
    assert twice.server_share == once.server_next
    assert len(server.acquirer.calls) == 1  # type: ignore[attr-defined]


def test_the_wallet_shows_the_share_version_and_when(tmp_path: Path, owner: sv.Device,
                                                     enrolled: str, pin: sv.Pin) -> None:
    [card] = owner.cards()
    assert (card.share_version, card.refreshed_at) == (0, None)
    pay(owner, enrolled, pin)
    [card] = owner.cards()
    assert card.share_version == 1 and card.refreshed_at is not None
    state = owner.card_state(enrolled)
    assert not state.cloned and state.share_version == 0  # the server commits next time


# -- lost replies and crashes: the payment stands, the card still pays ----------------


@pytest.mark.parametrize("lost", [["authorize"], ["authorize", "authorize"],
                                  ["evaluate"]])
def test_lost_replies_never_fail_the_card(tmp_path: Path, server: sv.ShareServer,
                                          lossy: Lossy, owner: sv.Device, enrolled: str,
                                          pin: sv.Pin, lost: list[str]) -> None:
    """A lost authorization reply (once: resent; twice: the caller sees
    ServerUnavailable) or a lost evaluation reply: the recorded result stands, the
    re-split reaches the device later, and the card pays on."""
    pay(owner, enrolled, pin)  # version 1 staged
    lossy.drop = list(lost)
    with contextlib.suppress(sv.ServerUnavailable):
        pay(owner, enrolled, pin, key="order-2")
    lossy.drop = []
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert max(s.versions_held) <= 2 and current_opens(s, enrolled)
    # The same key again gives the recorded result (or charges it now, if the lost
    # one was the evaluation); then the card goes on paying.
    second = pay(owner, enrolled, pin, key="order-2")
    assert second.approved
    for n in range(3, 6):
        assert pay(owner, enrolled, pin, key=f"order-{n}").approved
        s = sides(server, _owner_path(tmp_path), enrolled)
        assert max(s.versions_held) <= 2 and current_opens(s, enrolled)
    assert len(server.acquirer.calls) == 5  # type: ignore[attr-defined]
    assert sides(server, _owner_path(tmp_path), enrolled).server_version >= 4


def test_a_device_that_crashed_before_taking_r_gets_it_at_the_next_payment(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, enrolled: str, owner: sv.Device,
        pin: sv.Pin, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server committed the approval and its re-split; the device died before it
    stored its half (both authorization replies lost, then the app closed). Its next
    evaluation presents the refresh key it kept, and gets R again."""
    lossy.drop = ["authorize", "authorize"]
    with pytest.raises(sv.ServerUnavailable):
        pay(owner, enrolled, pin)
    owner.close()
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert s.server_next is not None and s.device_next is None
    reopened = _open(_owner_path(tmp_path), lossy)
    try:
        assert pay(reopened, enrolled, pin).approved  # the recorded result, R with it
        assert pay(reopened, enrolled, pin, key="order-2").approved
        s = sides(server, _owner_path(tmp_path), enrolled)
        assert s.server_version == 1 and current_opens(s, enrolled)
    finally:
        reopened.close()
    assert len(server.acquirer.calls) == 2  # type: ignore[attr-defined]


def test_a_crash_before_the_device_stores_its_half(tmp_path: Path, server: sv.ShareServer,
                                                   lossy: Lossy, enrolled: str,
                                                   owner: sv.Device, pin: sv.Pin,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The device's write of its new half fails (a crash at that instant): the payment
    was approved and is reported so, and the next payment finishes the re-split."""
    def crash(*args: object, **kwargs: object) -> bool:
        raise OSError("disk gone")
    monkeypatch.setattr(DeviceStore, "stage_share", crash)
    with pytest.raises(OSError):
        pay(owner, enrolled, pin)
    monkeypatch.undo()
    assert server.payment_state(enrolled, "order-1") == "approved"
    assert pay(owner, enrolled, pin).approved  # the recorded result, and R again
    assert pay(owner, enrolled, pin, key="order-2").approved
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert s.server_version == 1 and current_opens(s, enrolled)


def test_a_crash_before_the_device_promotes(tmp_path: Path, server: sv.ShareServer,
                                            enrolled: str, owner: sv.Device, pin: sv.Pin,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The server committed version 1 at the evaluation; the device died before it
    dropped its old half. It presents version 1 again and is current."""
    pay(owner, enrolled, pin)

    def crash(*args: object, **kwargs: object) -> bool:
        raise OSError("power cut")
    monkeypatch.setattr(DeviceStore, "promote_share", crash)
    with pytest.raises(OSError):
        pay(owner, enrolled, pin, key="order-2")
    monkeypatch.undo()
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert (s.server_version, s.device_version) == (1, 0) and current_opens(s, enrolled)
    assert pay(owner, enrolled, pin, key="order-2").approved
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert s.device_version == 1 and current_opens(s, enrolled)


def test_a_server_crash_before_the_approval_commits_leaves_no_resplit(
        tmp_path: Path, server: sv.ShareServer, enrolled: str, owner: sv.Device,
        pin: sv.Pin) -> None:
    """The approval and its re-split are one transaction: when it fails, neither is
    there (the payment is in doubt, as before), and the shares are as they were."""
    with server.inspector().failing("finish_payment", lambda: OSError("disk full")), \
            pytest.raises(sv.PaymentInDoubt):
        pay(owner, enrolled, pin)
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert s.versions_held == (1, 1) and current_opens(s, enrolled)
    assert pay(owner, enrolled, pin, key="order-2").approved


# -- copies of the device -------------------------------------------------------------


def test_a_copy_from_before_a_payment_cannot_pay_after_it(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    """Copy the device's files, pay with the original (and once more, so the server
    commits the re-split), then the copy with the right PIN: refused before any PIN is
    evaluated, nothing charged, the card marked and the owner told."""
    copy_path = copy_device(_owner_path(tmp_path), tmp_path / "copy")
    pay(owner, enrolled, pin)
    pay(owner, enrolled, pin, key="order-2")
    calls = len(server.acquirer.calls)  # type: ignore[attr-defined]
    guesses = server.card_state(enrolled).guesses_used
    with _opened(copy_path, lossy) as copy, pytest.raises(sv.DeviceCloned):
        pay(copy, enrolled, pin, key="thief-1")
    assert len(server.acquirer.calls) == calls  # type: ignore[attr-defined]
    state = server.card_state(enrolled)
    assert state.cloned and state.guesses_used == guesses
    assert "clone_detected" in _audit_events(server)
    # The card is refused to every copy, the owner's too, until re-enrolled.
    with pytest.raises(sv.DeviceCloned):
        pay(owner, enrolled, pin, key="order-3")
    assert owner.card_state(enrolled).cloned


def test_a_copy_is_caught_when_no_resplit_waits(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    """The owner's approval, then a decline (whose evaluation commits the re-split and
    draws none): the server is at version 1 with nothing waiting, and the copy, at 0,
    is caught all the same."""
    copy_path = copy_device(_owner_path(tmp_path), tmp_path / "copy")
    pay(owner, enrolled, pin)
    assert not pay(owner, enrolled, pin, key="big",
                   amount=sv.SimulatedAcquirer.DEFAULT_LIMIT + 1).approved
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert (s.server_version, s.server_next) == (1, None)
    with _opened(copy_path, lossy) as copy, pytest.raises(sv.DeviceCloned):
        pay(copy, enrolled, pin, key="thief-1")
    assert server.card_state(enrolled).cloned


def test_a_copy_that_pays_first_makes_the_owner_stale(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    copy_path = copy_device(_owner_path(tmp_path), tmp_path / "copy")
    with _opened(copy_path, lossy) as copy:
        assert pay(copy, enrolled, pin, key="thief-1").approved
        assert pay(copy, enrolled, pin, key="thief-2").approved  # commits version 1
    with pytest.raises(sv.DeviceCloned, match="another copy of this device"):
        pay(owner, enrolled, pin)
    assert server.card_state(enrolled).cloned


def test_a_copy_during_a_waiting_resplit_is_caught(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    """The copy is taken before a payment whose re-split is still waiting (the owner
    has not talked to the server since): it presents the old version without the key
    the re-split was sealed to, so it is a copy, even before the owner commits."""
    copy_path = copy_device(_owner_path(tmp_path), tmp_path / "copy")
    pay(owner, enrolled, pin)
    with _opened(copy_path, lossy) as copy, pytest.raises(sv.DeviceCloned):
        pay(copy, enrolled, pin, key="thief-1")
    assert len(server.acquirer.calls) == 1  # type: ignore[attr-defined]


def test_reenrolling_brings_the_owner_back_and_cuts_every_copy_off(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin, card: sv.Card) -> None:
    copy_path = copy_device(_owner_path(tmp_path), tmp_path / "copy")
    with _opened(copy_path, lossy) as copy:
        pay(copy, enrolled, pin, key="thief-1")
        pay(copy, enrolled, pin, key="thief-2")
        with pytest.raises(sv.DeviceCloned):
            pay(owner, enrolled, pin)
        with sv.Pin.from_digits("602913") as new_pin:
            owner.reenroll(enrolled, sv.Card(pan=PAN, expiry="12/30", holder="KIM MINSU"),
                           new_pin)
            assert pay(owner, enrolled, new_pin, key="after").approved
            state = server.card_state(enrolled)
            assert not state.cloned
            # The copy, at any version it held, is below the re-enrollment's floor:
            # refused, and the card is not marked again (the owner pays on).
            with pytest.raises(sv.DeviceCloned):
                pay(copy, enrolled, new_pin, key="thief-3")
            assert not server.card_state(enrolled).cloned
            assert pay(owner, enrolled, new_pin, key="after-2").approved
    assert "stale_copy_refused" in _audit_events(server)


def test_delete_removes_every_version(tmp_path: Path, server: sv.ShareServer,
                                      owner: sv.Device, enrolled: str, pin: sv.Pin) -> None:
    pay(owner, enrolled, pin)  # two versions on each side now
    owner.delete(enrolled)
    assert server.inspector().query("SELECT count(*) FROM cards") == [(0,)]
    store = DeviceStore(_owner_path(tmp_path))
    try:
        with pytest.raises(sv.UnknownCard):
            store.get(enrolled)
    finally:
        store.close()


# -- an old server backup ----------------------------------------------------------------


def _restore(db: Path, backup: Path) -> None:
    """Put a copy of the server's SQLite files (``copy_device``) back in place."""
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
        source = backup.with_name(backup.name + suffix)
        if source.exists():
            source.replace(db.with_name(db.name + suffix))


def _backed_up_then_paid(tmp_path: Path, card: sv.Card, pin: sv.Pin, payments: int
                         ) -> tuple[sv.Device, Lossy, str, Path]:
    """Enroll, back the server's store up, pay ``payments`` times, stop the server:
    the device (talking through a ``Lossy`` whose ``server`` can be swapped), the
    card, and the backup."""
    db = tmp_path / "server.db"
    net = Lossy(sv.ShareServer.open(db))
    device = _open(tmp_path / "d" / "device.db", net)
    card_id = device.enroll(card, pin)
    net.server.close()
    backup = copy_device(db, tmp_path / "backup")
    net.server = sv.ShareServer.open(db)
    for n in range(payments):
        pay(device, card_id, pin, key=f"order-{n}")
    return device, net, card_id, backup


def test_an_old_server_backup_does_not_combine_with_the_current_device(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """A backup of the server's database from before two payments, restored: its share
    no longer combines with the device's, and the device says so
    (``ServerRolledBack``) without spending or charging anything."""
    device, net, card_id, backup = _backed_up_then_paid(tmp_path, card, pin, 2)
    now = sides(net.server, tmp_path / "d" / "device.db", card_id)
    net.server.close()
    _restore(tmp_path / "server.db", backup)
    net.server = restored = sv.ShareServer.open(tmp_path / "server.db")
    try:
        old = sides(restored, tmp_path / "d" / "device.db", card_id)
        assert old.server_version == 0
        assert not opens(now.device_share, old.server_share, now.sealed_record, card_id)
        with pytest.raises(sv.ServerRolledBack):
            pay(device, card_id, pin, key="order-3")
        assert restored.card_state(card_id).guesses_used == 0
        assert restored.payment_state(card_id, "order-3") is None
    finally:
        device.close()
        restored.close()


def test_a_server_that_lost_only_the_waiting_resplit_is_gone_back_to(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """Restored to just before an approval whose re-split the device has not confirmed:
    the device still holds its old half (two versions until both sides confirm) and
    goes back to it; the card pays on."""
    device, net, card_id, backup = _backed_up_then_paid(tmp_path, card, pin, 1)
    net.server.close()
    _restore(tmp_path / "server.db", backup)
    net.server = restored = sv.ShareServer.open(tmp_path / "server.db")
    try:
        assert pay(device, card_id, pin, key="order-2").approved
        s = sides(restored, tmp_path / "d" / "device.db", card_id)
        assert current_opens(s, card_id)
    finally:
        device.close()
        restored.close()


# -- the property: after any sequence of payments, crashes and retries -----------------

_STEPS = st.lists(st.sampled_from([
    "pay", "pay", "retry", "decline", "lose_authorize", "lose_authorize_twice",
    "lose_evaluate", "crash_stage", "crash_promote", "reopen",
]), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=_STEPS)
def test_d_current_xor_s_current_is_always_the_data_key(
        steps: list[str], card: sv.Card, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever happens (approvals, declines, retries, lost replies, the device dying
    at either of its writes, reopening), the device's share of the server's current
    version XOR the server's share is the key the card is sealed under, neither side
    keeps more than two versions, and the card pays afterwards."""
    crash: dict[str, int] = {"stage_share": 0, "promote_share": 0}
    for name in crash:
        real = getattr(DeviceStore, name)

        def faulty(self: DeviceStore, *args: Any, _name: str = name, _real: Any = real,
                   **kwargs: Any) -> Any:
            if crash[_name]:
                crash[_name] -= 1
                raise OSError(f"crash in {_name}")
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(DeviceStore, name, faulty)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        server = sv.ShareServer.open(root / "server.db")
        net = Lossy(server)
        path = root / "d" / "device.db"
        device = _open(path, net)
        keys: dict[str, int] = {}  # idempotency key -> its amount
        try:
            with sv.Pin.from_digits(PIN) as pin:
                card_id = device.enroll(card, pin)
                for n, step in enumerate(steps):
                    if step == "reopen":
                        device.close()
                        device = _open(path, net)
                        continue
                    if step == "crash_stage":
                        crash["stage_share"] = 1
                    elif step == "crash_promote":
                        crash["promote_share"] = 1
                    elif step.startswith("lose_"):
                        net.drop = {"lose_authorize": ["authorize"],
                                    "lose_authorize_twice": ["authorize", "authorize"],
                                    "lose_evaluate": ["evaluate"]}[step]
                    key = next(iter(keys)) if step == "retry" and keys else f"k{n}"
                    amount = keys.get(key, sv.SimulatedAcquirer.DEFAULT_LIMIT + 1
                                      if step == "decline" else 1000)
                    with contextlib.suppress(sv.ServerUnavailable, OSError):
                        pay(device, card_id, pin, key=key, amount=amount)
                    keys[key] = amount
                    net.drop = []
                    crash.update(stage_share=0, promote_share=0)
                    s = sides(server, path, card_id)
                    assert s.versions_held[0] <= 2 and s.versions_held[1] <= 2
                    assert current_opens(s, card_id), (step, s.server_version,
                                                       s.device_version)
                for last in ("final-1", "final-2"):
                    assert pay(device, card_id, pin, key=last, amount=1000).approved
                assert current_opens(sides(server, path, card_id), card_id)
                assert not server.card_state(card_id).cloned
        finally:
            device.close()
            server.close()


def test_a_device_store_from_before_the_resplit_is_upgraded_on_open(tmp_path: Path) -> None:
    """A store written before the re-split's columns existed opens, gains them (version
    0, nothing staged) and keeps its cards."""
    import sqlite3

    path = tmp_path / "old" / "device.db"
    path.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE cards (card_id TEXT PRIMARY KEY, state TEXT NOT NULL CHECK (state IN
        ('pending', 'active')), brand TEXT NOT NULL, last4 TEXT NOT NULL, expiry TEXT NOT NULL,
        sealed_record BLOB NOT NULL, device_share BLOB NOT NULL, sign_seed BLOB NOT NULL,
        device_secret BLOB NOT NULL, salt BLOB NOT NULL, kdf_t INTEGER NOT NULL,
        kdf_m INTEGER NOT NULL, kdf_p INTEGER NOT NULL, server_key BLOB NOT NULL,
        security_phrase TEXT, created_at REAL NOT NULL) STRICT;
        INSERT INTO cards VALUES ('ab', 'active', 'visa', '1111', '12/30', x'00', x'11',
        x'22', x'33', x'44', 1, 8, 1, x'55', NULL, 0);
    """)
    conn.close()
    path.chmod(0o600)
    store = DeviceStore(path)
    try:
        card = store.get("ab")
        assert (card.share_version, card.next_share, card.refresh_secret) == (0, None, None)
        assert card.device_share == b"\x11"
    finally:
        store.close()


def test_reenroll_refuses_a_different_card(tmp_path: Path, server: sv.ShareServer,
                                           owner: sv.Device, enrolled: str,
                                           pin: sv.Pin) -> None:
    """Re-enrollment is for the card enrolled under the id: another card (other last
    four digits) is refused before anything is sent, and the card is as it was."""
    before = sides(server, _owner_path(tmp_path), enrolled)
    other = sv.Card(pan="5555 5555 5555 4444", expiry="12/30", holder="KIM MINSU")
    with sv.Pin.from_digits("602913") as new_pin, pytest.raises(sv.InvalidCard,
                                                                 match="ending 1111"):
        owner.reenroll(enrolled, other, new_pin)
    assert sides(server, _owner_path(tmp_path), enrolled) == before
    assert pay(owner, enrolled, pin).approved


# -- copies that lie (the review's findings F1-F5) --------------------------------------


def _tamper_device(path: Path, **columns: object) -> None:
    """Rewrite columns of the copy's card row, as someone running changed code would."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        for name, value in columns.items():
            conn.execute(f"UPDATE cards SET {name} = ?", (value,))  # noqa: S608 (test)
        conn.commit()
    finally:
        conn.close()


def _evaluate_as(card: Any, server: Any, *, version: int, refresh_key: bytes = b"",
                 proof_card: Any = None) -> Any:
    """An evaluation request built by hand with the copy's device key, presenting
    ``version`` (and ``refresh_key``), its possession proof made from ``proof_card``."""
    import dataclasses
    import secrets
    import time

    from splitvault.crypto.signing import sign
    from splitvault.hazmat import BlindedPin, EvaluateRequest, device_possession

    with sv.Pin.from_digits(PIN) as pin, BlindedPin(card.card_id, pin) as blinded:
        request = EvaluateRequest(card.card_id, secrets.token_bytes(16),
                                  int(time.time() * 1000), blinded.blinded, b"", version,
                                  refresh_key)
        request = dataclasses.replace(request, signature=sign(card.sign_seed,
                                                               request.signed_bytes()))
        request = dataclasses.replace(request, possession=device_possession(
            proof_card or card, request))
        return server.evaluate(request)


def test_a_copy_claiming_a_version_it_never_held_gets_nothing(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    """A copy from before a payment, running changed code, claims the waiting version
    (v+1) or the current one with a made-up token: refused before any evaluation, no
    commit (the owner's re-split still waits), nothing marked, recorded; the owner pays
    on. (F1: a signed version alone proved nothing, since a copy has the device key.)"""
    copy_path = copy_device(_owner_path(tmp_path), tmp_path / "copy")
    pay(owner, enrolled, pin)  # version 1 waits for the owner
    stolen = device_card(copy_path, enrolled)
    liar = dataclasses.replace(stolen, next_share=bytes(32),
                               next_token=secrets.token_bytes(32))
    with pytest.raises(sv.DeviceCloned):  # the waiting version: would have committed it
        _evaluate_as(stolen, server, version=1, proof_card=liar)
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert (s.server_version, s.server_next is not None) == (0, True)
    # A decline commits version 1 and draws none: the copy now claims the current one.
    assert not pay(owner, enrolled, pin, key="big",
                   amount=sv.SimulatedAcquirer.DEFAULT_LIMIT + 1).approved
    with pytest.raises(sv.DeviceCloned):
        _evaluate_as(dataclasses.replace(stolen, share_version=1), server, version=1,
                     proof_card=dataclasses.replace(stolen, share_version=1,
                                                    share_token=secrets.token_bytes(32)))
    assert not server.card_state(enrolled).cloned
    assert _audit_events(server).count("share_proof_failed") == 2
    assert pay(owner, enrolled, pin, key="order-2").approved
    assert current_opens(sides(server, _owner_path(tmp_path), enrolled), enrolled)


def test_a_copy_with_the_owners_refresh_key_from_a_dump_cannot_take_the_resend(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    """The owner's refresh public key is in the server's database; a copy from before
    the payment presents it with version v (to be taken for the owner whose reply was
    lost): without the key's secret its proof fails, and it is refused. (F3.)"""
    copy_path = copy_device(_owner_path(tmp_path), tmp_path / "copy")
    lossy.drop = ["authorize", "authorize"]
    with pytest.raises(sv.ServerUnavailable):
        pay(owner, enrolled, pin)
    [(owner_key,)] = server.inspector().query(
        "SELECT refresh_key FROM cards WHERE card_id = ?", enrolled)
    stolen = device_card(copy_path, enrolled)
    forger = dataclasses.replace(stolen, refresh_secret=secrets.token_bytes(32))
    calls = len(server.acquirer.calls)  # type: ignore[attr-defined]
    with pytest.raises(sv.DeviceCloned):
        _evaluate_as(stolen, server, version=0, refresh_key=bytes(owner_key),
                     proof_card=forger)
    assert len(server.acquirer.calls) == calls  # type: ignore[attr-defined]
    assert not server.card_state(enrolled).cloned
    assert pay(owner, enrolled, pin).approved  # the owner still gets its R


def test_an_owners_request_held_back_and_delivered_late_does_not_mark_the_card(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    """An on-path attacker (or a queue) holds the owner's evaluation, the owner pays
    again, and the held request arrives: it presents a version the server has moved
    past, but it was sent before that: refused as late, the card not marked. (F2.)"""
    held: list[Any] = []
    real = server.evaluate

    def hold_first(request: Any) -> Any:
        if not held:
            held.append(request)
            raise sv.ServerUnavailable("held back")
        return real(request)
    pay(owner, enrolled, pin)  # approved before: a re-split waits with its key
    lossy.evaluate = hold_first  # type: ignore[attr-defined]
    with pytest.raises(sv.ServerUnavailable):
        pay(owner, enrolled, pin, key="order-2")  # this evaluation is held back
    assert pay(owner, enrolled, pin, key="order-2").approved
    with pytest.raises(sv.InvalidChallenge, match="sent before"):
        real(held[0])
    assert not server.card_state(enrolled).cloned
    assert pay(owner, enrolled, pin, key="order-3").approved


def test_after_reenrollment_a_copy_cannot_mark_the_card_again(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin, card: sv.Card) -> None:
    """Re-enrollment gives the card a new token: a copy that claims the new versions
    (it knows the numbers: the device key gets them from card_status) has no proof,
    and is refused without marking the card; the owner pays on. (F4.)"""
    copy_path = copy_device(_owner_path(tmp_path), tmp_path / "copy")
    with _opened(copy_path, lossy) as copy:
        pay(copy, enrolled, pin, key="thief-1")
        pay(copy, enrolled, pin, key="thief-2")
    with sv.Pin.from_digits("602913") as new_pin:
        owner.reenroll(enrolled, card, new_pin)
        pay(owner, enrolled, new_pin, key="after-1")
        pay(owner, enrolled, new_pin, key="after-2")
        floor = owner.card_state(enrolled).share_version
        stolen = device_card(copy_path, enrolled)
        for version in range(floor - 1, floor + 2):
            with pytest.raises(sv.DeviceCloned):
                _evaluate_as(stolen, server, version=version)
        assert not server.card_state(enrolled).cloned
        assert pay(owner, enrolled, new_pin, key="after-3").approved


def test_a_forged_resplit_is_refused_by_the_device(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    """A proxy that knows the device's refresh public key seals its own R' to it: the
    tag under the current version's token fails, the device keeps its share, and the
    real R comes with the next evaluation. (F5.)"""
    from splitvault.hazmat import seal_refresh

    real = server.authorize

    def forge(request: Any) -> Any:
        reply = real(request)
        fake = seal_refresh(request.refresh_key, secrets.token_bytes(32),
                            secrets.token_bytes(32), secrets.token_bytes(32),
                            request.card_id, reply.share_version + 1)
        return dataclasses.replace(reply, refresh=fake)
    lossy.authorize = forge  # type: ignore[attr-defined]
    assert pay(owner, enrolled, pin).approved
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert s.device_next is None and s.server_next is not None  # not taken
    lossy.authorize = real  # type: ignore[attr-defined]
    assert pay(owner, enrolled, pin, key="order-2").approved
    assert pay(owner, enrolled, pin, key="order-3").approved
    s = sides(server, _owner_path(tmp_path), enrolled)
    assert s.server_version >= 1 and current_opens(s, enrolled)


def test_an_authorization_held_back_and_released_later_does_not_mark_the_owner(
        tmp_path: Path, server: sv.ShareServer, lossy: Lossy, owner: sv.Device,
        enrolled: str, pin: sv.Pin) -> None:
    """An on-path attacker holds the owner's authorization (both tries), the owner pays
    again at once, and the attacker releases the held one within its challenge's life:
    it lands between the second payment's evaluation and its authorization, is
    approved and writes its re-split, sealed to the key of the first try (the second's
    approval then draws none). The device kept that key (a request sent with it could
    still be settled) and used it again, so the second reply brings that R, and the
    card is never taken for a copy. (Second review, F-A.)"""
    held: list[Any] = []
    real = server.authorize

    def hold(request: Any) -> Any:
        held.append(request)
        raise sv.ServerUnavailable("held back")

    def release_then(request: Any) -> Any:
        assert real(held[0]).authorization.approved  # released late: approved
        lossy.authorize = real  # type: ignore[attr-defined]
        return real(request)
    lossy.authorize = hold  # type: ignore[attr-defined]
    with pytest.raises(sv.ServerUnavailable):
        pay(owner, enrolled, pin, key="order-1")
    lossy.authorize = release_then  # type: ignore[attr-defined]
    assert pay(owner, enrolled, pin, key="order-2").approved
    for key in ("order-3", "order-4", "order-1"):
        assert pay(owner, enrolled, pin, key=key).approved
    assert not server.card_state(enrolled).cloned
    assert current_opens(sides(server, _owner_path(tmp_path), enrolled), enrolled)


def test_enrollment_and_reenrollment_need_the_first_versions_token(
        tmp_path: Path, server: sv.ShareServer, owner: sv.Device, enrolled: str) -> None:
    """A server half without its token (a share alone) is refused at enrollment and at
    re-enrollment: nobody holding the device key can take a card back to the tokenless
    form, where versions need no proof. (Second review, F-C.) Both finish an
    enrollment through the one opener of the sealed half, called here directly."""
    opener = server._enrollment._wrapped_share  # type: ignore[attr-defined]
    with pytest.raises(sv.TamperedData):
        opener(_sealed_half(server, b"\x01" * 32, b"aad"), b"aad", enrolled)
    share, token = opener(_sealed_half(server, b"\x01" * 64, b"aad"), b"aad", enrolled)
    assert share and token


def _sealed_half(server: sv.ShareServer, half: bytes, aad: bytes) -> bytes:
    from splitvault.crypto.envelope import seal_envelope

    return seal_envelope(server._keys.x25519_public, half, aad)  # type: ignore[attr-defined]
