"""Three realms and a gateway as real ``serve`` processes on 127.0.0.1 (SQLite stores):
a device enrolls and pays through them over HTTP, while realms are killed with
SIGKILL and restarted. Issue 13's availability tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import splitvault as sv
from splitvault._deployment import Deployment, Endpoint
from splitvault.device._http import HttpGateway, HttpRealm

sys.path.append(str(Path(__file__).resolve().parents[1] / "http"))
from http_support import ServerProcess  # tests/http is not a package: on the path above

pytestmark = pytest.mark.xdist_group("realm-processes")

PIN = "402917"


@dataclass
class Rig:
    realms: list[ServerProcess]
    gateway: ServerProcess
    deployment: Deployment
    path: Path
    root: Path

    def device(self, name: str = "device.db", timeout: float = 3.0) -> sv.Device:
        return sv.Device.open(self.root / name, server=self.deployment, timeout=timeout,
                              kdf=sv.KdfProfile.TEST_ONLY)

    def charged(self, card_id: str, key: str) -> str | None:
        """The gateway's ledger state for one payment, read from its database."""
        with sv.ShareServer.open(self.gateway.db, kek_file=self.gateway.kek,
                                 announce=False, create=False) as server:
            return server.payment_state(card_id, key)

    def unproven(self, index: int, card_id: str) -> int:
        """Evaluations realm ``index`` counted since the card's last correct PIN."""
        proc = self.realms[index]
        with sv.ShareServer.open(proc.db, kek_file=proc.kek, announce=False,
                                 create=False) as server:
            card = server.store.card(card_id)
            assert card is not None
            return card.unproven

    def realm_holds(self, index: int, card_id: str) -> bool:
        proc = self.realms[index]
        with sv.ShareServer.open(proc.db, kek_file=proc.kek, announce=False,
                                 create=False) as server:
            return server.store.card(card_id) is not None


def _info_keys(realms: list[ServerProcess], gateway: ServerProcess) -> Deployment:
    endpoints = []
    for i, proc in enumerate(realms, 1):
        client = HttpRealm(proc.url)
        try:
            endpoints.append(Endpoint(f"realm-{i}", proc.url, client.realm_info().realm_key))
        finally:
            client.close_transport()
    client_g = HttpGateway(gateway.url)
    try:
        gw = Endpoint("gateway-1", gateway.url, client_g.gateway_info().gateway_key)
    finally:
        client_g.close_transport()
    return Deployment(tuple(endpoints), (gw,), 2)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("realms")
    path = root / "deployment.json"
    # Every server follows the file, which is written once they are all up (as
    # 'splitvault deployment init' does).
    realms = [ServerProcess(root / f"realm-{i}", "--role", "realm", "--deployment", str(path))
              for i in range(1, 4)]
    gateway = ServerProcess(root / "gateway", "--role", "gateway", "--deployment", str(path))
    started: list[ServerProcess] = []
    try:
        for proc in (*realms, gateway):
            started.append(proc.start())
        deployment = _info_keys(realms, gateway)
        deployment.save(path)
        yield Rig(realms, gateway, Deployment.load(path), path, root)
    finally:
        for proc in started:
            proc.stop()


def _card() -> sv.Card:
    return sv.Card(pan="4111111111111111", expiry="12/30", holder="KIM MINJI")


def _pay(device: sv.Device, card_id: str, key: str, amount: int = 12_000) -> sv.Authorization:
    with sv.Pin.from_digits(PIN) as pin:
        return device.authorize(card_id, pin, amount=amount, currency="KRW",
                                merchant="Gangnam Coffee", idempotency_key=key)


def test_pay_with_a_realm_killed_and_back(rig: Rig) -> None:
    """Enroll, pay; kill -9 one realm, pay; restart it, pay; kill another, pay: every
    payment approved, each key charged once (a retry gets the recorded answer)."""
    with rig.device() as device:
        with sv.Pin.from_digits(PIN) as pin:
            card_id = device.enroll(_card(), pin)
        assert all(rig.realm_holds(i, card_id) for i in range(3))
        first = _pay(device, card_id, "order-1")
        assert first.approved
        rig.realms[0].kill()
        try:
            second = _pay(device, card_id, "order-2")
            assert second.approved
            again = _pay(device, card_id, "order-2")
            assert again.approval_code == second.approval_code
        finally:
            rig.realms[0].start()
        assert _pay(device, card_id, "order-3").approved
        rig.realms[1].kill()
        try:
            assert _pay(device, card_id, "order-4").approved
        finally:
            rig.realms[1].start()
        states = [rig.charged(card_id, f"order-{i}") for i in range(1, 5)]
    assert states == ["approved"] * 4


def test_two_realms_down_is_refused_cleanly(rig: Rig) -> None:
    """Two of three down: ServerUnavailable naming both, the gateway never asked
    (nothing charged), and the card pays again once one is back."""
    with rig.device("two-down.db") as device:
        with sv.Pin.from_digits(PIN) as pin:
            card_id = device.enroll(_card(), pin)
        rig.realms[0].kill()
        rig.realms[2].kill()
        try:
            with pytest.raises(sv.ServerUnavailable) as refused:
                _pay(device, card_id, "refused-1")
            assert "realm-1" in str(refused.value) and "realm-3" in str(refused.value)
            assert "realm-2" not in str(refused.value)
            assert rig.charged(card_id, "refused-1") is None
            # Known down now: the next tries spend nothing at the realm that answers.
            spent = rig.unproven(1, card_id)
            assert spent <= 1
            for _ in range(3):
                with pytest.raises(sv.ServerUnavailable, match="No guess was spent"):
                    _pay(device, card_id, "refused-1")
            assert rig.unproven(1, card_id) == spent
        finally:
            rig.realms[0].start()
            rig.realms[2].start()
        assert _pay(device, card_id, "refused-1").approved
        assert rig.charged(card_id, "refused-1") == "approved"


def test_a_realm_down_at_enrollment_catches_up(rig: Rig) -> None:
    """A card enrolled while realm 3 is down is enrolled there later (the device sends
    the registration it kept), and then pays with realm 1 down."""
    rig.realms[2].kill()
    try:
        with rig.device("catch-up.db") as device, sv.Pin.from_digits(PIN) as pin:
            card_id = device.enroll(_card(), pin)
    finally:
        rig.realms[2].start()
    assert not rig.realm_holds(2, card_id)
    with rig.device("catch-up.db") as device:  # opening catches the realm up
        assert rig.realm_holds(2, card_id)
        rig.realms[0].kill()
        try:
            assert _pay(device, card_id, "caught-up").approved
        finally:
            rig.realms[0].start()


def test_enrollment_with_two_realms_down_leaves_nothing(rig: Rig) -> None:
    rig.realms[0].kill()
    rig.realms[1].kill()
    try:
        with rig.device("no-enroll.db") as device, sv.Pin.from_digits(PIN) as pin:
            with pytest.raises(sv.ServerUnavailable, match="realm-1, realm-2"):
                device.enroll(_card(), pin)
            assert device.cards() == []
    finally:
        rig.realms[0].start()
        rig.realms[1].start()


def test_wrong_pins_across_realms_lock_within_the_bound(rig: Rig) -> None:
    """Wrong PINs over HTTP: floor(3 * G / 2) PIN tests in all (the device spreads them
    over the realms), and card_state says locked."""
    with rig.device("locked.db") as device:
        with sv.Pin.from_digits(PIN) as pin:
            card_id = device.enroll(_card(), pin)
        wrong = 0
        with sv.Pin.from_digits("864201") as bad:
            for attempt in range(10):
                try:
                    device.authorize(card_id, bad, amount=1000, currency="KRW",
                                     merchant="Gangnam Coffee", idempotency_key=f"w{attempt}")
                except sv.WrongPin:
                    wrong += 1
                except sv.CardLocked:
                    break
            else:
                pytest.fail("never locked")
        # Spread over the realms: floor(n * G / t) tests, the last of which locks it.
        assert wrong == (3 * sv.ServerProfile.REALM.guess_limit) // 2 - 1
        assert device.card_state(card_id).locked


def test_check_server_names_the_realm_that_does_not_answer(rig: Rig) -> None:
    with rig.device("check.db") as device:
        device.check_server()
        rig.realms[1].kill()
        rig.realms[2].kill()
        try:
            with pytest.raises(sv.ServerUnavailable, match="realm-2, realm-3"):
                device.check_server()
        finally:
            rig.realms[1].start()
            rig.realms[2].start()


def test_a_realm_that_hangs_costs_its_timeout_and_is_left_out(rig: Rig) -> None:
    """A realm that stops answering (SIGSTOP: connections open, no reply) is cut off at
    the device's timeout and a spare serves the payment; then it is asked last."""
    import signal

    with rig.device("hang.db", timeout=1.5) as device:
        with sv.Pin.from_digits(PIN) as pin:
            card_id = device.enroll(_card(), pin)
        proc = rig.realms[0].proc
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)
        try:
            assert _pay(device, card_id, "slow-1").approved
            assert _pay(device, card_id, "slow-2").approved
        finally:
            proc.send_signal(signal.SIGCONT)
        assert rig.charged(card_id, "slow-1") == "approved"


def test_a_copy_of_the_device_is_refused_across_realms(rig: Rig) -> None:
    """The device's files copied, then the owner pays twice with realm 3 killed (it
    misses both re-splits) and realm 3 comes back: the copy, with the right PIN, is
    refused as a copy over HTTP whichever realms it reaches, nothing is charged, and the
    owner re-enrolls and pays again."""
    import shutil

    with rig.device("owner.db") as device, sv.Pin.from_digits(PIN) as pin:
        card_id = device.enroll(_card(), pin)
    for suffix in ("", "-wal", "-shm"):
        source = rig.root / f"owner.db{suffix}"
        if source.exists():
            shutil.copy(source, rig.root / f"copy.db{suffix}")
    rig.realms[2].kill()
    try:
        with rig.device("owner.db") as device:
            assert _pay(device, card_id, "owner-1").approved
            assert _pay(device, card_id, "owner-2").approved
    finally:
        rig.realms[2].start()
    with rig.device("copy.db") as copy, pytest.raises(sv.DeviceCloned):
        _pay(copy, card_id, "thief")
    assert rig.charged(card_id, "thief") is None
    with rig.device("owner.db") as device:
        with pytest.raises(sv.DeviceCloned):
            _pay(device, card_id, "owner-3")  # frozen for the owner too, until re-enrolled
        with sv.Pin.from_digits("518263") as new_pin:
            device.reenroll(card_id, _card(), new_pin)
            assert device.authorize(card_id, new_pin, amount=100, currency="KRW",
                                    merchant="Gangnam Coffee",
                                    idempotency_key="owner-4").approved
