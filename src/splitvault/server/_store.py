"""The store interface: everything the share server keeps, as atomic domain operations.

The rules (may this guess be spent? did this proof verify? is this payment new?) are
decided above the store, in plain Python; each store operation then applies one
decision as **one transaction** that commits whole or changes nothing, and whose
conditions make it correct however many workers or hosts run it at once:

- the guess counter moves only by a conditional ``UPDATE ... SET guesses_used =
  guesses_used + 1 WHERE ... AND guesses_used < limit AND locked = 0 RETURNING``;
- a challenge, a device nonce and a ledger key are each claimed by an ``UPDATE ...
  WHERE state = ...`` or an ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, so two
  workers can never both win;
- the exactly-once ledger holds a *lease* (owner, expiry) instead of an in-process
  map, so a retry on another host sees a live attempt and waits for it.

Why operations rather than compare-and-set on a per-card record (as Juicebox's
software realm does): the ledger, the single-use nonces and the audit chain are not
per-card state, and in SQL each decision has a natural one-statement guard. The
operations stay small and named for what they decide (see README, design notes).

Two backends implement it with the same SQL (``_sql.py``): SQLite (``_sqlite.py``) and
PostgreSQL (``_postgres.py``); ``tests/store/`` runs one contract suite against both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "RETRYABLE",
    "SETTLED",
    "UNPROVEN_LIMIT",
    "UNPROVEN_WINDOW",
    "AuditEvent",
    "AuditMac",
    "AuditRow",
    "CardRecord",
    "ChallengeRecord",
    "KeyRecord",
    "LedgerEntry",
    "LedgerStart",
    "LedgerState",
    "OutboxMessage",
    "PendingCard",
    "ProofOutcome",
    "RiskCheck",
    "RiskVerdict",
    "ShareStep",
    "Spend",
    "Store",
    "WorkerRecord",
    "WrappedRef",
]

UNPROVEN_LIMIT = 20
"""Evaluations a card may have without a proof per :data:`UNPROVEN_WINDOW`. They test
no PIN (PIN-derived values travel sealed to the server), so this only bounds the work
a device key can ask for; at the budget an evaluation is refused, the card never
locked. Four times the guess limit: a flaky network loses that many replies rarely."""
UNPROVEN_WINDOW = 900.0
"""Seconds after which the unproven budget starts again (15 minutes)."""

AuditMac = Callable[[bytes, int, float, str, str, str], bytes]
"""``(previous mac, seq, at, event, card id, detail json) -> mac``: the audit chain's
link function, given to the store by the server once its audit key is loaded."""


@dataclass(frozen=True)
class AuditEvent:
    """One audit entry to append inside an operation's transaction."""

    event: str
    card_id: str
    detail: dict[str, int | str | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at: float
    event: str
    card_id: str
    detail: str
    mac: bytes


@dataclass(frozen=True)
class CardRecord:
    """An active card as the server holds it (wrapped values stay wrapped)."""

    card_id: str
    device_key: bytes
    verifier: bytes
    oprf_key: bytes = field(repr=False)
    share: bytes = field(repr=False)
    guesses_used: int
    locked: bool
    share_version: int = 0
    share_floor: int = 0
    share_next: bytes | None = field(default=None, repr=False)
    refresh_key: bytes | None = None
    refreshed_at: float | None = None
    cloned: bool = False
    share_token: bytes | None = field(default=None, repr=False)
    share_next_token: bytes | None = field(default=None, repr=False)
    committed_at: float | None = None
    epoch_token: bytes | None = field(default=None, repr=False)
    wallet: bytes | None = field(default=None, repr=False)  # wrapped wallet row key
    unproven: int = 0  # evaluations since the last good proof (in this window)


@dataclass(frozen=True)
class PendingCard:
    card_id: str
    device_key: bytes
    oprf_key: bytes = field(repr=False)


@dataclass(frozen=True)
class ChallengeRecord:
    """A proof slot: issued with an OPRF evaluation, consumed by one proof."""

    challenge_id: str
    card_id: str
    nonce: bytes
    state: Literal["evaluated", "pin_change", "reenroll", "used"]
    expires_at: float
    new_oprf_key: bytes | None = field(default=None, repr=False)
    share_version: int = 0


@dataclass(frozen=True)
class Spend:
    """What :meth:`Store.spend_guess` decided.

    ``spent``: the evaluation is counted against the unproven budget (``guesses_used``:
    the wrong proofs so far); ``locked``: the card is locked (now or before);
    ``busy``: the unproven budget of this window is spent (the card is *not* locked);
    ``replayed``: the device nonce was used before; ``unknown``: no such active card;
    ``cloned``: the presented share version is a copy's (now, or the card was marked
    before); ``cut_off``: a copy from before the card's re-enrollment; ``ahead``: a
    version this server never made (``_refresh.judge``); ``unproven``: a version
    claimed without its possession proof (a copy lying about its version: refused,
    nothing marked); ``late``: a stale version in a request sent before, or just
    after, the server moved past it (an owner's request held back: refused, nothing
    marked).

    ``share_version``: the card's version after this request (a commit moves it on);
    ``resend``: the verdict was ``resend`` (the owner lost R; it is recomputed from
    the two versions the store keeps).
    """

    outcome: Literal["spent", "locked", "busy", "replayed", "unknown", "cloned", "cut_off",
                     "ahead", "unproven", "late"]
    guesses_used: int = 0
    share_version: int = 0
    resend: bool = False


LedgerState = Literal["pending", "in_doubt", "settling", "approved", "declined", "reversed",
                      "failed"]
"""A ledger row's life: ``pending`` (a worker holds the lease and calls the acquirer)
-> ``approved`` | ``declined``, or -> ``in_doubt`` (the outcome is unknown) ->
``settling`` (a reconciler holds it) -> ``approved`` | ``declined`` | ``failed`` (the
acquirer never saw it) | ``reversed``. ``failed`` and ``reversed`` took no money, so the
next retry may charge once, under a new attempt and reference."""

SETTLED: frozenset[str] = frozenset({"approved", "declined", "reversed", "failed"})
RETRYABLE: frozenset[str] = frozenset({"reversed", "failed"})
"""Settled states that took no money and let a retry charge (under a new attempt)."""


@dataclass(frozen=True)
class LedgerEntry:
    key: bytes
    state: LedgerState
    params_digest: bytes
    result: bytes | None = field(repr=False)
    owner: str
    lease_until: float
    reference: str
    attempt: int = 0


@dataclass(frozen=True)
class LedgerStart:
    """The pending row a verified payment writes, in the same transaction as its proof.
    ``intent``: the payment's details, wrapped, so that a reconciler can record its
    outcome later without the card."""

    key: bytes
    params_digest: bytes
    owner: str
    lease_until: float
    reference: str
    intent: bytes | None = field(default=None, repr=False)
    attempt: int = 0


@dataclass(frozen=True)
class ShareStep:
    """The re-split an approval writes with its outcome (``Store.finish_payment``):
    ``share_next`` (wrapped) becomes version ``version + 1`` once the device shows it
    holds its half; ``refresh_key`` is what R was sealed to. Written only if the card
    is still at ``version`` with no re-split waiting (compare-and-set)."""

    card_id: str
    version: int
    share_next: bytes = field(repr=False)
    refresh_key: bytes
    share_next_token: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ProofOutcome:
    """What :meth:`Store.settle_proof` decided.

    ``ok``: the proof was good and the count reset (``ledger``: the new pending row's
    fate: ``new``, or the entry already recorded for the key); ``wrong``: a wrong PIN
    (``attempts_left`` after it); ``locked``: the card is locked; ``gone``: the
    challenge was not (or no longer) there to consume.
    """

    outcome: Literal["ok", "wrong", "locked", "gone"]
    attempts_left: int = 0
    ledger: Literal["new", "recorded", "none"] = "none"
    entry: LedgerEntry | None = None


@dataclass(frozen=True)
class RiskVerdict:
    """What the fraud rules decided for one payment, inside its proof's transaction.
    ``history``: the card's new history row (wrapped), None to leave it; ``declined``:
    the sealed decline to record instead of a pending row (the acquirer is then never
    called), with its audit ``event`` and its receipt (``outbox``), queued in the same
    transaction as any recorded outcome's."""

    history: bytes | None = field(default=None, repr=False)
    declined: bytes | None = field(default=None, repr=False)
    event: AuditEvent | None = None
    outbox: tuple[OutboxMessage, ...] = ()


@dataclass(frozen=True)
class RiskCheck:
    """The fraud rules for one payment, given to :meth:`Store.settle_proof`: ``row`` is
    the card's history row key (a MAC of the card id); ``decide`` maps the stored,
    wrapped history (None for a card with none yet) to a :class:`RiskVerdict`. It is a
    pure function: the store runs it with the row held, and again if it reruns the
    transaction."""

    row: bytes
    decide: Callable[[bytes | None], RiskVerdict] = field(repr=False)


@dataclass(frozen=True)
class OutboxMessage:
    """One receipt or notification to deliver after the payment's outcome commits
    (the transactional outbox). ``payload`` is wrapped under the KEK; the row shows
    when it is due and how often it was tried, nothing of the payment."""

    message_id: str
    kind: str
    payload: bytes = field(repr=False)
    attempts: int = 0


@dataclass(frozen=True)
class KeyRecord:
    """A key-encryption key the store knows of (by id; the key itself never is here)."""

    kid: bytes
    state: Literal["pending", "primary", "active", "retired"]
    added_at: float


@dataclass(frozen=True)
class WorkerRecord:
    """A running server's heartbeat: which key ids it can use."""

    worker_id: str
    kids: tuple[bytes, ...]
    seen_at: float


@dataclass(frozen=True)
class WrappedRef:
    """One wrapped value: where it lives, what it is for, and the blob itself."""

    table: str
    row: str
    purpose: str
    blob: bytes = field(repr=False)
    column: str = ""  # the column, where a table holds two values of one purpose


class Store(Protocol):
    """What the share server keeps. Every method is one transaction (or one read)."""

    # -- lifecycle -------------------------------------------------------------------

    def create(self) -> None:
        """Create the schema in an empty database."""
        ...

    def schema_version(self) -> int | None:
        """The stored schema version; None for an empty database."""
        ...

    def upgrade(self) -> tuple[int, int]:
        """Migrate to the current schema version; (from, to)."""
        ...

    def close(self) -> None: ...

    def describe(self) -> str:
        """Where the store is, for messages and ``repr`` (never a password)."""
        ...

    def ping(self) -> None:
        """Raise if the database does not answer (health checks)."""
        ...

    def attach_audit(self, mac: AuditMac) -> None: ...

    def scrub(self) -> None:
        """Make deleted rows unrecoverable from the files, where the backend can."""
        ...

    def sweep(self, now: float) -> int:
        """Drop expired challenges, nonces and pending enrollments; returns how many."""
        ...

    # -- the server's own keys and the keyring ----------------------------------------

    def server_keys(self) -> dict[str, bytes]: ...

    def add_server_keys(self, wrapped: dict[str, bytes]) -> dict[str, bytes]:
        """Insert the ones missing (the first worker wins); return what is stored."""
        ...

    def key_records(self) -> list[KeyRecord]: ...

    def add_key(self, kid: bytes, state: Literal["pending", "primary"], now: float,
                event: AuditEvent | None = None) -> bool: ...

    def promote_key(self, kid: bytes, now: float, event: AuditEvent) -> bool:
        """Make ``kid`` the primary; the old primary becomes ``active``."""
        ...

    def retire_key(self, kid: bytes, now: float, event: AuditEvent) -> bool:
        """Mark ``kid`` retired, only if no stored value is wrapped under it."""
        ...

    def heartbeat(self, worker_id: str, kids: Sequence[bytes], now: float) -> None: ...

    def workers(self, since: float) -> list[WorkerRecord]: ...

    def forget_worker(self, worker_id: str) -> None: ...

    def wrapped(self, *, not_under: bytes | None = None,
                limit: int | None = None) -> list[WrappedRef]:
        """Wrapped values (all, or those not wrapped under ``not_under``)."""
        ...

    def replace_wrapped(self, ref: WrappedRef, blob: bytes) -> bool:
        """Swap one wrapped value if it is still ``ref.blob`` (compare-and-set)."""
        ...

    def count_by_kid(self) -> dict[bytes, int]: ...

    # -- enrollment ------------------------------------------------------------------

    def pending_enrollments(self) -> int: ...

    def begin_enrollment(self, card_id: str, device_key: bytes, oprf_key: bytes, now: float,
                         expires_at: float, *, origin: bytes | None = None,
                         per_origin: int | None = None, total: int | None = None,
                         wallet: bytes | None = None) -> Literal["ok", "taken", "full"]:
        """Insert a pending card (``origin``: a MAC of the client's address;
        ``wallet``: its wallet row key, wrapped, kept when it becomes active); ``taken``
        if the id is; ``full`` if live pending rows already number ``total``, or
        ``per_origin`` of this origin. Exact across workers: the check and the insert
        serialize on one gate row."""
        ...

    def pending_card(self, card_id: str, now: float) -> PendingCard | None: ...

    def wallet_guesses(self, wallet: bytes) -> int:
        """The wrong proofs counted against the wallet row ``wallet`` (0 if none)."""
        ...

    def finish_enrollment(self, card_id: str, verifier: bytes, share: bytes, now: float,
                          event: AuditEvent, token: bytes | None = None) -> bool:
        """Activate a pending card (its origin is then forgotten); ``token``: its first
        share version's token, wrapped (``_resplit.py``)."""
        ...

    # -- cards, guesses and proofs ----------------------------------------------------

    def card(self, card_id: str) -> CardRecord | None: ...

    def card_count(self) -> int: ...

    def challenge(self, challenge_id: str) -> ChallengeRecord | None: ...

    def spend_guess(self, card_id: str, nonce: bytes, nonce_expires: float,
                    challenge: ChallengeRecord, limit: int, now: float, *,
                    unproven_limit: int = UNPROVEN_LIMIT,
                    unproven_window: float = UNPROVEN_WINDOW,
                    share_version: int = 0, refresh_key: bytes = b"",
                    wallet: bytes | None = None, proven: bool = True,
                    epoch_proven: bool = True, sent_at: float | None = None,
                    proof_floor: int | None = None) -> Spend:
        """Take the nonce; judge the presented ``share_version`` (``_refresh.judge``;
        ``proven``: its version possession proof held, ``epoch_proven``: its epoch
        proof, checked against the card as it was at re-enrollment floor
        ``proof_floor`` (a re-enrollment since voids both), ``sent_at``: the
        request's signed time):
        commit a waiting re-split, or mark the card cloned (audited), or refuse;
        then count one unproven evaluation and issue ``challenge`` at the card's
        version. ``wallet``: the card's wallet row key (unwrapped); a wallet at
        ``limit`` locks the card (``locked``), and ``guesses_used`` is the larger of
        the card's and the wallet's count."""
        ...

    def deleted(self, card_id: str) -> bool:
        """Whether ``card_id`` was deleted here (its tombstone, written with the delete)."""
        ...

    def begin_reenrollment(self, card_id: str, nonce: bytes, nonce_expires: float,
                           challenge: ChallengeRecord, now: float
                           ) -> Literal["ok", "replayed", "unknown"]:
        """Take the nonce and store ``challenge`` (state ``reenroll``, carrying the new
        OPRF key and, as ``share_version``, the card's version the caller read) for an
        active card, locked or cloned or not."""
        ...

    def finish_reenrollment(self, card_id: str, challenge_id: str, oprf_key: bytes,
                            verifier: bytes, share: bytes, now: float,
                            event: AuditEvent, token: bytes | None = None) -> bool:
        """Consume the ``reenroll`` challenge and replace OPRF key, verifier and share,
        clearing the counters, the lock and the clone mark, in one transaction (the
        card leaves its wallet, whose count stays: see ``_sql_cards.settle_proof``); the
        share's version becomes the challenge's + 2, and the floor below which every
        older copy is cut off. False if the challenge is gone or the card's version
        moved since it was issued (a copy paid meanwhile: re-enroll again)."""
        ...

    def settle_proof(self, card_id: str, challenge_id: str, *, verified: bool, limit: int,
                     now: float, ledger: LedgerStart | None = None,
                     pin_change_key: bytes | None = None,
                     risk: RiskCheck | None = None,
                     wallet: Callable[[bytes], bytes] | None = None) -> ProofOutcome:
        """Consume the challenge and record the proof. A card in a wallet (``wallet``
        turns its stored, wrapped wallet reference into the row key) is counted
        against the wallet too, with the wallet row held: a wrong proof counts on
        both, a wallet at ``limit`` refuses (locks) every card of it, right PIN or
        wrong, and a right proof takes the card's own wrong proofs back off the
        wallet. For a good proof of a new
        ledger key with ``risk``: the card's history row is held and ``risk.decide``
        runs in this transaction; a decline is recorded as the key's result
        (``ledger="recorded"``), else its new history is written with the pending row,
        so racing payments of one card are counted exactly."""
        ...

    def finish_pin_change(self, card_id: str, challenge_id: str, oprf_key: bytes,
                          verifier: bytes, now: float) -> bool: ...

    def advance_share(self, card_id: str, version: int, to_version: int, share: bytes,
                      token: bytes, now: float, event: AuditEvent) -> bool:
        """A realm's re-split (``_realm_refresh``): replace the card's share and version
        token (both wrapped) and move it from ``version`` to ``to_version``, audited;
        compare-and-set, False if the card is not at ``version`` or is marked cloned."""
        ...

    def reregister(self, card_id: str, version: int, oprf_key: bytes, share: bytes,
                   verifier: bytes, token: bytes, now: float, event: AuditEvent) -> bool:
        """A realm card re-enrolled: new OPRF key share, share, verifier and token (all
        wrapped but the verifier), at ``version``, which becomes its floor; counts, lock
        and clone mark cleared; audited. Compare-and-set: only if the floor is below
        ``version`` (so sending it again changes nothing)."""
        ...

    def mark_cloned(self, card_id: str, version: int, now: float, event: AuditEvent) -> bool:
        """Mark the card cloned if it is still at ``version`` (audited)."""
        ...

    def use_nonce(self, nonce: bytes, nonce_expires: float) -> bool:
        """Take a device nonce (single use); False if it was used before."""
        ...

    def delete_card(self, card_id: str, nonce: bytes, nonce_expires: float,
                    now: float) -> bool:
        """Delete every row of the card, active or pending (audited as
        ``enrollment_cancelled``); False if the nonce was used before."""
        ...

    # -- the exactly-once ledger ------------------------------------------------------

    def ledger_entry(self, key: bytes) -> LedgerEntry | None: ...

    def begin_payment(self, start: LedgerStart, now: float) -> LedgerEntry | None:
        """Write the pending row of a payment whose proof was checked elsewhere (a
        gateway: the realms checked the PIN); None if it is new and this worker holds
        its lease, else the entry already recorded for the key (nothing written)."""
        ...

    def finish_payment(self, key: bytes, owner: str, state: Literal["approved", "declined"],
                       result: bytes, now: float, event: AuditEvent,
                       outbox: Sequence[OutboxMessage] = (), *,
                       step: ShareStep | None = None) -> bool:
        """Record the acquirer's answer, and queue ``outbox`` and write ``step`` (an
        approval's re-split) in the same transaction."""
        ...

    def abandon_payment(self, key: bytes, owner: str) -> bool:
        """The acquirer took nothing (``AcquirerUnavailable``): a first attempt's row is
        deleted; a later attempt's becomes ``failed``, so the next retry moves on to a
        new reference and never reuses one charged before."""
        ...

    def mark_in_doubt(self, key: bytes, owner: str | None, now: float) -> bool: ...

    def restart_payment(self, start: LedgerStart, after_attempt: int, now: float) -> bool:
        """A retry of a ``reversed`` or ``failed`` key: the row becomes ``pending`` under
        ``start`` (its new attempt and reference), only if it is still at
        ``after_attempt`` in one of those states (compare-and-set: one retry wins)."""
        ...

    # -- reconciliation --------------------------------------------------------------

    def unsettled(self, now: float, limit: int) -> list[LedgerEntry]:
        """Rows a reconciler should settle: ``in_doubt``, and ``pending`` or
        ``settling`` rows whose lease expired before ``now``."""
        ...

    def claim_unsettled(self, key: bytes, owner: str, lease_until: float,
                        now: float) -> LedgerEntry | None:
        """Take one unsettled row for a reconciler (it becomes ``settling`` under
        ``owner``'s lease); None if it is settled, or held by a live lease. Once
        claimed, the worker that started it can no longer record into it."""
        ...

    def settle_payment(self, key: bytes, owner: str, state: LedgerState, result: bytes | None,
                       now: float, events: Sequence[AuditEvent],
                       outbox: Sequence[OutboxMessage] = ()) -> bool:
        """Record a reconciler's outcome on a row it holds (compare-and-set on
        ``settling`` and ``owner``), with its audit events and ``outbox``, in one
        transaction."""
        ...

    # -- fraud-rule history and the outbox -------------------------------------------

    def risk_histories(self) -> list[tuple[bytes, bytes]]:
        """Every card's fraud-rule history: (row key, wrapped history)."""
        ...

    def forget_risk(self, row: bytes) -> bool:
        """Delete one card's history (its card was deleted)."""
        ...

    def claim_outbox(self, now: float, lease_until: float, limit: int) -> list[OutboxMessage]:
        """Take up to ``limit`` messages due by ``now`` for delivery: each becomes due
        again only at ``lease_until`` and counts one more attempt (one claimer wins)."""
        ...

    def outbox_delivered(self, message_id: str, attempts: int) -> bool:
        """Delete a delivered message (if still at ``attempts``: no one re-claimed it)."""
        ...

    def outbox_retry(self, message_id: str, attempts: int, due: float) -> bool:
        """A delivery failed: the message is due again at ``due``."""
        ...

    def outbox_pending(self) -> int:
        """Messages not yet delivered."""
        ...

    def release_claim(self, key: bytes, owner: str) -> bool:
        """Give a held row back (``settling`` -> ``in_doubt``) when the acquirer could
        not be asked; the next reconciliation tries again."""
        ...

    # -- audit -----------------------------------------------------------------------

    def append_audit(self, event: AuditEvent, now: float) -> None: ...

    def audit_rows(self) -> Iterator[AuditRow]: ...
