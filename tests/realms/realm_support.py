"""An in-process t-of-n deployment for tests: 3 realms (threshold 2) and one gateway,
each a ``ShareServer`` over its own SQLite file in ``tmp_path``, reached by the device
through :class:`Site` stand-ins that a test can take down or make misbehave.

The servers are opened twice: once to learn their keys (a server's key lives in its
store, its KEK beside it), then again with the :class:`~splitvault.Deployment` built
from those keys, so a realm knows its gateway and the gateway its realms.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import splitvault as sv
from splitvault._deployment import Deployment, Endpoint
from splitvault._protocol import CardStatusReply, CardStatusRequest, DeleteRequest
from splitvault._realm_protocol import (
    GatewayAuthorize,
    GatewayInfo,
    RealmDelta,
    RealmEvaluate,
    RealmEvaluateReply,
    RealmInfo,
    RealmRegister,
    RealmRelease,
    RealmReleaseReply,
    release_proof_aad,
)
from splitvault._resplit import possession_mac
from splitvault.crypto import threshold
from splitvault.crypto.envelope import seal_envelope
from splitvault.crypto.signing import sign
from splitvault.device._realms import RealmClient
from splitvault.hazmat import BlindedPin, derive_pin_seed

__all__ = ["Attacker", "GatewaySite", "RealmLab", "Site", "realm_lab"]

PIN = "402917"
WRONG_PIN = "580247"
PAN = "4111111111111111"

EvaluateHook = Callable[[RealmEvaluate], RealmEvaluateReply]
ReleaseHook = Callable[[RealmRelease], RealmReleaseReply]


class Site:
    """One realm as the device reaches it. ``down``: every call raises
    ``ServerUnavailable`` (the realm is not reached, so it counts nothing).
    ``evaluate`` / ``release``: replace the realm's answer (a hook gets the request and
    may ask ``server`` itself). ``calls`` counts what reached the realm."""

    def __init__(self, name: str, server: sv.ShareServer) -> None:
        self.name = name
        self.server = server
        self.down = False
        self.evaluate: EvaluateHook | None = None
        self.release: ReleaseHook | None = None
        self.calls: dict[str, int] = {}

    @property
    def key(self) -> bytes:
        return self.server.realm_info().realm_key

    def _reach(self, what: str) -> None:
        if self.down:
            raise sv.ServerUnavailable(f"{self.name} is down (test)")
        self.calls[what] = self.calls.get(what, 0) + 1

    def realm_info(self) -> RealmInfo:
        self._reach("info")
        return self.server.realm_info()

    def realm_register(self, request: RealmRegister) -> None:
        self._reach("register")
        self.server.realm_register(request)

    def realm_evaluate(self, request: RealmEvaluate) -> RealmEvaluateReply:
        self._reach("evaluate")
        if self.evaluate is not None:
            return self.evaluate(request)
        return self.server.realm_evaluate(request)

    def realm_release(self, request: RealmRelease) -> RealmReleaseReply:
        self._reach("release")
        if self.release is not None:
            return self.release(request)
        return self.server.realm_release(request)

    def delete(self, request: DeleteRequest) -> None:
        self._reach("delete")
        self.server.delete(request)

    def realm_status(self, request: CardStatusRequest) -> CardStatusReply:
        self._reach("status")
        return self.server.realm_status(request)


class GatewaySite:
    """The gateway as the device reaches it; ``sent`` keeps every request it got and
    ``rewrite`` may change one on the way (the network attacker)."""

    def __init__(self, server: sv.ShareServer) -> None:
        self.server = server
        self.down = False
        self.sent: list[GatewayAuthorize] = []
        self.rewrite: Callable[[GatewayAuthorize], GatewayAuthorize] | None = None

    def gateway_info(self) -> GatewayInfo:
        if self.down:
            raise sv.ServerUnavailable("gateway is down (test)")
        return self.server.gateway_info()

    def gateway_authorize(self, request: GatewayAuthorize) -> sv.Authorization:
        if self.down:
            raise sv.ServerUnavailable("gateway is down (test)")
        self.sent.append(request)
        if self.rewrite is not None:
            request = self.rewrite(request)
        return self.server.gateway_authorize(request)


@dataclasses.dataclass
class RealmLab:
    """The deployment, its servers (by position: ``sites[0]`` is ``realm-1``), the
    device's client and how to open devices on it."""

    root: Path
    deployment: Deployment
    sites: list[Site]
    gateway_site: GatewaySite
    timeout: float
    devices: list[sv.Device] = dataclasses.field(default_factory=list)

    @property
    def gateway(self) -> sv.ShareServer:
        return self.gateway_site.server

    @property
    def realms(self) -> list[sv.ShareServer]:
        return [s.server for s in self.sites]

    def client(self) -> RealmClient:
        """A new client (a device closes the one it was given)."""
        return RealmClient(self.deployment,
                           realms={s.key: s for s in self.sites},
                           gateways={self.gateway_key: self.gateway_site},
                           timeout=self.timeout)

    def device(self, name: str = "device") -> sv.Device:
        dev = sv.Device.open(self.root / f"{name}.db", server=self.client(),
                             kdf=sv.KdfProfile.TEST_ONLY)
        self.devices.append(dev)
        return dev

    def enroll(self, dev: sv.Device, pin: str = PIN) -> str:
        with sv.Pin.from_digits(pin) as p:
            return dev.enroll(sv.Card(pan=PAN, expiry="12/30", holder="KIM"), p)

    def pay(self, dev: sv.Device, card_id: str, pin: str = PIN, *, key: str = "order-1",
            amount: int = 12000) -> sv.Authorization:
        with sv.Pin.from_digits(pin) as p:
            return dev.authorize(card_id, p, amount=amount, currency="KRW", merchant="Cafe",
                                 idempotency_key=key)

    @property
    def gateway_key(self) -> bytes:
        return self.deployment.gateways[0].key

    def charged(self) -> int:
        """How many times the gateway called its (simulated) acquirer."""
        acquirer = self.gateway.acquirer
        assert isinstance(acquirer, sv.SimulatedAcquirer)
        return len(acquirer.calls)

    def site(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)

    def unproven(self, card_id: str) -> list[int]:
        """Each realm's count of evaluations not yet given back by a correct PIN."""
        out = []
        for server in self.realms:
            card = server.store.card(card_id)
            out.append(-1 if card is None else card.unproven)
        return out

    def close(self) -> None:
        for dev in self.devices:
            dev.close()
        for server in (*self.realms, self.gateway):
            server.close()


def _open(path: Path, deployment: Deployment | None, realm: bool) -> sv.ShareServer:
    profile = sv.ServerProfile.REALM if realm else sv.ServerProfile.DEFAULT
    kwargs: dict[str, Any] = {"profile": profile}
    if deployment is not None:
        kwargs["deployment"] = deployment
    return sv.ShareServer.open(path, **kwargs)


def build(root: Path, *, n: int = 3, threshold: int = 2, timeout: float = 5.0) -> RealmLab:
    paths = [root / f"realm{i + 1}.db" for i in range(n)]
    gateway_path = root / "gateway.db"
    keys = []
    for path in paths:
        server = _open(path, None, True)
        keys.append(server.realm_info().realm_key)
        server.close()
    server = _open(gateway_path, None, False)
    gateway_key = server.gateway_info().gateway_key
    server.close()
    realm_eps = tuple(Endpoint(f"realm-{i + 1}", f"http://127.0.0.1:{9000 + i}", key)
                      for i, key in enumerate(keys))
    gateway_ep = Endpoint("gateway-1", "http://127.0.0.1:9100", gateway_key)
    deployment = Deployment(realm_eps, (gateway_ep,), threshold)
    sites = [Site(ep.name, _open(path, deployment, True))
             for ep, path in zip(realm_eps, paths, strict=True)]
    gateway_site = GatewaySite(_open(gateway_path, deployment, False))
    return RealmLab(root, deployment, sites, gateway_site, timeout)


@contextmanager
def realm_lab(root: Path, **kwargs: Any) -> Iterator[RealmLab]:
    lab = build(root, **kwargs)
    try:
        yield lab
    finally:
        lab.close()


class Attacker:
    """Someone with the device's store (its keys, salt, device secret and each realm's
    index) who talks to the realms directly, choosing which to ask, as
    ``device/_realm_flow.py`` builds its requests."""

    def __init__(self, lab: RealmLab, dev: sv.Device, card_id: str) -> None:
        self.lab = lab
        self._store = dev._store
        self.card = dev._store.get(card_id)
        self.parts = {p.realm_key: p for p in dev._store.realm_parts(card_id)}
        self._clock = 0

    def evaluate(self, site: Site, blinded: bytes) -> RealmEvaluateReply:
        self._clock += 1
        card = self.card = self._store.get(self.card.card_id)
        steps = tuple(RealmDelta(site.key, version, gateway, sealed) for version, gateway, sealed
                      in self._store.realm_deltas(card.card_id, site.key))
        request = RealmEvaluate(card.card_id, secrets.token_bytes(16),
                                int(time.time() * 1000) + self._clock, blinded, b"",
                                card.share_version, steps)
        signed = request.signed_bytes(site.key)
        request = dataclasses.replace(
            request, signature=sign(bytearray(card.sign_seed), signed),
            possession=possession_mac(card.share_token or b"", None, signed))
        return site.server.realm_evaluate(request)

    def pin_seed(self, pin: str, replies: dict[bytes, RealmEvaluateReply],
                 blinded: BlindedPin) -> bytearray:
        """The PIN key the candidate ``pin`` gives with these evaluations combined."""
        combined = threshold.combine({self.parts[k].index: r.evaluated
                                      for k, r in replies.items()})
        output = blinded.finalize(combined)
        card = self.card
        return derive_pin_seed(output, salt=card.salt, device_secret=card.device_secret,
                               card_id=card.card_id,
                               profile=sv.KdfProfile.from_parameters(*card.kdf))

    def release(self, site: Site, reply: RealmEvaluateReply, pin_seed: bytearray, *,
                gateway_key: bytes | None = None, key: str = "attack-1") -> RealmReleaseReply:
        gateway = gateway_key if gateway_key is not None else self.lab.gateway_key
        request = RealmRelease(self.card.card_id, reply.challenge_id, 100, "KRW", "Shop", key,
                               gateway, b"")
        signature = sign(pin_seed, request.signed_bytes(site.key, reply.nonce))
        request = dataclasses.replace(request, pin_signature=seal_envelope(
            site.key, signature, release_proof_aad(self.card.card_id, site.key)))
        return site.server.realm_release(request)

    def test_pin(self, pin: str, ask: Sequence[Site], release_at: Sequence[Site]
                 ) -> list[BaseException | RealmReleaseReply]:
        """Evaluate the blinded candidate at ``ask``; if ``t`` answered, release at each
        of ``release_at`` that evaluated; every outcome (errors included)."""
        out: list[BaseException | RealmReleaseReply] = []
        with sv.Pin.from_digits(pin) as p, BlindedPin(self.card.card_id, p) as blinded:
            replies: dict[bytes, RealmEvaluateReply] = {}
            for site in ask:
                try:
                    replies[site.key] = self.evaluate(site, blinded.blinded)
                except sv.VaultError as exc:
                    out.append(exc)
            if len(replies) < self.lab.deployment.threshold:
                return out
            seed = self.pin_seed(pin, replies, blinded)
            for site in release_at:
                if site.key not in replies:
                    continue
                try:
                    out.append(self.release(site, replies[site.key], seed))
                except sv.VaultError as exc:
                    out.append(exc)
        return out
