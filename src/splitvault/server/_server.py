"""``ShareServer``: holds one share of each card's key, evaluates the PIN OPRF, counts
guesses, and authorizes payments exactly once.

This file only wires the parts together; each rule lives in the file named for it:
``_guesses.py`` (evaluation and proof), ``_enrollment.py`` (a card's life),
``_pin_change.py``, ``_payments.py`` (the exactly-once flow), ``_keyring.py``
(key-encryption keys), ``_audit.py``, and the store (``_store.py``, with its SQLite and
PostgreSQL backends). Nothing here or there lives only in this process's memory that
another worker must know: counters, leases, nonces and the primary key are all in the
store, so any number of workers on any number of hosts act as one server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from .._card import Card
from .._card_state import CardState
from .._deployment import Deployment, DeploymentFile
from .._errors import ConfigurationError, UnknownCard
from .._profiles import ServerProfile
from .._protocol import (
    AuthorizeReply,
    AuthorizeRequest,
    CardStatusReply,
    CardStatusRequest,
    ChangePinBegin,
    ChangePinFinish,
    DeleteRequest,
    EnrollBegin,
    EnrollBeginReply,
    EnrollFinish,
    EvaluateReply,
    EvaluateRequest,
    ReenrollBegin,
    ReenrollFinish,
    ServerInfo,
)
from .._realm_protocol import (
    GatewayAuthorize,
    GatewayInfo,
    GatewayReply,
    RealmCatchUp,
    RealmCatchUpReply,
    RealmEvaluate,
    RealmEvaluateReply,
    RealmInfo,
    RealmRegister,
    RealmRelease,
    RealmReleaseReply,
)
from . import _audit
from ._acquirer import AnyAcquirer, Authorize, SimulatedAcquirer, authorizer
from ._charges import Charges
from ._checks import check_id
from ._enrollment import Enrollment
from ._gateway import Gateway
from ._guesses import Guesses
from ._inspect import ServerInspector
from ._kek import Kek
from ._keyring import REFRESH_SECONDS, Keyring
from ._keys import ServerKeys, load_or_create
from ._ledger import Ledger
from ._outbox import DeliveryReport, Outbox, ReceiptSink
from ._payments import Payments
from ._pin_change import PinChange
from ._postgres import Isolation, PostgresBackend, is_postgres_url
from ._realm import Realm
from ._reconcile import Reconciler, ReconcileReport
from ._risk import RiskRules
from ._risk_book import RiskBook, WouldDecline
from ._schema import SCHEMA_VERSION
from ._sql import SqlStore
from ._sqlite import SqliteBackend
from ._status import CardStatus
from ._store import AuditEvent, Store

__all__ = ["CardState", "ShareServer", "open_store"]

SWEEP_SECONDS = 30.0
"""How often a server drops expired challenges, nonces and pending enrollments: each
row is harmless once expired (every read checks expiry), so this only bounds size."""


def open_store(target: str | Path, *, create: bool = False,
               isolation: Isolation = "read committed") -> SqlStore:
    """The store at ``target``: a SQLite path, or a ``postgresql://`` URL."""
    text = str(target)
    if is_postgres_url(text):
        return SqlStore(PostgresBackend(text, isolation=isolation))
    return SqlStore(SqliteBackend(Path(text), create=create))


class ShareServer:
    """The server role. Open with :meth:`open`; safe to share between threads, and any
    number of them (processes, hosts) may share one PostgreSQL store."""

    def __init__(self, store: Store, keyring: Keyring, *, acquirer: AnyAcquirer | None = None,
                 profile: ServerProfile = ServerProfile.DEFAULT,
                 clock: Callable[[], float] = time.time, create: bool = True,
                 announce: bool = True, risk: RiskRules | None = None,
                 receipts: ReceiptSink | None = None,
                 deployment: Deployment | str | Path | None = None) -> None:
        self._store = store
        self._announce = announce
        self._keyring = keyring
        self.profile = profile
        self._clock = clock
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.acquirer: AnyAcquirer = acquirer if acquirer is not None else SimulatedAcquirer()
        self.receipts: ReceiptSink | None = receipts
        """Where receipts go (see ``_outbox.py``); None: none are queued."""
        _check_schema(store, create)
        self._authorizer: tuple[object, Authorize] | None = None
        self._refresh_lock = threading.Lock()
        self._refreshed = float("-inf")
        self._swept = float("-inf")
        self._choose_primary()
        self._keys: ServerKeys = load_or_create(store, keyring)
        store.attach_audit(_audit.chain(self._keys.audit))
        self._ledger = Ledger(self._keys.ledger, keyring)
        self._guesses = Guesses(store, keyring, profile, clock, self._keys)
        self._enrollment = Enrollment(store, keyring, self._keys, profile, clock)
        self._pin_change = PinChange(store, keyring, self._guesses, profile, clock, self._keys)
        self._status = CardStatus(store, profile, clock, self._guesses.wallet_guesses)
        self._risk = RiskBook(risk or RiskRules.NONE, keyring, self._keys.ledger)
        self._outbox = Outbox(store, keyring, clock, lambda: self.receipts)
        self._payments = Payments(store, keyring, self._keys, self._ledger, self._guesses,
                                  self._authorize, profile, clock, self.worker_id,
                                  risk=self._risk, outbox=self._outbox)
        follow = _deployment_source(deployment)
        self._realm = Realm(store, keyring, self._keys, profile, clock, follow)
        self._gateway = Gateway(store, self._keys, self._ledger,
                                Charges(store, self._ledger, self._authorize, profile, clock,
                                        self.worker_id, outbox=self._outbox),
                                clock, follow)
        self._reconciler = Reconciler(store, self._ledger, lambda: self.acquirer, clock,
                                      self.worker_id, profile.lease_seconds,
                                      outbox=self._outbox)
        self.refresh()

    @classmethod
    def open(cls, target: str | Path, *, acquirer: AnyAcquirer | None = None,
             kek_file: str | Path | None = None, kek: str | Sequence[str] | None = None,
             profile: ServerProfile = ServerProfile.DEFAULT,
             clock: Callable[[], float] = time.time, create: bool = True,
             isolation: Isolation = "read committed", announce: bool = True,
             risk: RiskRules | None = None,
             receipts: ReceiptSink | None = None,
             deployment: Deployment | str | Path | None = None) -> ShareServer:
        """Open the server database at ``target``: a SQLite file (created if missing and
        ``create``) or a ``postgresql://user@host/db`` URL (the database must exist; its
        schema is created if it is empty and ``create``).

        The key-encryption keys come from ``kek_file`` (a key file of one or more keys,
        ``splitvault keys generate``) or ``kek`` (key files or ``pkcs11:`` URIs).
        ``announce=False`` (operator tools) keeps it out of the store's list of running
        servers, which a key rotation waits on. Left
        out for a SQLite file, the key lives beside it as ``<path>.kek``, created with a
        new database: convenient for the demo and tests; a production server keeps it
        apart.

        ``risk``: fraud rules (:class:`RiskRules`; none by default, as limits are the
        deployment's business decision; start from ``RiskRules.DEFAULT``).
        ``receipts``: a :class:`ReceiptSink`; receipts are then queued with each
        recorded outcome and delivered by :meth:`deliver_outbox`.

        ``deployment``: for a realm or a gateway of a t-of-n deployment, its
        :class:`Deployment` or the path of its file (followed as it changes): a realm
        seals shares only to its gateways, a gateway takes shares only of its realms.
        """
        specs = _kek_specs(target, kek_file, kek, create)
        # The keys first: a key that fails to load must not leave a new empty database.
        keyring = Keyring(specs)
        try:
            store = open_store(target, create=create, isolation=isolation)
        except BaseException:
            keyring.wipe()
            raise
        try:
            return cls(store, keyring, acquirer=acquirer, profile=profile, clock=clock,
                       create=create, announce=announce, risk=risk, receipts=receipts,
                       deployment=deployment)
        except BaseException:
            keyring.wipe()
            store.close()
            raise

    def close(self) -> None:
        if self._announce:
            # The database may be gone; the heartbeat then simply expires.
            with contextlib.suppress(Exception):
                self._store.forget_worker(self.worker_id)
        self._keys.wipe()
        self._keyring.wipe()
        self._store.close()

    def __enter__(self) -> ShareServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ShareServer {self._store.describe()} primary={self._keyring.primary.kid_hex}>"

    # -- ShareService --------------------------------------------------------------------

    def info(self) -> ServerInfo:
        return ServerInfo(self.profile.guess_limit, self.profile.challenge_ttl)

    def enroll_begin(self, request: EnrollBegin, *, origin: str | None = None
                     ) -> EnrollBeginReply:
        """``origin``: the client's address (the HTTP app gives it), for the cap on
        unfinished enrollments per address (``ServerProfile.pending_per_origin``)."""
        self._maybe_refresh()
        return self._enrollment.begin(request, origin)

    def enroll_finish(self, request: EnrollFinish) -> None:
        self._maybe_refresh()
        self._enrollment.finish(request)

    def evaluate(self, request: EvaluateRequest) -> EvaluateReply:
        self._maybe_refresh()
        return self._guesses.evaluate(request)

    def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        self._maybe_refresh()
        return self._payments.authorize(request)

    def change_pin_begin(self, request: ChangePinBegin) -> EvaluateReply:
        self._maybe_refresh()
        return self._pin_change.begin(request)

    def change_pin_finish(self, request: ChangePinFinish) -> None:
        self._maybe_refresh()
        self._pin_change.finish(request)

    def card_status(self, request: CardStatusRequest) -> CardStatusReply:
        """The card's PIN state, for its own device (signed by the device key)."""
        self._maybe_refresh()
        return self._status.query(request)

    def delete(self, request: DeleteRequest) -> None:
        self._maybe_refresh()
        self._enrollment.delete(request)
        # After the card is gone: what the fraud rules remember of it goes too.
        self._risk.forget(self._store, request.card_id)

    def reenroll_begin(self, request: ReenrollBegin) -> EvaluateReply:
        self._maybe_refresh()
        return self._enrollment.reenroll_begin(request)

    def reenroll_finish(self, request: ReenrollFinish) -> None:
        self._maybe_refresh()
        self._enrollment.reenroll_finish(request)

    # -- a realm and a gateway of a t-of-n deployment (``_realm.py``, ``_gateway.py``) ----

    def realm_info(self) -> RealmInfo:
        return self._realm.info()

    def realm_register(self, request: RealmRegister) -> None:
        self._maybe_refresh()
        self._realm.register(request)

    def realm_evaluate(self, request: RealmEvaluate) -> RealmEvaluateReply:
        self._maybe_refresh()
        return self._realm.evaluate(request)

    def realm_release(self, request: RealmRelease) -> RealmReleaseReply:
        self._maybe_refresh()
        return self._realm.release(request)

    def realm_status(self, request: CardStatusRequest) -> CardStatusReply:
        self._maybe_refresh()
        return self._realm.status(request)

    def realm_catch_up(self, request: RealmCatchUp) -> RealmCatchUpReply:
        self._maybe_refresh()
        return self._realm.catch_up(request)

    def gateway_info(self) -> GatewayInfo:
        return self._gateway.info()

    def gateway_authorize(self, request: GatewayAuthorize) -> GatewayReply:
        self._maybe_refresh()
        return self._gateway.authorize(request)

    # -- operations ----------------------------------------------------------------------

    def card_state(self, card_id: str) -> CardState:
        """Guesses used and lock state of an enrolled card (``UnknownCard`` otherwise)."""
        card = self._store.card(check_id(card_id, "card id"))
        if card is None:
            raise UnknownCard()
        return CardState(card.guesses_used, self.profile.guess_limit, card.locked,
                         card.cloned, card.share_version)

    def ready(self) -> bool:
        """True if the database answers (for health checks)."""
        try:
            self._store.ping()
        except Exception:
            return False
        return True

    def verify_audit(self) -> _audit.AuditReport:
        """Verify the audit chain; ``TamperedData`` names the first entry that fails."""
        return _audit.verify(self._store.audit_rows(), self._keys.audit)

    def audit_entries(self) -> list[dict[str, object]]:
        """Every audit entry as a JSON-ready dict, after verifying the whole chain."""
        rows = list(self._store.audit_rows())
        _audit.verify(rows, self._keys.audit)
        return [_audit.entry_json(row) for row in rows]

    def reconcile(self, *, dry_run: bool = False) -> ReconcileReport:
        """Settle every payment in doubt with the acquirer (``status``, then ``reverse``
        if it cannot say): see ``_reconcile.py``. Returns, and logs, counts by outcome;
        never card data. ``dry_run`` only counts them (as ``manual``). Safe to run on
        any number of workers at once: each row is claimed by one."""
        return self._reconciler.run(dry_run=dry_run)

    def deliver_outbox(self) -> DeliveryReport:
        """Deliver the receipts due to :attr:`receipts` (``splitvault serve`` runs this
        every ``--deliver-every`` seconds). A sink that raises only delays its receipt:
        it is tried again later, and the payment is never read or changed here."""
        return self._outbox.deliver()

    @property
    def risk(self) -> RiskRules:
        """The fraud rules in force."""
        return self._risk.rules

    def risk_dry_run(self, rules: RiskRules) -> list[WouldDecline]:
        """What ``rules`` would have declined of the recorded history (every card's
        payments of the last 7 days or the longest window in force): nothing changes."""
        return list(RiskBook(rules, self._keyring, self._keys.ledger).dry_run(self._store))

    def payment_state(self, card_id: str, idempotency_key: str) -> str | None:
        """The ledger state of one payment (``approved``, ``declined``, ``in_doubt``,
        ``reversed``, ``failed``, ``pending``, ``settling``), or None if never started.
        For operators and tests; the state alone, never the payment's details."""
        entry = self._store.ledger_entry(
            self._ledger.key_digest(check_id(card_id, "card id"), idempotency_key))
        return None if entry is None else entry.state

    def payment_reference(self, card_id: str, idempotency_key: str) -> str | None:
        """The acquirer's name for the current attempt of one payment (to look it up
        in the acquirer's books), or None if never started."""
        entry = self._store.ledger_entry(
            self._ledger.key_digest(check_id(card_id, "card id"), idempotency_key))
        return None if entry is None else entry.reference

    def inspector(self) -> ServerInspector:
        """The server as a breach sees it (hazardous; for the attack suite and the lab)."""
        if not isinstance(self._store, SqlStore):
            raise ConfigurationError("inspection needs a SQL store")
        return ServerInspector(self._store, self._keyring, self._keys)

    @property
    def store(self) -> Store:
        """The store (for operator tools: rotation, inspection)."""
        return self._store

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def now(self) -> float:
        return self._clock()

    def refresh(self) -> None:
        """Follow the store's primary key, report this worker's keys, sweep expired rows.
        ``splitvault serve`` calls it every :data:`REFRESH_SECONDS`; every request calls
        it too once that long has passed."""
        with self._refresh_lock:
            now = self._clock()
            self._choose_primary()
            if any(k.state == "pending" and not self._keyring.has(k.kid)
                   for k in self._store.key_records()):
                self._keyring.reload()
            if self._announce:
                self._store.heartbeat(self.worker_id, self._keyring.kids, now)
            if time.monotonic() - self._swept > SWEEP_SECONDS:
                self._store.sweep(now)
                self._swept = time.monotonic()
            self._refreshed = time.monotonic()

    def _maybe_refresh(self) -> None:
        if time.monotonic() - self._refreshed > REFRESH_SECONDS:
            self.refresh()

    def _choose_primary(self) -> None:
        keys = self._store.key_records()
        primary = [k.kid for k in keys if k.state == "primary"]
        if not primary:
            # A new database: it starts with the newest key it was given.
            self._store.add_key(self._keyring.newest().kid, "primary", self._clock())
            primary = [k.kid for k in self._store.key_records() if k.state == "primary"]
        self._keyring.use_primary(primary[0])

    def _authorize(self, card: Card, amount: int, currency: str, merchant: str,
                   reference: str) -> str:
        # Looked up per call, so tests and the demo may swap ``server.acquirer``.
        acquirer = self.acquirer
        cached = self._authorizer
        if cached is None or cached[0] is not acquirer:
            cached = self._authorizer = (acquirer, authorizer(acquirer))
        return cached[1](card, amount, currency, merchant, reference)

    def audit(self, event: str, card_id: str = "", **detail: int | str | bool) -> None:
        """Append an operator event (key rotation, say) to the audit log."""
        self._store.append_audit(AuditEvent(event, card_id, dict(detail)), self._clock())


def _deployment_source(deployment: Deployment | str | Path | None
                       ) -> Callable[[], Deployment | None]:
    if deployment is None:
        return lambda: None
    if isinstance(deployment, Deployment):
        return lambda: deployment
    return DeploymentFile(deployment)


def _check_schema(store: Store, create: bool) -> None:
    version = store.schema_version()
    where = store.describe()
    if version is None:
        if not create:
            raise ConfigurationError(
                f"{where} holds no splitvault database; create it with "
                f"'splitvault db upgrade --db {where}' (or 'splitvault serve')")
        store.create()
        return
    if version < SCHEMA_VERSION:
        raise ConfigurationError(
            f"server database {where} has schema version {version}, this splitvault needs "
            f"{SCHEMA_VERSION}: run 'splitvault db upgrade --db {where}'")
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"server database {where} has schema version {version}, newer than this "
            f"splitvault ({SCHEMA_VERSION}): upgrade splitvault")


def _kek_specs(target: str | Path, kek_file: str | Path | None,
               kek: str | Sequence[str] | None, create: bool) -> list[str]:
    if kek is not None:
        specs = [kek] if isinstance(kek, str) else list(kek)
        return specs + ([str(kek_file)] if kek_file is not None else [])
    if kek_file is not None:
        return [str(kek_file)]
    if is_postgres_url(str(target)):
        raise ConfigurationError("a PostgreSQL server needs its key-encryption key: "
                                 "give kek_file= (or --kek-file)")
    path = Path(target)
    default = Path(f"{path}.kek")
    if not default.exists():
        if path.exists() and path.stat().st_size > 0:
            raise ConfigurationError(
                f"server database {path} exists but its key file {default} is missing")
        if not create:
            raise ConfigurationError(f"no server database at {path}")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        Kek.generate().write(default)
    return [str(default)]

