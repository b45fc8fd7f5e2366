"""The re-split after every payment, across realms (``_realm_refresh.py``), in process:
each approval moves the device's part and every realm's share to the next version;
a realm down during payments is brought up by the deltas the device carries; a copy of
the device from before a payment is refused and the card marked cloned; a lost reply
leaves the old version working."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import splitvault as sv
from splitvault._deployment import Deployment, Endpoint
from splitvault._realm_protocol import GatewayAuthorize, GatewayReply
from splitvault.device._realms import RealmClient

PIN = "402917"


class Switch:
    """A realm that can be switched off (every call: ServerUnavailable)."""

    def __init__(self, realm: sv.ShareServer) -> None:
        self.realm = realm
        self.down = False

    def __getattr__(self, name: str) -> Any:
        if self.down:
            raise sv.ServerUnavailable("switched off")
        return getattr(self.realm, name)


class LosesReplies:
    """A gateway whose next ``lose`` replies are lost after it answered."""

    def __init__(self, gateway: sv.ShareServer) -> None:
        self.gateway = gateway
        self.lose = 0

    def gateway_info(self) -> object:
        return self.gateway.gateway_info()

    def gateway_authorize(self, request: GatewayAuthorize) -> GatewayReply:
        reply = self.gateway.gateway_authorize(request)
        if self.lose:
            self.lose -= 1
            raise sv.ServerUnavailable("reply lost")
        return reply


@dataclass
class Realms:
    root: Path
    deployment: Deployment
    servers: list[sv.ShareServer]
    switches: list[Switch]
    gateway: sv.ShareServer
    lossy: LosesReplies

    def device(self, name: str = "device.db") -> sv.Device:
        client = RealmClient(self.deployment,
                             realms={e.key: s for e, s in zip(self.deployment.realms,
                                                              self.switches, strict=True)},
                             gateways={self.deployment.gateways[0].key: self.lossy},
                             timeout=5.0)
        return sv.Device.open(self.root / name, server=client, kdf=sv.KdfProfile.TEST_ONLY)

    def versions(self, card_id: str) -> list[tuple[int, bool]]:
        out = []
        for server in self.servers:
            card = server.store.card(card_id)
            assert card is not None
            out.append((card.share_version, card.cloned))
        return out


@pytest.fixture()
def realms(tmp_path: Path) -> Iterator[Realms]:
    first = [sv.ShareServer.open(tmp_path / f"realm-{i}.db") for i in (1, 2, 3)]
    gate = sv.ShareServer.open(tmp_path / "gateway.db")
    keys = [s.realm_info().realm_key for s in first]
    gateway_key = gate.gateway_info().gateway_key
    for server in (*first, gate):
        server.close()
    deployment = Deployment(
        tuple(Endpoint(f"realm-{i}", f"http://127.0.0.1:{9000 + i}", k)
              for i, k in enumerate(keys, 1)),
        (Endpoint("gateway-1", "http://127.0.0.1:9100", gateway_key),), 2)
    servers = [sv.ShareServer.open(tmp_path / f"realm-{i}.db", deployment=deployment,
                                   profile=sv.ServerProfile.REALM) for i in (1, 2, 3)]
    gateway = sv.ShareServer.open(tmp_path / "gateway.db", deployment=deployment)
    try:
        yield Realms(tmp_path, deployment, servers, [Switch(s) for s in servers], gateway,
                     LosesReplies(gateway))
    finally:
        for server in (*servers, gateway):
            server.close()


def _enroll(device: sv.Device) -> str:
    with sv.Pin.from_digits(PIN) as pin:
        return device.enroll(sv.Card("4111111111111111", "12/30", "KIM MINJI"), pin)


def _pay(device: sv.Device, card_id: str, key: str) -> sv.Authorization:
    with sv.Pin.from_digits(PIN) as pin:
        return device.authorize(card_id, pin, amount=5000, currency="KRW",
                                merchant="Gangnam Coffee", idempotency_key=key)


def test_every_approval_moves_the_versions_on(realms: Realms) -> None:
    """Version v on the device; the realms of the next payment at v once they have
    carried the step; the card opens at every version (the gateway recombines)."""
    with realms.device() as device:
        card_id = _enroll(device)
        assert device.card_state(card_id).share_version == 0
        for i in range(1, 4):
            assert _pay(device, card_id, f"order-{i}").approved
            assert device.card_state(card_id).share_version == i
        # The two realms of each payment are at the version the device presented.
        assert sorted(v for v, _ in realms.versions(card_id))[-2:] == [2, 2]


def test_a_realm_down_for_payments_catches_up(realms: Realms) -> None:
    """Realm 3 misses three payments, then serves one with realm 1 down: the device
    carried it every step it missed, and it is at the device's version."""
    with realms.device() as device:
        card_id = _enroll(device)
        realms.switches[2].down = True
        for i in range(3):
            assert _pay(device, card_id, f"down-{i}").approved
        realms.switches[2].down = False
        realms.switches[0].down = True
        assert _pay(device, card_id, "caught-up").approved
        assert realms.versions(card_id)[2] == (3, False)
        assert device.card_state(card_id).share_version == 4


def test_a_copy_from_before_a_payment_is_refused_and_the_card_marked(realms: Realms) -> None:
    """A copy of the device's files from before the owner paid, with one realm down
    during that payment: refused as a copy (DeviceCloned, never "wrong PIN"), nothing
    charged, and the card marked cloned at the realms it tried."""
    with realms.device() as device:
        card_id = _enroll(device)
    shutil.copy(realms.root / "device.db", realms.root / "copy.db")
    with realms.device() as device:
        realms.switches[2].down = True
        assert _pay(device, card_id, "owner-1").approved
        assert _pay(device, card_id, "owner-2").approved
        realms.switches[2].down = False
    with realms.device("copy.db") as copy, pytest.raises(sv.DeviceCloned):
        _pay(copy, card_id, "thief-1")
    assert realms.gateway.payment_state(card_id, "thief-1") is None
    assert any(cloned for _, cloned in realms.versions(card_id))


def test_the_copy_cannot_use_the_realm_that_missed_the_payments(realms: Realms) -> None:
    """Realm 3 is still at the copy's version (it was down), but one realm is not
    enough: with realm 3 and either other, the copy is refused."""
    with realms.device() as device:
        card_id = _enroll(device)
    shutil.copy(realms.root / "device.db", realms.root / "copy.db")
    with realms.device() as device:
        realms.switches[2].down = True
        assert _pay(device, card_id, "owner").approved
        assert _pay(device, card_id, "owner-again").approved  # realms 1, 2 at 1
        realms.switches[2].down = False
    realms.switches[1].down = True  # the copy gets realm 3 (at 0) and realm 1 (at 1)
    with realms.device("copy.db") as copy, pytest.raises(sv.DeviceCloned):
        _pay(copy, card_id, "thief")
    assert realms.gateway.payment_state(card_id, "thief") is None


def test_a_lost_reply_leaves_the_old_version_working(realms: Realms) -> None:
    """The gateway approved and re-split, and the reply was lost: no realm has a step
    the device never took, so the device pays on at its version, the retry of the key is
    answered from the ledger, and nothing is charged twice."""
    with realms.device() as device:
        card_id = _enroll(device)
        realms.lossy.lose = 1
        with pytest.raises(sv.ServerUnavailable):
            _pay(device, card_id, "lost")
        assert device.card_state(card_id).share_version == 0
        again = _pay(device, card_id, "lost")
        assert again.approved
        assert device.card_state(card_id).share_version == 0  # recorded: no re-split
        assert _pay(device, card_id, "next").approved
        assert device.card_state(card_id).share_version == 1
    assert realms.gateway.payment_state(card_id, "lost") == "approved"


def test_a_copy_that_claims_the_new_version_is_refused(realms: Realms) -> None:
    """A copy that edits its file to present the owner's new version has neither the
    new part nor the version's token: its possession MAC fails at every realm, and it
    is refused as a copy before any guess is spent."""
    import sqlite3

    with realms.device() as device:
        card_id = _enroll(device)
    shutil.copy(realms.root / "device.db", realms.root / "copy.db")
    with realms.device() as device:
        assert _pay(device, card_id, "owner-1").approved
        assert _pay(device, card_id, "owner-2").approved  # realms 1 and 2 at 1
    conn = sqlite3.connect(realms.root / "copy.db")
    with conn:
        conn.execute("UPDATE cards SET share_version = 1")
        conn.execute("UPDATE realm_parts SET version = 1")
    conn.close()
    used = [s.store.card(card_id).unproven for s in realms.servers]  # type: ignore[union-attr]
    with realms.device("copy.db") as copy, pytest.raises(sv.DeviceCloned):
        _pay(copy, card_id, "thief")
    assert [s.store.card(card_id).unproven  # type: ignore[union-attr]
            for s in realms.servers] == used
    assert realms.gateway.payment_state(card_id, "thief") is None


class Captures:
    """A gateway client that keeps every request it forwards."""

    def __init__(self, gateway: sv.ShareServer) -> None:
        self.gateway = gateway
        self.requests: list[GatewayAuthorize] = []

    def gateway_info(self) -> object:
        return self.gateway.gateway_info()

    def gateway_authorize(self, request: GatewayAuthorize) -> GatewayReply:
        self.requests.append(request)
        return self.gateway.gateway_authorize(request)


def test_a_released_share_serves_only_its_payment(realms: Realms) -> None:
    """The holder of the device (its key, its files) takes the shares t realms released
    for a 5,000 KRW payment and asks the gateway for 900,000 under a new key, re-signed:
    the shares are bound to their payment, so the gateway refuses and charges nothing."""
    import dataclasses

    from splitvault.crypto.signing import sign

    captured = Captures(realms.gateway)
    realms.lossy = captured  # type: ignore[assignment]
    with realms.device() as device:
        card_id = _enroll(device)
        assert _pay(device, card_id, "small").approved
        seed = bytearray(device._store.get(card_id).sign_seed)
    request = captured.requests[-1]
    gateway_key = realms.deployment.gateways[0].key
    for i, change in enumerate(({"amount": 900_000}, {"merchant": "Elsewhere"},
                                {"idempotency_key": "big"})):
        # With a fresh nonce and time, as the holder of the device key can sign them.
        forged = dataclasses.replace(request, nonce=bytes([i]) * 16,
                                     timestamp=int(realms.gateway.now() * 1000),
                                     **change)  # type: ignore[arg-type]
        forged = dataclasses.replace(forged, signature=sign(seed, forged.signed_bytes(
            gateway_key)))
        with pytest.raises((sv.TamperedData, sv.IdempotencyConflict)):
            realms.gateway.gateway_authorize(forged)
    assert realms.gateway.payment_state(card_id, "big") is None
    assert realms.gateway.payment_state(card_id, "small") == "approved"


def test_only_the_gateway_makes_a_delta_a_realm_takes(realms: Realms) -> None:
    """A re-split step sealed by anyone but the deployment's gateway (here: under a key
    from the right X25519 exchange but with another gateway secret) is refused as
    tampered, and the realm's share and version stay."""
    import dataclasses

    from splitvault._realm_protocol import RealmDelta, RealmEvaluate
    from splitvault._realm_refresh import seal_delta
    from splitvault._resplit import possession_mac
    from splitvault.crypto.envelope import generate_keypair
    from splitvault.crypto.signing import sign

    with realms.device() as device:
        card_id = _enroll(device)
        stored = device._store.get(card_id)
    realm, realm_key = realms.servers[0], realms.deployment.realms[0].key
    before = realm.store.card(card_id)
    assert before is not None
    secret, _ = generate_keypair()
    gateway_key = realms.deployment.gateways[0].key  # claims to be the gateway
    forged = RealmDelta(realm_key, 1, gateway_key, seal_delta(
        secret, gateway_key, realm_key, card_id, 1, bytes(64) + bytes(32)))
    blinded = realm.realm_info().realm_key  # any valid element
    request = RealmEvaluate(card_id, bytes(16), int(realm.now() * 1000), blinded, b"", 1,
                            (forged,))
    signed = request.signed_bytes(realm_key)
    request = dataclasses.replace(request, signature=sign(bytearray(stored.sign_seed), signed),
                                  possession=possession_mac(bytes(32), None, signed))
    with pytest.raises(sv.TamperedData):
        realm.realm_evaluate(request)
    after = realm.store.card(card_id)
    assert after is not None
    assert (after.share, after.share_version, after.unproven) == (
        before.share, before.share_version, before.unproven)


def test_realms_and_gateway_keep_nothing_of_the_card(realms: Realms) -> None:
    """After enrollment and payments: the gateway's store has no card row and no share,
    and no realm's or gateway's database file holds the card number, in any form a
    scan finds (digits, UTF-8)."""
    pan = "4111111111111111"
    with realms.device() as device:
        card_id = _enroll(device)
        for i in range(3):
            assert _pay(device, card_id, f"scan-{i}").approved
    assert realms.gateway.store.card(card_id) is None
    assert realms.gateway.store.card_count() == 0
    for name in ("gateway.db", "realm-1.db", "realm-2.db", "realm-3.db"):
        for path in realms.root.glob(name + "*"):
            data = path.read_bytes()
            assert pan.encode() not in data and pan[-8:].encode() not in data, path


def test_reenroll_is_the_way_back_and_cuts_every_copy_off(realms: Realms) -> None:
    """After a copy got the card marked cloned (or wrong PINs locked it), the owner
    re-enrolls it with the card and a new PIN, with a realm down: it pays again, the
    realm that was down is brought to the new enrollment when next asked, and the copy
    stays refused everywhere."""
    card = sv.Card("4111111111111111", "12/30", "KIM MINJI")
    with realms.device() as device:
        card_id = _enroll(device)
    shutil.copy(realms.root / "device.db", realms.root / "copy.db")
    with realms.device() as device:
        assert _pay(device, card_id, "owner-1").approved
        assert _pay(device, card_id, "owner-2").approved
    with realms.device("copy.db") as copy, pytest.raises(sv.DeviceCloned):
        _pay(copy, card_id, "thief-1")
    with realms.device() as device:
        with pytest.raises(sv.DeviceCloned):
            _pay(device, card_id, "owner-3")  # the card is frozen for its owner too
        realms.switches[2].down = True
        with sv.Pin.from_digits("518263") as new_pin:
            device.reenroll(card_id, card, new_pin)
            assert not device.card_state(card_id).locked
            assert device.authorize(card_id, new_pin, amount=100, currency="KRW",
                                    merchant="Gangnam Coffee",
                                    idempotency_key="after").approved
            realms.switches[2].down = False
            realms.switches[0].down = True  # realm 3 must serve now: it catches up
            assert device.authorize(card_id, new_pin, amount=100, currency="KRW",
                                    merchant="Gangnam Coffee",
                                    idempotency_key="after-2").approved
            realms.switches[0].down = False
    assert not any(cloned for _, cloned in realms.versions(card_id))
    with realms.device("copy.db") as copy, pytest.raises(sv.DeviceCloned):
        _pay(copy, card_id, "thief-2")
    assert realms.gateway.payment_state(card_id, "thief-2") is None
    # Cut off, not marked: the copy cannot freeze the re-enrolled card again.
    assert not any(cloned for _, cloned in realms.versions(card_id))
    with realms.device() as device, sv.Pin.from_digits("518263") as new_pin:
        assert device.authorize(card_id, new_pin, amount=100, currency="KRW",
                                merchant="Gangnam Coffee", idempotency_key="after-3").approved


def test_every_realm_takes_part_in_turn(realms: Realms) -> None:
    """With all realms up, the device asks the ones furthest behind first, so no realm
    collects steps to carry (found by the bench: after ~50 payments the steps for an
    idle realm no longer fitted in one request, and a realm failing then left the card
    unable to pay)."""
    with realms.device() as device:
        card_id = _enroll(device)
        for i in range(30):
            assert _pay(device, card_id, f"turn-{i}").approved
        version = device.card_state(card_id).share_version
        lags = [version - p.version for p in device._store.realm_parts(card_id)]
    assert version == 30 and max(lags) <= 2


def test_a_realm_down_for_many_payments_catches_up_in_steps(realms: Realms) -> None:
    """Realm 3 misses more payments than one request carries (MAX_DELTAS); when it must
    serve (realm 1 down), the device brings it up by catch-up requests first (no guess
    spent there for them), then pays."""
    from splitvault._realm_api import MAX_DELTAS

    with realms.device() as device:
        card_id = _enroll(device)
        realms.switches[2].down = True
        for i in range(MAX_DELTAS + 8):
            assert _pay(device, card_id, f"many-{i}").approved
        realms.switches[2].down = False
        realms.switches[0].down = True
        assert _pay(device, card_id, "after-many").approved
        assert realms.versions(card_id)[2] == (MAX_DELTAS + 8, False)


def test_a_realm_client_passed_in_stays_the_callers(realms: Realms) -> None:
    """Closing a device does not close a RealmClient the caller gave it (one client may
    serve several devices in turn); a closed client refuses with a typed error."""
    client = RealmClient(realms.deployment,
                         realms={e.key: s for e, s in zip(realms.deployment.realms,
                                                          realms.switches, strict=True)},
                         gateways={realms.deployment.gateways[0].key: realms.gateway},
                         timeout=5.0)
    with sv.Device.open(realms.root / "a.db", server=client,
                        kdf=sv.KdfProfile.TEST_ONLY) as first:
        card_id = _enroll(first)
    with sv.Device.open(realms.root / "a.db", server=client,
                        kdf=sv.KdfProfile.TEST_ONLY) as second:
        assert _pay(second, card_id, "shared-client").approved
    client.close_transport()
    with sv.Device.open(realms.root / "a.db", server=client,
                        kdf=sv.KdfProfile.TEST_ONLY) as third, \
            pytest.raises(sv.ConfigurationError, match="closed"):
        _pay(third, card_id, "closed-client")


class Taps:
    """A realm that keeps every evaluation request it forwards."""

    def __init__(self, realm: Switch) -> None:
        self.realm = realm
        self.seen: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.realm, name)
        if name != "realm_evaluate":
            return call

        def tapped(request: Any) -> Any:
            self.seen.append(request)
            return call(request)
        return tapped


def test_an_old_request_replayed_is_not_taken_for_a_copy(realms: Realms) -> None:
    """The owner's evaluation captured (within its freshness window) and replayed after
    the realm moved past its version: refused as a replay, and the card is not marked
    cloned (a replay must not freeze the owner's card)."""
    taps = [Taps(s) for s in realms.switches]
    realms.switches = taps  # type: ignore[assignment]
    with realms.device() as device:
        card_id = _enroll(device)
        assert _pay(device, card_id, "o-1").approved
        assert _pay(device, card_id, "o-2").approved
        moved = next(i for i, s in enumerate(realms.servers)
                     if s.store.card(card_id).share_version == 1)  # type: ignore[union-attr]
        old = taps[moved].seen[0]
        assert old.share_version == 0
        with pytest.raises(sv.InvalidChallenge):  # late and replayed: refused either way
            realms.servers[moved].realm_evaluate(old)
        assert not any(cloned for _, cloned in realms.versions(card_id))
        assert _pay(device, card_id, "o-3").approved


def test_a_release_after_the_card_was_marked_is_refused(realms: Realms) -> None:
    """A challenge issued before a realm marked the card cloned releases nothing."""
    from splitvault.server._store import AuditEvent

    with realms.device() as device:
        card_id = _enroll(device)
        realm = realms.servers[0]
        original = realm.realm_release

        def mark_then_release(request: Any) -> Any:
            card = realm.store.card(card_id)
            assert card is not None
            realm.store.mark_cloned(card_id, card.share_version, realm.now(),
                                    AuditEvent("clone_detected", card_id))
            return original(request)

        realm.realm_release = mark_then_release  # type: ignore[method-assign]
        realms.switches[1].down = True  # realm 1 must take part
        with pytest.raises(sv.DeviceCloned):
            _pay(device, card_id, "marked")
    assert realms.gateway.payment_state(card_id, "marked") is None


def test_a_deleted_card_is_not_brought_back_by_an_old_registration(realms: Realms) -> None:
    """A registration the device kept for a realm that was down (sealed to that realm,
    signed by the device key), replayed after the card was deleted there, does not
    bring the card back with its counts at zero: the realm keeps a tombstone."""
    import dataclasses

    from splitvault._protocol import DeleteRequest
    from splitvault._realm_api import REALM_REGISTER
    from splitvault._wire import loads
    from splitvault.crypto.signing import sign

    realms.switches[2].down = True
    with realms.device() as device:
        card_id = _enroll(device)
        kept = next(p for p in device._store.realm_parts(card_id) if p.registration)
        seed = bytearray(device._store.get(card_id).sign_seed)
    realms.switches[2].down = False
    realm = realms.servers[2]
    registration = loads(REALM_REGISTER, kept.registration or b"")
    realm.realm_register(registration)  # the catch-up: the card is there now
    assert realm.store.card(card_id) is not None
    delete = DeleteRequest(card_id, bytes(range(16)), int(realm.now() * 1000), b"")
    realm.delete(dataclasses.replace(delete, signature=sign(seed, delete.signed_bytes())))
    assert realm.store.card(card_id) is None
    with pytest.raises(sv.UnknownCard):
        realm.realm_register(registration)
    assert realm.store.card(card_id) is None


def test_a_captured_request_never_charges_again(realms: Realms) -> None:
    """The acquirer refuses the owner's payment before charging (nothing taken); the
    request, captured on the way, is replayed later: it does not charge without a new
    PIN proof (single-use nonce), the answer says so, and the acquirer is not called."""
    captured = Captures(realms.gateway)
    realms.lossy = captured  # type: ignore[assignment]
    acquirer = sv.SimulatedAcquirer(faults=["unavailable"])
    realms.gateway.acquirer = acquirer
    with realms.device() as device:
        card_id = _enroll(device)
        with pytest.raises(sv.AcquirerUnavailable):
            _pay(device, card_id, "refused")
    calls = len(acquirer.calls)
    with pytest.raises(sv.InvalidChallenge):
        realms.gateway.gateway_authorize(captured.requests[-1])
    assert len(acquirer.calls) == calls
    assert realms.gateway.payment_state(card_id, "refused") is None
    with realms.device() as device:
        assert _pay(device, card_id, "refused").approved  # a new proof pays it, once


def test_steps_from_before_a_reenrollment_do_not_open_after_it(realms: Realms) -> None:
    """A copy pays three times (it keeps the steps of realms it did not ask), the owner
    re-enrolls, and the copy pushes its kept steps by catch-up: they were made for the
    old enrollment and open nowhere, the realms stay on the new one, and the owner pays."""
    import dataclasses
    import secrets
    import time

    from splitvault._realm_protocol import RealmCatchUp, RealmDelta
    from splitvault.crypto.signing import sign

    with realms.device("owner.db") as owner:
        card_id = _enroll(owner)
    for suffix in ("", "-wal", "-shm"):
        source = realms.root / f"owner.db{suffix}"
        if source.exists():
            shutil.copy(source, realms.root / f"copy.db{suffix}")
    with realms.device("copy.db") as copy:
        for i in range(3):
            assert _pay(copy, card_id, f"copy-{i}").approved
        kept = copy._store.get(card_id)
        steps = {e.key: tuple(RealmDelta(e.key, v, g, d) for v, g, d
                              in copy._store.realm_deltas(card_id, e.key))
                 for e in realms.deployment.realms}
    assert any(steps.values())  # some realm was left behind with a step to carry
    with realms.device("owner.db") as owner, sv.Pin.from_digits("518263") as new_pin:
        owner.reenroll(card_id, sv.Card("4111111111111111", "12/30", "KIM MINJI"), new_pin)
        before = realms.versions(card_id)
        for endpoint, server in zip(realms.deployment.realms, realms.servers, strict=True):
            if not steps[endpoint.key]:
                continue
            request = RealmCatchUp(card_id, secrets.token_bytes(16), int(time.time() * 1000),
                                   steps[endpoint.key], b"")
            request = dataclasses.replace(request, signature=sign(
                bytearray(kept.sign_seed), request.signed_bytes(endpoint.key)))
            with pytest.raises((sv.TamperedData, sv.MalformedRequest)):
                server.realm_catch_up(request)
        assert realms.versions(card_id) == before
        assert owner.authorize(card_id, new_pin, amount=100, currency="KRW",
                               merchant="Gangnam Coffee", idempotency_key="after").approved


def test_a_breached_realm_with_the_device_gets_at_most_n_minus_t_plus_1_times_g(
        realms: Realms) -> None:
    """Realm 1's store and KEK with the device's files: the thief evaluates under k_1
    himself and checks each guess against realm 1's verifier offline, so a PIN test
    costs one honest realm's evaluation, not t. The honest realms' counts bound it:
    (n - t + 1) * G tests in all (4 with G = 2), then both refuse (threat model RL3)."""
    import dataclasses
    import secrets
    import time

    from splitvault._realm_protocol import RealmEvaluate
    from splitvault._resplit import possession_mac
    from splitvault.crypto import oprf, threshold
    from splitvault.crypto.signing import public_key, sign
    from splitvault.device._pinkey import BlindedPin, derive_pin_seed

    with realms.device() as device:
        card_id = _enroll(device)
        card = device._store.get(card_id)
        parts = {p.realm_key: p for p in device._store.realm_parts(card_id)}
    breached = realms.servers[0]
    record = breached.store.card(card_id)
    assert record is not None
    k1 = breached.keyring.unwrap("oprf-key", card_id, record.oprf_key)
    index1 = parts[realms.deployment.realms[0].key].index
    honest = list(zip(realms.servers[1:], [e.key for e in realms.deployment.realms[1:]],
                      strict=True))
    wrong = [f"{i}{i}{i}{(i + 3) % 10}{(i + 5) % 10}{(i + 7) % 10}" for i in range(10)]
    guesses = [*wrong[:3], PIN, *wrong[3:]]  # the 4th test is the PIN: the attack is real
    tests = found = 0
    for guess in guesses:
        reply = None
        with sv.Pin.from_digits(guess) as pin, BlindedPin(card_id, pin) as blinded:
            for server, key in honest:
                request = RealmEvaluate(card_id, secrets.token_bytes(16),
                                        int(time.time() * 1000), blinded.blinded, b"",
                                        card.share_version, ())
                signed = request.signed_bytes(key)
                request = dataclasses.replace(
                    request, signature=sign(bytearray(card.sign_seed), signed),
                    possession=possession_mac(card.share_token or b"", None, signed))
                try:
                    reply = server.realm_evaluate(request)
                except sv.CardLocked:
                    continue
                index = parts[key].index
                break
            if reply is None:
                break  # every honest realm refuses: no more tests
            mine = oprf.blind_evaluate(k1, blinded.blinded)
            output = blinded.finalize(threshold.combine({index1: mine, index: reply.evaluated}))
        seed = derive_pin_seed(output, salt=card.salt, device_secret=card.device_secret,
                               card_id=card_id, profile=sv.KdfProfile.from_parameters(*card.kdf))
        tests += 1
        found += public_key(seed) == record.verifier
    g = sv.ServerProfile.REALM.guess_limit
    assert tests == (3 - 2 + 1) * g and tests <= 5
    assert found == 1  # within the bound the offline check does find the PIN


def test_a_kept_registration_cannot_be_signed_again_for_a_later_version(
        realms: Realms) -> None:
    """The registration a device kept for a realm that was down, its envelope re-signed
    by the device key at a higher version (which would put the same keys back with the
    realm's counts, lock and clone mark at zero): the envelope is bound to its version,
    so the realm refuses it and its count stays."""
    import dataclasses

    from splitvault._realm_api import REALM_REGISTER
    from splitvault._wire import loads
    from splitvault.crypto.signing import sign

    realms.switches[2].down = True
    with realms.device() as device:
        card_id = _enroll(device)
        kept = next(p for p in device._store.realm_parts(card_id) if p.registration)
        seed = bytearray(device._store.get(card_id).sign_seed)
    realms.switches[2].down = False
    realm, key = realms.servers[2], realms.deployment.realms[2].key
    registration = loads(REALM_REGISTER, kept.registration or b"")
    realm.realm_register(registration)
    with realms.device() as device:
        with sv.Pin.from_digits("864201") as wrong, pytest.raises(sv.WrongPin):
            realms.switches[0].down = True  # realm 3 must count this one
            device.authorize(card_id, wrong, amount=100, currency="KRW",
                             merchant="Gangnam Coffee", idempotency_key="w")
        realms.switches[0].down = False
    used = realm.store.card(card_id).unproven  # type: ignore[union-attr]
    assert used >= 1
    again = dataclasses.replace(registration, share_version=1)
    again = dataclasses.replace(again, signature=sign(seed, again.signed_bytes(key)))
    with pytest.raises(sv.TamperedData):
        realm.realm_register(again)
    assert realm.store.card(card_id).unproven == used  # type: ignore[union-attr]


class Drops:
    """Realm 1 seen through an on-path attacker who drops its evaluations (and keeps
    them) while ``drop`` is set."""

    def __init__(self, realm: Switch) -> None:
        self.realm = realm
        self.drop = False
        self.kept: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.realm, name)
        if name != "realm_evaluate":
            return call

        def maybe(request: Any) -> Any:
            if self.drop:
                self.kept.append(request)
                raise sv.ServerUnavailable("dropped")
            return call(request)
        return maybe


def test_a_dropped_request_delivered_late_is_not_taken_for_a_copy(realms: Realms) -> None:
    """The owner's evaluation to realm 1 is dropped (kept by whoever dropped it); the
    owner pays with the spare, then again with realm 1, which moves on; the kept request,
    delivered late within its freshness window, was sent before realm 1 moved: refused,
    the card not marked, and the owner pays on."""
    drops = Drops(realms.switches[0])
    realms.switches[0] = drops  # type: ignore[call-overload]
    with realms.device() as device:
        card_id = _enroll(device)
        drops.drop = True
        assert _pay(device, card_id, "o-1").approved
        drops.drop = False
    with realms.device() as device:  # a new client: realm 1 is not remembered as down
        realms.switches[2].down = True  # realm 1 must take part, and takes the step
        assert _pay(device, card_id, "o-2").approved
        realms.switches[2].down = False
        realm = realms.servers[0]
        assert realm.store.card(card_id).share_version == 1  # type: ignore[union-attr]
        with pytest.raises(sv.InvalidChallenge, match="sent before"):
            realm.realm_evaluate(drops.kept[0])
        assert not any(cloned for _, cloned in realms.versions(card_id))
        events = [e["event"] for e in realm.audit_entries()]
        assert "stale_copy_refused" in events and "clone_detected" not in events
        assert _pay(device, card_id, "o-3").approved


def test_released_shares_expire_with_their_challenge(realms: Realms) -> None:
    """Shares released for a payment that took no money, captured on the way and sent
    again later, re-signed by the holder of the device key with a fresh nonce and time:
    once their realm challenge has ended they are refused, and nothing is charged."""
    import dataclasses

    from splitvault.crypto.signing import sign

    captured = Captures(realms.gateway)
    realms.lossy = captured  # type: ignore[assignment]
    realms.gateway.acquirer = sv.SimulatedAcquirer(faults=["unavailable"])
    with realms.device() as device:
        card_id = _enroll(device)
        with pytest.raises(sv.AcquirerUnavailable):
            _pay(device, card_id, "later")
        seed = bytearray(device._store.get(card_id).sign_seed)
    request = captured.requests[-1]
    gateway_key = realms.deployment.gateways[0].key
    later = max(s.expires_at for s in request.shares) / 1000 + 241  # past 2 x 120 s
    realms.gateway._gateway._clock = lambda: later  # type: ignore[attr-defined]  # later on
    forged = dataclasses.replace(request, nonce=bytes(range(16)),
                                 timestamp=int(later * 1000))
    forged = dataclasses.replace(forged, signature=sign(seed, forged.signed_bytes(
        gateway_key)))
    with pytest.raises(sv.InvalidChallenge, match="expired"):
        realms.gateway.gateway_authorize(forged)
    assert realms.gateway.payment_state(card_id, "later") is None


def test_payments_go_through_with_clocks_apart_within_the_allowance(realms: Realms) -> None:
    """Realms 100 s slow, the gateway 100 s fast, the device on time (each within the
    devices' 120 s allowance): payments are approved, the shares' expiry included."""
    import time

    for server in realms.servers:
        server._realm._clock = lambda: time.time() - 100  # type: ignore[attr-defined]
    realms.gateway._gateway._clock = lambda: time.time() + 100  # type: ignore[attr-defined]
    with realms.device() as device:
        card_id = _enroll(device)
        assert _pay(device, card_id, "skewed").approved


class Interrupt(Exception):
    """Stands for a crash in the middle of an enrollment."""


def test_a_pending_realm_card_waits_for_a_device_opened_with_its_deployment(
        realms: Realms) -> None:
    """An enrollment interrupted after the card was stored pending: opening the device
    with a single server leaves that row alone (no error), and opening it with the
    deployment cancels it at the realms."""

    def crash(card_id: str) -> None:
        raise Interrupt()

    with realms.device() as device, pytest.raises(Interrupt), \
            sv.Pin.from_digits(PIN) as pin:
        device._store.activate = crash  # type: ignore[method-assign]
        device.enroll(sv.Card("4111111111111111", "12/30", "KIM MINJI"), pin)
    single = sv.ShareServer.open(realms.root / "single.db")
    try:
        with sv.Device.open(realms.root / "device.db", server=single,
                            kdf=sv.KdfProfile.TEST_ONLY) as device:
            assert device._store.pending()  # left for a device opened with its realms
    finally:
        single.close()
    with realms.device() as device:
        assert not device._store.pending()
