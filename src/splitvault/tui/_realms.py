"""The lab's t-of-n deployment: three realms (any two pay) and a gateway, each a
``ShareServer`` over its own SQLite file in a private temporary folder, and a device of
its own with one demo card. It is apart from the wallet's card and server: the wallet
keeps its single share server, and this folder goes when the demo ends.

The device reaches each realm through a :class:`StoppableRealm`, which the visitor can
stop: a stopped realm answers nothing (``ServerUnavailable``) and so counts nothing,
as a realm whose machine is down. Its file stays readable, and the lab shows what it
holds for the card: every wrapped value as a hash of its stored bytes
(``_shares.fingerprint``), never unwrapped.
"""

from __future__ import annotations

import datetime
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .._authorization import Authorization
from .._card import Card
from .._deployment import Deployment, Endpoint
from .._errors import ServerUnavailable, VaultError
from .._pin import Pin
from .._profiles import KdfProfile, ServerProfile
from .._protocol import CardStatusReply, CardStatusRequest, DeleteRequest
from .._realm_protocol import (
    RealmCatchUp,
    RealmCatchUpReply,
    RealmEvaluate,
    RealmEvaluateReply,
    RealmInfo,
    RealmRegister,
    RealmRelease,
    RealmReleaseReply,
)
from ..device import Device, RealmClient
from ..server import CardState, ShareServer, SimulatedAcquirer
from ._atrest import read_only
from ._shares import fingerprint

__all__ = ["DEMO_PIN", "REALMS", "THRESHOLD", "RealmDemo", "RealmPayment", "RealmRow",
           "StoppableRealm", "read_realm_row"]

REALMS = 3
THRESHOLD = 2
"""Any two of the three realms serve a payment: one may be down, two may not."""
DEMO_PAN = "4242 4242 4242 4242"
DEMO_HOLDER = "REALM DEMO"
DEMO_PIN = "402917"
"""The demo card's PIN, shown on screen: this card exists to be paid with, not guessed."""
TIMEOUT = 2.0
"""How long the device waits for one realm. A stopped realm refuses at once, so this
only bounds a realm that hangs, which the lab's realms never do."""
_GATEWAY = "gateway-1"


class StoppableRealm:
    """One realm as the device reaches it: every call goes to ``server`` unless the
    realm is stopped, then it raises ``ServerUnavailable`` before reaching it."""

    def __init__(self, name: str, server: ShareServer) -> None:
        self.name = name
        self.server = server
        self.stopped = False

    def _reach(self) -> ShareServer:
        if self.stopped:
            raise ServerUnavailable(f"{self.name} is stopped")
        return self.server

    def realm_info(self) -> RealmInfo:
        return self._reach().realm_info()

    def realm_register(self, request: RealmRegister) -> None:
        self._reach().realm_register(request)

    def realm_evaluate(self, request: RealmEvaluate) -> RealmEvaluateReply:
        return self._reach().realm_evaluate(request)

    def realm_release(self, request: RealmRelease) -> RealmReleaseReply:
        return self._reach().realm_release(request)

    def realm_status(self, request: CardStatusRequest) -> CardStatusReply:
        return self._reach().realm_status(request)

    def realm_catch_up(self, request: RealmCatchUp) -> RealmCatchUpReply:
        return self._reach().realm_catch_up(request)

    def delete(self, request: DeleteRequest) -> None:
        self._reach().delete(request)


@dataclass(frozen=True)
class RealmRow:
    """What one realm's file holds for the card, ready to show: hashes, never bytes."""

    card_id: str
    device_key: str
    key_share: str
    """Fingerprint of the wrapped OPRF key share ``k_i`` as stored."""
    data_share: str
    """Fingerprint of the wrapped share ``Sigma_i`` of the realms' side of the data key."""
    verifier: str
    kek: str
    """The id of the key-encryption key the two shares are wrapped under (4 bytes)."""
    unproven: int
    """Evaluations since the last correct PIN here: what this realm's limit counts."""
    locked: bool


def read_realm_row(path: Path, card_id: str) -> RealmRow | None:
    """The realm's ``cards`` row for ``card_id``, read read-only from its file as the
    lab reads the single server's (None if it holds no such card)."""
    with read_only(path) as conn:
        row = conn.execute(
            "SELECT card_id, device_key, oprf_key, share, verifier, unproven, locked "
            "FROM cards WHERE card_id = ? AND state = 'active'", (card_id,)).fetchone()
    if row is None:
        return None
    card, device_key, key_share, share, verifier, unproven, locked = row
    # A wrapped value starts with its KEK's 8-byte id (``_atrest.KEY_ID_LEN``): its
    # first half is enough to tell the realms' keys apart in a column a third as wide.
    kek = bytes(key_share[:4]).hex()
    return RealmRow(str(card), fingerprint(device_key), fingerprint(key_share),
                    fingerprint(share or b""), fingerprint(verifier or b""), kek,
                    int(unproven), bool(locked))


@dataclass(frozen=True)
class RealmPayment:
    """One payment of the demo card and what it left: the gateway's ledger state for
    its idempotency key (None: never started, so nothing charged) and how many times
    the acquirer was asked for it."""

    idempotency_key: str
    stopped: tuple[str, ...]
    """The realms that were stopped when it was made."""
    authorization: Authorization | None
    error: VaultError | None
    ledger: str | None
    acquirer_calls: int

    @property
    def approved(self) -> bool:
        return self.authorization is not None and self.authorization.approved


def _open(path: Path, deployment: Deployment | None, *, realm: bool,
          acquirer: SimulatedAcquirer | None = None) -> ShareServer:
    profile = ServerProfile.REALM if realm else ServerProfile.DEFAULT
    if deployment is None:
        return ShareServer.open(path, profile=profile)
    return ShareServer.open(path, profile=profile, deployment=deployment, acquirer=acquirer)


class RealmDemo:
    """The deployment, its device and the demo card. Build with :meth:`build` (in a
    worker: it opens seven databases); :meth:`close` removes its folder."""

    def __init__(self, folder: Path, realms: list[StoppableRealm], gateway: ShareServer,
                 acquirer: SimulatedAcquirer, device: Device) -> None:
        self.folder = folder
        self.realms = realms
        self.gateway = gateway
        self.acquirer = acquirer
        self.device = device
        self.card_id: str | None = None
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def build(cls, kdf: KdfProfile, *, today: datetime.date | None = None) -> RealmDemo:
        # mkdtemp makes it 0700: the device's part of the card lives here too.
        folder = Path(tempfile.mkdtemp(prefix="splitvault-realms-"))
        try:
            return cls._build(folder, kdf, today)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @classmethod
    def _build(cls, folder: Path, kdf: KdfProfile, today: datetime.date | None) -> RealmDemo:
        paths = [folder / f"realm{i + 1}.db" for i in range(REALMS)]
        # Each server is opened once to learn its key (it lives in its store), then
        # again with the deployment those keys make: a realm then seals shares only to
        # this gateway, and the gateway takes shares only from these realms.
        keys = []
        for path in paths:
            server = _open(path, None, realm=True)
            keys.append(server.realm_info().realm_key)
            server.close()
        server = _open(folder / "gateway.db", None, realm=False)
        gateway_key = server.gateway_info().gateway_key
        server.close()
        # The URLs are never contacted: the client is given the services themselves.
        deployment = Deployment(
            tuple(Endpoint(f"realm-{i + 1}", f"http://127.0.0.1:{9001 + i}", key)
                  for i, key in enumerate(keys)),
            (Endpoint(_GATEWAY, "http://127.0.0.1:9100", gateway_key),), THRESHOLD)
        opened: list[ShareServer] = []
        try:
            for path in paths:
                opened.append(_open(path, deployment, realm=True))
            acquirer = SimulatedAcquirer(today=today)
            gateway = _open(folder / "gateway.db", deployment, realm=False,
                            acquirer=acquirer)
            opened.append(gateway)
            realms = [StoppableRealm(ep.name, server)
                      for ep, server in zip(deployment.realms, opened, strict=False)]
            client = RealmClient(deployment, timeout=TIMEOUT,
                                 realms={ep.key: realm for ep, realm
                                         in zip(deployment.realms, realms, strict=True)},
                                 gateways={gateway_key: gateway})
            device = Device.open(folder / "device.db", server=client, kdf=kdf)
        except BaseException:
            for server in opened:
                server.close()
            raise
        return cls(folder, realms, gateway, acquirer, device)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.device.close()
        for realm in self.realms:
            realm.server.close()
        self.gateway.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- the realms ----------------------------------------------------------------------

    def path(self, index: int) -> Path:
        return self.folder / f"realm{index + 1}.db"

    def toggle(self, index: int) -> bool:
        """Stop realm ``index`` (0-based) if it runs, start it if stopped; True if it
        is stopped now."""
        realm = self.realms[index]
        realm.stopped = not realm.stopped
        return realm.stopped

    @property
    def stopped(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.realms if r.stopped)

    @property
    def guess_limit(self) -> int:
        """Each realm's own limit of evaluations without a correct PIN."""
        return ServerProfile.REALM.guess_limit

    def row(self, index: int) -> RealmRow | None:
        """What realm ``index``'s file holds for the demo card, stopped or not."""
        if self.card_id is None:
            return None
        return read_realm_row(self.path(index), self.card_id)

    # -- the card (thread workers only) --------------------------------------------------

    def enroll(self, today: datetime.date) -> str:
        """Enroll the demo card at every running realm (at least two must run); a
        stopped realm gets its registration later, when it answers again."""
        expiry = f"12/{(today.year + 3) % 100:02d}"
        card = Card.parse(DEMO_PAN, expiry, DEMO_HOLDER, today=today)
        with Pin.from_digits(DEMO_PIN) as pin:
            self.card_id = self.device.enroll(card, pin)
        return self.card_id

    def pay(self, amount: int, merchant: str, idempotency_key: str) -> RealmPayment:
        """Pay with the demo PIN; a refusal is an answer here, kept with the ledger's
        word on the payment."""
        if self.card_id is None:
            raise VaultError("the demo card is not enrolled yet")
        stopped = self.stopped
        before = len(self.acquirer.calls)
        auth: Authorization | None = None
        error: VaultError | None = None
        try:
            with Pin.from_digits(DEMO_PIN) as pin:
                auth = self.device.authorize(self.card_id, pin, amount=amount,
                                             currency="KRW", merchant=merchant,
                                             idempotency_key=idempotency_key)
        except VaultError as exc:
            error = exc
        return RealmPayment(idempotency_key, stopped, auth, error,
                            self.gateway.payment_state(self.card_id, idempotency_key),
                            len(self.acquirer.calls) - before)

    def card_state(self) -> CardState | str:
        """``Device.card_state``, the card's PIN state across the realms that answer;
        the reason as text when too few answer."""
        if self.card_id is None:
            return "not enrolled yet"
        try:
            return self.device.card_state(self.card_id)
        except VaultError as exc:
            return str(exc)
