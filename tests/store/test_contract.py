"""The store contract: every backend (SQLite; PostgreSQL under READ COMMITTED and under
SERIALIZABLE) gives the same answers, and every operation is atomic and race-free."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from splitvault.hazmat import (
    SCHEMA_VERSION,
    UNPROVEN_LIMIT,
    SqlStore,
    audit_chain,
    verify_audit_chain,
)
from splitvault.server._store import (
    UNPROVEN_WINDOW,
    AuditEvent,
    ChallengeRecord,
    LedgerStart,
    OutboxMessage,
    RiskCheck,
    RiskVerdict,
)

from .conftest import AUDIT_KEY

NOW = 1_000_000.0
LIMIT = 5
KID_A = b"A" * 8
KID_B = b"B" * 8


def _blob(kid: bytes = KID_A, body: bytes = b"x" * 24) -> bytes:
    return kid + body


def _card(store: SqlStore, card_id: str | None = None) -> str:
    card_id = card_id or secrets.token_hex(16)
    assert store.begin_enrollment(card_id, b"d" * 32, _blob(), NOW, NOW + 600) == "ok"
    assert store.finish_enrollment(card_id, b"v" * 32, _blob(), NOW,
                                   AuditEvent("enrolled", card_id))
    return card_id


def _challenge(card_id: str, ttl: float = 60.0) -> ChallengeRecord:
    return ChallengeRecord(secrets.token_hex(16), card_id, secrets.token_bytes(32),
                           "evaluated", NOW + ttl)


def _spend(store: SqlStore, card_id: str, challenge: ChallengeRecord | None = None,
           now: float = NOW):
    return store.spend_guess(card_id, secrets.token_bytes(16), now + 120,
                             challenge or _challenge(card_id), LIMIT, now)


def test_schema_version_and_empty(store: SqlStore) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert store.card_count() == 0
    store.ping()


def test_server_keys_first_writer_wins(store: SqlStore) -> None:
    first = store.add_server_keys({"audit": b"first"})
    second = store.add_server_keys({"audit": b"second", "ledger": b"l"})
    assert first == {"audit": b"first"}
    assert second == {"audit": b"first", "ledger": b"l"}


def test_keyring_lifecycle(store: SqlStore) -> None:
    assert store.add_key(KID_A, "primary", NOW)
    assert not store.add_key(KID_B, "primary", NOW)  # one primary only
    assert store.add_key(KID_B, "pending", NOW + 1, AuditEvent("key_added", ""))
    assert not store.add_key(KID_B, "pending", NOW + 1)  # no duplicates
    assert store.promote_key(KID_B, NOW + 2, AuditEvent("key_rotated", ""))
    states = {k.kid: k.state for k in store.key_records()}
    assert states == {KID_A: "active", KID_B: "primary"}
    store.add_server_keys({"x": _blob(KID_A)})
    assert not store.retire_key(KID_A, NOW, AuditEvent("key_retired", ""))  # still used
    ref = store.wrapped(not_under=KID_B)[0]
    assert store.count_by_kid() == {KID_A: 1}
    assert store.replace_wrapped(ref, _blob(KID_B))
    assert not store.replace_wrapped(ref, _blob(KID_B, b"y" * 24))  # compare-and-set
    assert store.count_by_kid() == {KID_B: 1}
    assert store.wrapped(not_under=KID_B) == []
    assert store.retire_key(KID_A, NOW, AuditEvent("key_retired", ""))
    assert {k.kid: k.state for k in store.key_records()}[KID_A] == "retired"


def test_heartbeats(store: SqlStore) -> None:
    store.heartbeat("w1", [KID_A], NOW)
    store.heartbeat("w1", [KID_A, KID_B], NOW + 5)
    store.heartbeat("w2", [KID_A], NOW - 100)
    live = store.workers(NOW)
    assert [(w.worker_id, set(w.kids)) for w in live] == [("w1", {KID_A, KID_B})]
    store.forget_worker("w1")
    assert store.workers(NOW) == []


def test_enrollment(store: SqlStore) -> None:
    card_id = secrets.token_hex(16)
    assert store.begin_enrollment(card_id, b"d" * 32, _blob(), NOW, NOW + 600) == "ok"
    assert store.begin_enrollment(card_id, b"e" * 32, _blob(), NOW, NOW + 600) == "taken"
    assert store.pending_card(card_id, NOW).device_key == b"d" * 32
    assert store.pending_card(card_id, NOW + 601) is None  # expired
    assert not store.finish_enrollment(card_id, b"v" * 32, _blob(), NOW + 601,
                                       AuditEvent("enrolled", card_id))
    assert store.pending_enrollments() == 1
    assert store.finish_enrollment(card_id, b"v" * 32, _blob(), NOW,
                                   AuditEvent("enrolled", card_id))
    card = store.card(card_id)
    assert card is not None and card.verifier == b"v" * 32 and card.guesses_used == 0
    assert store.pending_enrollments() == 0


def test_unproven_evaluations_never_lock(store: SqlStore) -> None:
    """Evaluations whose proofs never come (dropped packets) lock nothing: they spend a
    budget of their own, refused ("busy") once it is spent, and a right proof later
    still resets everything."""
    card_id = _card(store)
    outcomes = [_spend(store, card_id, _challenge(card_id, ttl=-1)).outcome
                for _ in range(UNPROVEN_LIMIT)]
    assert outcomes == ["spent"] * UNPROVEN_LIMIT
    assert _spend(store, card_id).outcome == "busy"
    card = store.card(card_id)
    assert not card.locked and card.guesses_used == 0
    # The window renews the budget; a right proof then clears it.
    later = NOW + UNPROVEN_WINDOW + 1
    good = _challenge(card_id, ttl=UNPROVEN_WINDOW + 60)
    assert _spend(store, card_id, good, now=later).outcome == "spent"
    assert store.settle_proof(card_id, good.challenge_id, verified=True, limit=LIMIT,
                              now=later).outcome == "ok"
    assert store.query("SELECT unproven FROM cards WHERE card_id = ?", card_id)[0][0] == 0


def test_unproven_budget_is_per_card_and_counted_in_sql(store: SqlStore) -> None:
    card_id, other = _card(store), _card(store)
    for _ in range(3):
        _spend(store, card_id)
    assert store.spend_guess(card_id, secrets.token_bytes(16), NOW + 120,
                             _challenge(card_id), LIMIT, NOW, unproven_limit=3).outcome == "busy"
    assert store.spend_guess(other, secrets.token_bytes(16), NOW + 120, _challenge(other),
                             LIMIT, NOW, unproven_limit=3).outcome == "spent"


def test_spend_guess_replay_and_unknown(store: SqlStore) -> None:
    card_id = _card(store)
    nonce = secrets.token_bytes(16)
    assert store.spend_guess(card_id, nonce, NOW + 120, _challenge(card_id), LIMIT,
                             NOW).outcome == "spent"
    assert store.spend_guess(card_id, nonce, NOW + 120, _challenge(card_id), LIMIT,
                             NOW).outcome == "replayed"
    assert store.query("SELECT unproven FROM cards WHERE card_id = ?", card_id)[0][0] == 1
    assert _spend(store, secrets.token_hex(16)).outcome == "unknown"


def test_settle_proof_outcomes(store: SqlStore) -> None:
    card_id = _card(store)
    wrong = _challenge(card_id)
    _spend(store, card_id, wrong)
    outcome = store.settle_proof(card_id, wrong.challenge_id, verified=False, limit=LIMIT,
                                 now=NOW)
    assert (outcome.outcome, outcome.attempts_left) == ("wrong", LIMIT - 1)
    # One evaluation, one proof: the challenge is gone, right PIN or not.
    assert store.settle_proof(card_id, wrong.challenge_id, verified=True, limit=LIMIT,
                              now=NOW).outcome == "gone"
    good = _challenge(card_id)
    _spend(store, card_id, good)
    start = LedgerStart(b"k" * 32, b"p" * 32, "w1", NOW + 30, "sv-ref")
    outcome = store.settle_proof(card_id, good.challenge_id, verified=True, limit=LIMIT,
                                 now=NOW, ledger=start)
    assert (outcome.outcome, outcome.ledger) == ("ok", "new")
    assert store.card(card_id).guesses_used == 0
    again = _challenge(card_id)
    _spend(store, card_id, again)
    outcome = store.settle_proof(card_id, again.challenge_id, verified=True, limit=LIMIT,
                                 now=NOW, ledger=start)
    assert outcome.ledger == "recorded" and outcome.entry is not None
    assert (outcome.entry.state, outcome.entry.owner, outcome.entry.reference) == (
        "pending", "w1", "sv-ref")


def test_settle_proof_expired_challenge(store: SqlStore) -> None:
    card_id = _card(store)
    challenge = _challenge(card_id, ttl=1)
    _spend(store, card_id, challenge)
    assert store.settle_proof(card_id, challenge.challenge_id, verified=True, limit=LIMIT,
                              now=NOW + 2).outcome == "gone"


def test_wrong_pin_at_limit_locks(store: SqlStore) -> None:
    card_id = _card(store)
    challenges = [_challenge(card_id) for _ in range(LIMIT)]
    for c in challenges:
        _spend(store, card_id, c)
    for c in challenges[:-1]:
        store.settle_proof(card_id, c.challenge_id, verified=False, limit=LIMIT, now=NOW)
    last = store.settle_proof(card_id, challenges[-1].challenge_id, verified=False,
                              limit=LIMIT, now=NOW)
    assert last.outcome == "locked" and store.card(card_id).locked


def test_pin_change(store: SqlStore) -> None:
    card_id = _card(store)
    challenge = _challenge(card_id)
    _spend(store, card_id, challenge)
    assert store.settle_proof(card_id, challenge.challenge_id, verified=True, limit=LIMIT,
                              now=NOW, pin_change_key=_blob(KID_A, b"n" * 24)).outcome == "ok"
    assert store.challenge(challenge.challenge_id).state == "pin_change"
    assert store.finish_pin_change(card_id, challenge.challenge_id, _blob(KID_A, b"o" * 24),
                                   b"w" * 32, NOW)
    assert not store.finish_pin_change(card_id, challenge.challenge_id, _blob(), b"w" * 32,
                                       NOW)  # once
    assert store.card(card_id).verifier == b"w" * 32


def test_delete_card(store: SqlStore) -> None:
    card_id = _card(store)
    nonce = secrets.token_bytes(16)
    assert store.delete_card(card_id, nonce, NOW + 120, NOW)
    assert store.card(card_id) is None
    assert not store.delete_card(card_id, nonce, NOW + 120, NOW)  # replayed nonce


def test_ledger_lease_owner(store: SqlStore) -> None:
    card_id = _card(store)
    challenge = _challenge(card_id)
    _spend(store, card_id, challenge)
    key = secrets.token_bytes(32)
    store.settle_proof(card_id, challenge.challenge_id, verified=True, limit=LIMIT, now=NOW,
                       ledger=LedgerStart(key, b"p" * 32, "w1", NOW + 30, "sv-r"))
    assert not store.finish_payment(key, "w2", "approved", b"r", NOW,
                                    AuditEvent("authorized", card_id))  # not the owner
    assert not store.mark_in_doubt(key, None, NOW)  # lease still live
    assert store.mark_in_doubt(key, None, NOW + 31)  # expired: in doubt
    # The owner still records the truth it learnt.
    assert store.finish_payment(key, "w1", "approved", b"r", NOW + 32,
                                AuditEvent("authorized", card_id))
    entry = store.ledger_entry(key)
    assert entry.state == "approved" and entry.result == b"r"
    assert not store.abandon_payment(key, "w1")  # only a pending row can be abandoned


def test_abandon(store: SqlStore) -> None:
    card_id = _card(store)
    challenge = _challenge(card_id)
    _spend(store, card_id, challenge)
    key = secrets.token_bytes(32)
    store.settle_proof(card_id, challenge.challenge_id, verified=True, limit=LIMIT, now=NOW,
                       ledger=LedgerStart(key, b"p" * 32, "w1", NOW + 30, "sv-r"))
    assert store.abandon_payment(key, "w1")
    assert store.ledger_entry(key) is None


def test_audit_chain_verifies(store: SqlStore) -> None:
    card_id = _card(store)
    for _ in range(3):
        _spend(store, card_id)
    store.append_audit(AuditEvent("key_rotated", "", {"old": "a", "new": "b"}), NOW)
    report = verify_audit_chain(store.audit_rows(), AUDIT_KEY)
    assert report.entries == 5
    assert [r.seq for r in store.audit_rows()] == [1, 2, 3, 4, 5]


def test_failed_operation_changes_nothing(store: SqlStore) -> None:
    """A write that fails half-way (here: the audit append) commits none of its parts."""
    card_id = _card(store)

    def broken(*_: object) -> bytes:
        raise RuntimeError("disk full")
    store.attach_audit(broken)
    with pytest.raises(RuntimeError):
        _spend(store, card_id)
    store.attach_audit(audit_chain(AUDIT_KEY))
    assert store.card(card_id).guesses_used == 0
    assert store.query("SELECT count(*) FROM challenges")[0][0] == 0
    assert store.query("SELECT count(*) FROM nonces")[0][0] == 0


def test_sweep(store: SqlStore) -> None:
    card_id = _card(store)
    _spend(store, card_id, _challenge(card_id, ttl=1))
    store.begin_enrollment(secrets.token_hex(16), b"d" * 32, _blob(), NOW, NOW + 1)
    assert store.sweep(NOW + 500) == 3  # challenge, nonce, pending card
    assert store.card(card_id) is not None


def test_delete_card_cancels_a_pending_enrollment(store: SqlStore) -> None:
    """A pending row is deleted like an active card, audited as a cancelled enrollment."""
    pending = secrets.token_hex(16)
    assert store.begin_enrollment(pending, b"d" * 32, _blob(), NOW, NOW + 600) == "ok"
    active = _card(store)
    assert store.delete_card(pending, secrets.token_bytes(16), NOW + 120, NOW)
    assert store.delete_card(active, secrets.token_bytes(16), NOW + 120, NOW)
    assert store.pending_enrollments() == 0 and store.card_count() == 0
    events = [(row.event, row.card_id) for row in store.audit_rows()][-2:]
    assert events == [("enrollment_cancelled", pending), ("deleted", active)]


def _begin(store: SqlStore, origin: bytes, now: float = NOW) -> str:
    return store.begin_enrollment(secrets.token_hex(16), b"d" * 32, _blob(), now, now + 600,
                                  origin=origin, per_origin=3, total=5)


def test_pending_enrollment_caps(store: SqlStore) -> None:
    """At most per_origin live pending rows per origin and total in all; expired rows
    and finished enrollments (whose origin is cleared) do not count."""
    assert [_begin(store, b"a" * 16) for _ in range(4)] == ["ok", "ok", "ok", "full"]
    assert [_begin(store, b"b" * 16) for _ in range(3)] == ["ok", "ok", "full"]  # total 5
    assert store.pending_enrollments() == 5
    assert _begin(store, b"c" * 16, now=NOW + 601) == "ok"  # the others expired
    row = store.query("SELECT origin FROM cards WHERE state = 'pending' LIMIT 1")[0]
    assert bytes(row[0]) in (b"a" * 16, b"b" * 16)


def test_pending_caps_hold_under_concurrency(store: SqlStore) -> None:
    """Twelve racing enrollments from one origin: exactly per_origin (3) get a row."""
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def one() -> None:
        barrier.wait()
        outcomes.append(_begin(store, b"z" * 16))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(outcomes) == Counter({"ok": 3, "full": 9})
    assert store.pending_enrollments() == 3


def test_concurrent_guesses_never_exceed_limit(store: SqlStore) -> None:
    """Correct by construction: however many threads race, at most the unproven budget
    of evaluations is granted, and of as many racing wrong proofs at most LIMIT are
    answered (the rest find the card locked, which tells them nothing)."""
    card_id = _card(store)
    outcomes: list[str] = []
    lock = threading.Lock()
    threads_n = UNPROVEN_LIMIT + 6
    barrier = threading.Barrier(threads_n)
    challenges: list[ChallengeRecord] = []

    def spend() -> None:
        challenge = _challenge(card_id)
        barrier.wait()
        result = _spend(store, card_id, challenge).outcome
        with lock:
            outcomes.append(result)
            if result == "spent":
                challenges.append(challenge)
    _race(spend, threads_n)
    assert outcomes.count("spent") == UNPROVEN_LIMIT
    assert Counter(r.event for r in store.audit_rows())["guess_used"] == UNPROVEN_LIMIT
    proofs: list[str] = []
    barrier = threading.Barrier(len(challenges))

    def prove(challenge: ChallengeRecord) -> None:
        barrier.wait()
        out = store.settle_proof(card_id, challenge.challenge_id, verified=False,
                                 limit=LIMIT, now=NOW)
        with lock:
            proofs.append(out.outcome)
    _race(lambda: prove(challenges.pop()), len(challenges))
    assert proofs.count("wrong") == LIMIT - 1 and proofs.count("locked") == UNPROVEN_LIMIT - 4
    card = store.card(card_id)
    assert card.locked and card.guesses_used == LIMIT
    verify_audit_chain(store.audit_rows(), AUDIT_KEY)


def _race(fn: Callable[[], None], n: int) -> None:
    threads = [threading.Thread(target=fn) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_right_proof_racing_the_locking_one_stays_locked(store: SqlStore) -> None:
    card_id = _card(store)
    challenges = [_challenge(card_id) for _ in range(LIMIT + 1)]
    for c in challenges:
        _spend(store, card_id, c)
    for c in challenges[:LIMIT]:
        store.settle_proof(card_id, c.challenge_id, verified=False, limit=LIMIT, now=NOW)
    assert store.settle_proof(card_id, challenges[-1].challenge_id, verified=True,
                              limit=LIMIT, now=NOW).outcome == "locked"
    assert store.card(card_id).locked


def test_reenrollment_replaces_keys_and_unlocks(store: SqlStore) -> None:
    card_id = _card(store)
    stale = _challenge(card_id)
    _spend(store, card_id, stale)
    store.tamper("UPDATE cards SET locked = 1, guesses_used = 5 WHERE card_id = ?", card_id)
    nonce = secrets.token_bytes(16)
    slot = ChallengeRecord(secrets.token_hex(16), card_id, secrets.token_bytes(32),
                           "reenroll", NOW + 60, _blob(body=b"n" * 24))
    assert store.begin_reenrollment(card_id, nonce, NOW + 120, slot, NOW) == "ok"
    assert store.begin_reenrollment(card_id, nonce, NOW + 120, slot, NOW) == "replayed"
    assert store.begin_reenrollment(secrets.token_hex(16), secrets.token_bytes(16),
                                    NOW + 120, slot, NOW) == "unknown"
    event = AuditEvent("reenrolled", card_id)
    assert store.finish_reenrollment(card_id, slot.challenge_id, _blob(body=b"o" * 24),
                                     b"w" * 32, _blob(body=b"s" * 24), NOW, event)
    card = store.card(card_id)
    assert (card.locked, card.guesses_used, card.verifier) == (False, 0, b"w" * 32)
    assert card.share == _blob(body=b"s" * 24) and card.oprf_key == _blob(body=b"o" * 24)
    # Single use, and proofs made under the old keys can no longer settle.
    assert not store.finish_reenrollment(card_id, slot.challenge_id, _blob(), b"x" * 32,
                                         _blob(), NOW, event)
    assert store.settle_proof(card_id, stale.challenge_id, verified=True, limit=LIMIT,
                              now=NOW).outcome == "gone"


def test_reenrollment_challenge_expires(store: SqlStore) -> None:
    card_id = _card(store)
    slot = ChallengeRecord(secrets.token_hex(16), card_id, secrets.token_bytes(32),
                           "reenroll", NOW + 1, _blob())
    assert store.begin_reenrollment(card_id, secrets.token_bytes(16), NOW + 120, slot,
                                    NOW) == "ok"
    assert not store.finish_reenrollment(card_id, slot.challenge_id, _blob(), b"w" * 32,
                                         _blob(), NOW + 2, AuditEvent("reenrolled", card_id))
    assert store.card(card_id).verifier == b"v" * 32


def test_concurrent_ledger_start_one_winner(store: SqlStore) -> None:
    card_id = _card(store)
    challenges = [_challenge(card_id) for _ in range(4)]
    for c in challenges:
        _spend(store, card_id, c)
    key = secrets.token_bytes(32)
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(challenges))

    def go(c: ChallengeRecord, owner: str) -> None:
        barrier.wait()
        out = store.settle_proof(card_id, c.challenge_id, verified=True, limit=LIMIT, now=NOW,
                                 ledger=LedgerStart(key, b"p" * 32, owner, NOW + 30, "r"))
        with lock:
            results.append(out.ledger)
    threads = [threading.Thread(target=go, args=(c, f"w{i}")) for i, c in enumerate(challenges)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["new", "recorded", "recorded", "recorded"]


# -- reconciliation (issue 11) -----------------------------------------------------------


def _pending(store: SqlStore, owner: str = "w1", lease: float = NOW + 30,
             intent: bytes = b"intent") -> bytes:
    """A ledger row left pending by ``owner``: its key."""
    card_id = _card(store)
    challenge = _challenge(card_id)
    _spend(store, card_id, challenge)
    key = secrets.token_bytes(32)
    out = store.settle_proof(card_id, challenge.challenge_id, verified=True, limit=LIMIT,
                             now=NOW, ledger=LedgerStart(key, b"p" * 32, owner, lease,
                                                         "sv-0", intent))
    assert out.ledger == "new"
    return key


def test_pending_row_keeps_intent_and_attempt(store: SqlStore) -> None:
    key = _pending(store)
    entry = store.ledger_entry(key)
    assert (entry.state, entry.result, entry.attempt, entry.reference) == (
        "pending", b"intent", 0, "sv-0")


def test_unsettled_lists_in_doubt_and_expired_leases_only(store: SqlStore) -> None:
    live = _pending(store, lease=NOW + 30)
    expired = _pending(store, lease=NOW - 1)
    doubt = _pending(store)
    assert store.mark_in_doubt(doubt, "w1", NOW)
    done = _pending(store)
    assert store.finish_payment(done, "w1", "approved", b"r", NOW,
                                AuditEvent("authorized", ""))
    found = {e.key for e in store.unsettled(NOW, 100)}
    assert found == {expired, doubt}
    assert live not in found and done not in found
    assert len(store.unsettled(NOW, 1)) == 1  # bounded


def test_claim_blocks_the_original_worker(store: SqlStore) -> None:
    """Once a reconciler holds a row, the worker that started it cannot record into it
    (it might record approved after the reconciler reversed)."""
    key = _pending(store)
    assert store.mark_in_doubt(key, "w1", NOW)
    held = store.claim_unsettled(key, "rec", NOW + 30, NOW)
    assert held is not None and held.state == "settling" and held.owner == "rec"
    assert not store.finish_payment(key, "w1", "approved", b"r", NOW,
                                    AuditEvent("authorized", ""))
    assert store.claim_unsettled(key, "rec2", NOW + 30, NOW) is None  # lease live
    assert store.ledger_entry(key).state == "settling"


def test_claim_refuses_live_and_settled_rows(store: SqlStore) -> None:
    live = _pending(store, lease=NOW + 30)
    assert store.claim_unsettled(live, "rec", NOW + 30, NOW) is None
    assert store.claim_unsettled(live, "rec", NOW + 60, NOW + 31) is not None  # expired
    done = _pending(store)
    store.finish_payment(done, "w1", "declined", b"r", NOW, AuditEvent("declined", ""))
    assert store.claim_unsettled(done, "rec", NOW + 30, NOW) is None
    assert store.claim_unsettled(secrets.token_bytes(32), "rec", NOW + 30, NOW) is None


def test_expired_claim_can_be_taken_over(store: SqlStore) -> None:
    key = _pending(store)
    store.mark_in_doubt(key, "w1", NOW)
    assert store.claim_unsettled(key, "rec1", NOW + 30, NOW) is not None
    assert [e.key for e in store.unsettled(NOW + 31, 10)] == [key]
    assert store.claim_unsettled(key, "rec2", NOW + 90, NOW + 31) is not None
    # The first reconciler's late answer is refused: compare-and-set on the owner.
    assert not store.settle_payment(key, "rec1", "approved", b"r", NOW + 32,
                                    [AuditEvent("reconciled", "")])
    assert store.settle_payment(key, "rec2", "reversed", None, NOW + 32,
                                [AuditEvent("reversed", ""), AuditEvent("reconciled", "")])
    entry = store.ledger_entry(key)
    assert (entry.state, entry.result) == ("reversed", b"intent")  # None keeps the intent
    events = [r.event for r in store.audit_rows()]
    assert events[-2:] == ["reversed", "reconciled"]


def test_settle_needs_a_claim_and_a_settled_state(store: SqlStore) -> None:
    key = _pending(store)
    store.mark_in_doubt(key, "w1", NOW)
    assert not store.settle_payment(key, "rec", "approved", b"r", NOW, [])  # not claimed
    store.claim_unsettled(key, "rec", NOW + 30, NOW)
    with pytest.raises(ValueError):
        store.settle_payment(key, "rec", "pending", None, NOW, [])
    assert store.ledger_entry(key).state == "settling"
    assert store.settle_payment(key, "rec", "approved", b"final", NOW, [])
    entry = store.ledger_entry(key)
    assert (entry.state, entry.result, entry.owner) == ("approved", b"final", "")
    assert store.unsettled(NOW + 1000, 10) == []


def test_release_claim_back_to_in_doubt(store: SqlStore) -> None:
    key = _pending(store)
    store.mark_in_doubt(key, "w1", NOW)
    store.claim_unsettled(key, "rec", NOW + 30, NOW)
    assert not store.release_claim(key, "other")
    assert store.release_claim(key, "rec")
    assert store.ledger_entry(key).state == "in_doubt"
    assert [e.key for e in store.unsettled(NOW, 10)] == [key]


def test_settle_audit_failure_changes_nothing(store: SqlStore) -> None:
    key = _pending(store)
    store.mark_in_doubt(key, "w1", NOW)
    store.claim_unsettled(key, "rec", NOW + 30, NOW)
    with pytest.raises(ValueError):  # not an audit event the chain knows
        store.settle_payment(key, "rec", "reversed", None, NOW, [AuditEvent("bogus", "")])
    assert store.ledger_entry(key).state == "settling"


@pytest.mark.parametrize("settled", ["reversed", "failed"])
def test_restart_after_no_money_taken(store: SqlStore, settled: str) -> None:
    """A reversed or failed key restarts once, under the next attempt and reference."""
    key = _pending(store)
    store.mark_in_doubt(key, "w1", NOW)
    store.claim_unsettled(key, "rec", NOW + 30, NOW)
    store.settle_payment(key, "rec", settled, None, NOW, [])
    again = LedgerStart(key, b"p" * 32, "w2", NOW + 60, "sv-1", b"intent-1", attempt=1)
    assert not store.restart_payment(LedgerStart(key, b"q" * 32, "w2", NOW + 60, "sv-1",
                                                 b"i", 1), 0, NOW)  # other params
    assert not store.restart_payment(again, 1, NOW)  # stale attempt number
    assert store.restart_payment(again, 0, NOW)
    assert not store.restart_payment(again, 0, NOW)  # one winner
    entry = store.ledger_entry(key)
    assert (entry.state, entry.owner, entry.reference, entry.attempt, entry.result) == (
        "pending", "w2", "sv-1", 1, b"intent-1")
    assert store.finish_payment(key, "w2", "approved", b"r", NOW,
                                AuditEvent("authorized", ""))


@pytest.mark.parametrize("state", ["approved", "declined", "pending", "in_doubt"])
def test_restart_refused_unless_no_money_taken(store: SqlStore, state: str) -> None:
    key = _pending(store)
    if state in ("approved", "declined"):
        store.finish_payment(key, "w1", state, b"r", NOW, AuditEvent("authorized", ""))
    elif state == "in_doubt":
        store.mark_in_doubt(key, "w1", NOW)
    again = LedgerStart(key, b"p" * 32, "w2", NOW + 60, "sv-1", b"i", 1)
    assert not store.restart_payment(again, 0, NOW)
    assert store.ledger_entry(key).state == state


def test_concurrent_claims_one_winner(store: SqlStore) -> None:
    key = _pending(store)
    store.mark_in_doubt(key, "w1", NOW)
    won: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def go(owner: str) -> None:
        barrier.wait()
        if store.claim_unsettled(key, owner, NOW + 30, NOW) is not None:
            with lock:
                won.append(owner)
    threads = [threading.Thread(target=go, args=(f"rec{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert store.ledger_entry(key).owner == won[0]


def test_concurrent_restarts_one_winner(store: SqlStore) -> None:
    key = _pending(store)
    store.mark_in_doubt(key, "w1", NOW)
    store.claim_unsettled(key, "rec", NOW + 30, NOW)
    store.settle_payment(key, "rec", "failed", None, NOW, [])
    wins: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def go(i: int) -> None:
        barrier.wait()
        ok = store.restart_payment(LedgerStart(key, b"p" * 32, f"w{i}", NOW + 60, "sv-1",
                                               b"i", 1), 0, NOW)
        with lock:
            wins.append(ok)
    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1


def test_abandoned_later_attempt_stays_failed(store: SqlStore) -> None:
    """An acquirer-unavailable answer on attempt 1 must not restart the key at attempt
    0, whose reference may have been charged and reversed."""
    key = _pending(store)
    store.mark_in_doubt(key, "w1", NOW)
    store.claim_unsettled(key, "rec", NOW + 30, NOW)
    store.settle_payment(key, "rec", "reversed", None, NOW, [])
    assert store.restart_payment(LedgerStart(key, b"p" * 32, "w2", NOW + 60, "sv-1", b"i", 1),
                                 0, NOW)
    assert not store.abandon_payment(key, "w1")  # not the owner
    assert store.abandon_payment(key, "w2")
    entry = store.ledger_entry(key)
    assert (entry.state, entry.attempt) == ("failed", 1)
    assert store.restart_payment(LedgerStart(key, b"p" * 32, "w3", NOW + 60, "sv-2", b"i", 2),
                                 1, NOW)


# -- fraud-rule history and the outbox (issue 11) ----------------------------------------


def _counting(limit: int, seen: list[bytes | None] | None = None):
    """A RiskCheck.decide that counts payments in the history blob (its decimal text)
    and declines past ``limit``: the store's part only, without the rules' crypto."""
    def decide(blob: bytes | None) -> RiskVerdict:
        if seen is not None:
            seen.append(blob)
        count = int(blob or b"0")
        if count >= limit:
            return RiskVerdict(declined=b"declined-result",
                               event=AuditEvent("risk_declined", "", {"rule": "risk: test"}))
        return RiskVerdict(history=str(count + 1).encode())
    return decide


def _proof(store: SqlStore, card_id: str, risk: RiskCheck, key: bytes | None = None):
    c = _challenge(card_id)
    _spend(store, card_id, c)
    return store.settle_proof(card_id, c.challenge_id, verified=True, limit=LIMIT, now=NOW,
                              ledger=LedgerStart(key or secrets.token_bytes(32), b"p" * 32,
                                                 "w1", NOW + 30, "r"), risk=risk)


def test_risk_check_counts_and_declines_in_the_proof_transaction(store: SqlStore) -> None:
    """The history row starts empty, is written with each new pending row, and a
    decline is recorded as the key's result (declined, no lease), audited."""
    card_id = _card(store)
    seen: list[bytes | None] = []
    risk = RiskCheck(b"R" * 32, _counting(2, seen))
    assert _proof(store, card_id, risk).ledger == "new"
    assert _proof(store, card_id, risk).ledger == "new"
    key = secrets.token_bytes(32)
    out = _proof(store, card_id, risk, key)
    assert out.outcome == "ok" and out.ledger == "recorded" and out.entry is not None
    assert out.entry.state == "declined" and out.entry.result == b"declined-result"
    assert out.entry.owner == "" and out.entry.lease_until == 0
    assert seen == [None, b"1", b"2"]
    assert store.risk_histories() == [(b"R" * 32, b"2")]
    assert [r.event for r in store.audit_rows()].count("risk_declined") == 1
    assert verify_audit_chain(store.audit_rows(), AUDIT_KEY).entries > 0


def test_risk_check_skipped_for_a_recorded_key(store: SqlStore) -> None:
    """A key already in the ledger (a retry) is not counted again."""
    card_id = _card(store)
    seen: list[bytes | None] = []
    risk = RiskCheck(b"S" * 32, _counting(5, seen))
    key = secrets.token_bytes(32)
    assert _proof(store, card_id, risk, key).ledger == "new"
    assert _proof(store, card_id, risk, key).ledger == "recorded"
    assert seen == [None]


def test_risk_check_rolls_back_with_its_transaction(store: SqlStore) -> None:
    """A decide that raises changes nothing: the challenge stays, no ledger row."""
    card_id = _card(store)
    c = _challenge(card_id)
    _spend(store, card_id, c)

    def broken(blob: bytes | None) -> RiskVerdict:
        raise RuntimeError("bug")
    key = secrets.token_bytes(32)
    with pytest.raises(RuntimeError):
        store.settle_proof(card_id, c.challenge_id, verified=True, limit=LIMIT, now=NOW,
                           ledger=LedgerStart(key, b"p" * 32, "w1", NOW + 30, "r"),
                           risk=RiskCheck(b"T" * 32, broken))
    assert store.ledger_entry(key) is None
    assert store.challenge(c.challenge_id).state == "evaluated"


def test_concurrent_risk_checks_count_exactly(store: SqlStore) -> None:
    """Six payments of one card at once against a limit of 5: exactly 5 new pending
    rows, one decline, and the history says 5 (no lost update on any backend)."""
    card_id = _card(store)
    challenges = [_challenge(card_id) for _ in range(6)]
    for c in challenges:
        _spend(store, card_id, c)
    risk = RiskCheck(b"C" * 32, _counting(5))
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(challenges))

    def go(c: ChallengeRecord) -> None:
        barrier.wait()
        out = store.settle_proof(card_id, c.challenge_id, verified=True, limit=LIMIT, now=NOW,
                                 ledger=LedgerStart(secrets.token_bytes(32), b"p" * 32, "w",
                                                    NOW + 30, "r"), risk=risk)
        with lock:
            results.append(out.ledger)
    threads = [threading.Thread(target=go, args=(c,)) for c in challenges]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["new"] * 5 + ["recorded"]
    assert store.risk_histories() == [(b"C" * 32, b"5")]


def test_forget_risk(store: SqlStore) -> None:
    card_id = _card(store)
    _proof(store, card_id, RiskCheck(b"F" * 32, _counting(5)))
    assert store.forget_risk(b"F" * 32) and not store.forget_risk(b"F" * 32)
    assert store.risk_histories() == []


def _message(payload: bytes = b"wrapped") -> OutboxMessage:
    return OutboxMessage(secrets.token_hex(16), "receipt", payload)


def test_outbox_written_only_with_the_recorded_outcome(store: SqlStore) -> None:
    """finish_payment queues its messages in its own transaction: not when the row is
    not the caller's (nothing recorded, nothing queued)."""
    key = _pending(store)
    assert not store.finish_payment(key, "other", "approved", b"res", NOW,
                                    AuditEvent("authorized", ""), [_message()])
    assert store.outbox_pending() == 0
    assert store.finish_payment(key, "w1", "approved", b"res", NOW,
                                AuditEvent("authorized", ""), [_message()])
    assert store.outbox_pending() == 1


def test_outbox_written_with_a_settled_outcome(store: SqlStore) -> None:
    key = _pending(store)
    assert store.mark_in_doubt(key, "w1", NOW)
    assert store.claim_unsettled(key, "rec", NOW + 30, NOW) is not None
    assert not store.settle_payment(key, "other", "approved", b"res", NOW, [], [_message()])
    assert store.outbox_pending() == 0
    assert store.settle_payment(key, "rec", "approved", b"res", NOW, [], [_message()])
    assert store.outbox_pending() == 1


def test_outbox_claim_deliver_retry(store: SqlStore) -> None:
    """A claimed message is held until its lease; a retry is due when told; a delivered
    one is deleted, only by the claim that delivered it."""
    key = _pending(store)
    message = _message(b"payload-1")
    store.finish_payment(key, "w1", "approved", b"res", NOW, AuditEvent("authorized", ""),
                         [message])
    claimed = store.claim_outbox(NOW, NOW + 60, 10)
    assert [(m.message_id, m.payload, m.attempts) for m in claimed] == [
        (message.message_id, b"payload-1", 1)]
    assert store.claim_outbox(NOW + 59, NOW + 119, 10) == []  # held by the lease
    assert store.outbox_retry(message.message_id, 1, NOW + 5)
    assert store.claim_outbox(NOW + 4, NOW + 64, 10) == []
    again = store.claim_outbox(NOW + 5, NOW + 65, 10)
    assert [m.attempts for m in again] == [2]
    assert not store.outbox_delivered(message.message_id, 1)  # a stale claim
    assert store.outbox_delivered(message.message_id, 2)
    assert store.outbox_pending() == 0
    # A lease that ran out (the deliverer died) is claimed again.
    key2 = _pending(store)
    store.finish_payment(key2, "w1", "approved", b"res", NOW, AuditEvent("authorized", ""),
                         [_message()])
    assert len(store.claim_outbox(NOW, NOW + 60, 10)) == 1
    assert [m.attempts for m in store.claim_outbox(NOW + 60, NOW + 120, 10)] == [2]


def test_concurrent_outbox_claims_one_winner(store: SqlStore) -> None:
    """Four deliverers at once: every message is claimed by exactly one of them."""
    for _ in range(6):
        key = _pending(store)
        store.finish_payment(key, "w1", "approved", b"res", NOW, AuditEvent("authorized", ""),
                             [_message()])
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        got = store.claim_outbox(NOW, NOW + 60, 10)
        with lock:
            claimed.extend(m.message_id for m in got)
    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 6 and len(set(claimed)) == 6


# -- wallets: one PIN-guess budget across a device's cards --------------------------------


def _wallet_card(store: SqlStore, row: bytes) -> str:
    """A card in the wallet ``row`` (its reference stored 'wrapped': KID_A + row)."""
    card_id = secrets.token_hex(16)
    assert store.begin_enrollment(card_id, b"d" * 32, _blob(), NOW, NOW + 600,
                                  wallet=KID_A + row) == "ok"
    assert store.finish_enrollment(card_id, b"v" * 32, _blob(), NOW,
                                   AuditEvent("enrolled", card_id))
    return card_id


def _unwrap(blob: bytes) -> bytes:
    return blob[len(KID_A):]


def _prove(store: SqlStore, card_id: str, row: bytes | None, *, verified: bool = False):
    challenge = _challenge(card_id)
    spend = store.spend_guess(card_id, secrets.token_bytes(16), NOW + 120, challenge, LIMIT,
                              NOW, wallet=row, share_version=store.card(card_id).share_version)
    if spend.outcome != "spent":
        return spend.outcome
    return store.settle_proof(card_id, challenge.challenge_id, verified=verified,
                              limit=LIMIT, now=NOW, wallet=_unwrap)


def _wallet_count(store: SqlStore, row: bytes) -> int:
    found = store.query("SELECT guesses FROM wallets WHERE wallet = ?", row)
    return int(found[0][0]) if found else 0


def test_wallet_counts_wrong_proofs_across_its_cards(store: SqlStore) -> None:
    """Three cards of one wallet (one PIN, say) get LIMIT wrong proofs between them,
    not LIMIT each: the LIMIT-th locks its card, and every other card of the wallet is
    refused from then on, at evaluation and at proof. A card without a wallet (enrolled
    before wallets) keeps its own limit only."""
    row = secrets.token_bytes(16)
    cards = [_wallet_card(store, row) for _ in range(3)]
    alone = _card(store)
    assert store.card(cards[0]).wallet == KID_A + row and store.card(alone).wallet is None
    left = []
    for i in range(LIMIT - 1):
        outcome = _prove(store, cards[i % 3], row)
        left.append(outcome.attempts_left)
    assert left == [LIMIT - 1 - i for i in range(LIMIT - 1)]
    # A challenge issued before the wallet reached its limit is refused after it.
    late = _challenge(cards[2])
    assert store.spend_guess(cards[2], secrets.token_bytes(16), NOW + 120, late, LIMIT, NOW,
                             wallet=row).outcome == "spent"
    assert _prove(store, cards[1], row).outcome == "locked"  # the LIMIT-th wrong proof
    assert _wallet_count(store, row) == LIMIT
    assert store.settle_proof(cards[2], late.challenge_id, verified=True, limit=LIMIT,
                              now=NOW, wallet=_unwrap).outcome == "locked"  # right or not
    assert _prove(store, cards[0], row) == "locked"  # refused before any evaluation
    assert all(store.card(c).locked for c in cards)
    assert sum(store.card(c).guesses_used for c in cards) == LIMIT
    assert _prove(store, alone, None, verified=True).outcome == "ok"
    verify_audit_chain(store.audit_rows(), AUDIT_KEY)


def test_right_proof_takes_back_only_its_own_wrong_proofs(store: SqlStore) -> None:
    """A right proof resets its card and takes that card's wrong proofs off the wallet,
    no others: the owner's typos are forgiven as before, but knowing one card's PIN
    buys no guesses at another's."""
    row = secrets.token_bytes(16)
    a, b = _wallet_card(store, row), _wallet_card(store, row)
    for card in (a, a, b, b):
        assert _prove(store, card, row).outcome == "wrong"
    assert _wallet_count(store, row) == 4
    assert _prove(store, a, row, verified=True).outcome == "ok"
    assert _wallet_count(store, row) == 2 and store.card(a).guesses_used == 0
    assert _prove(store, a, row, verified=True).outcome == "ok"  # nothing more to take
    assert _wallet_count(store, row) == 2
    outcome = _prove(store, b, row)
    assert (outcome.outcome, outcome.attempts_left) == ("wrong", LIMIT - 3)
    # b's spend reports the wallet's count where it is the larger.
    spend = store.spend_guess(a, secrets.token_bytes(16), NOW + 120, _challenge(a), LIMIT,
                              NOW, wallet=row)
    assert (spend.outcome, spend.guesses_used) == ("spent", 3)


def test_wallet_count_survives_delete_and_reenrollment(store: SqlStore) -> None:
    """Deleting or re-enrolling a card never refunds its wrong proofs to the wallet (a
    thief with the device could do both, to buy more guesses at the other cards); a
    re-enrolled card leaves the wallet, so a wallet at its limit does not keep it
    locked."""
    row = secrets.token_bytes(16)
    a, b, c = (_wallet_card(store, row) for _ in range(3))
    for card in (a, a, b):
        assert _prove(store, card, row).outcome == "wrong"
    assert store.delete_card(a, secrets.token_bytes(16), NOW + 120, NOW)
    assert _wallet_count(store, row) == 3
    nonce = secrets.token_bytes(16)
    slot = ChallengeRecord(secrets.token_hex(16), b, secrets.token_bytes(32), "reenroll",
                           NOW + 60, _blob(body=b"n" * 24))
    assert store.begin_reenrollment(b, nonce, NOW + 120, slot, NOW) == "ok"
    assert store.finish_reenrollment(b, slot.challenge_id, _blob(), b"w" * 32, _blob(), NOW,
                                     AuditEvent("reenrolled", b))
    assert store.card(b).wallet is None and _wallet_count(store, row) == 3
    outcome = _prove(store, c, row)
    assert (outcome.outcome, outcome.attempts_left) == ("wrong", LIMIT - 4)
    assert _prove(store, c, row).outcome == "locked"
    assert _prove(store, b, None).outcome == "wrong"  # its own limit only now


def test_concurrent_wrong_proofs_on_a_wallet_never_exceed_its_limit(store: SqlStore) -> None:
    """Wrong proofs racing on three cards of one wallet (LIMIT each would allow 3 x
    LIMIT): at most LIMIT are counted, between card and wallet alike, and every other
    one finds the wallet at its limit (which tells it nothing)."""
    row = secrets.token_bytes(16)
    cards = [_wallet_card(store, row) for _ in range(3)]
    challenges = []
    for card in cards:
        for _ in range(LIMIT):
            challenge = _challenge(card)
            assert store.spend_guess(card, secrets.token_bytes(16), NOW + 120, challenge,
                                     LIMIT, NOW, wallet=row).outcome == "spent"
            challenges.append(challenge)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(challenges))

    def prove(challenge: ChallengeRecord) -> None:
        barrier.wait()
        out = store.settle_proof(challenge.card_id, challenge.challenge_id, verified=False,
                                 limit=LIMIT, now=NOW, wallet=_unwrap)
        with lock:
            outcomes.append(out.outcome)
    pending = list(challenges)
    _race(lambda: prove(pending.pop()), len(challenges))
    assert outcomes.count("wrong") == LIMIT - 1
    assert outcomes.count("locked") == len(challenges) - LIMIT + 1
    assert _wallet_count(store, row) == LIMIT
    assert sum(store.card(c).guesses_used for c in cards) == LIMIT
    assert Counter(r.event for r in store.audit_rows())["wrong_pin"] == LIMIT - 1
    verify_audit_chain(store.audit_rows(), AUDIT_KEY)


def test_a_proof_checked_before_a_reenrollment_counts_for_nothing(store: SqlStore) -> None:
    """The evaluation's possession proof is checked against the card read before the
    store's transaction; if the card was re-enrolled in between (a new floor, new
    tokens), the proof was made against the old enrollment and is void: refused, the
    card not marked, nothing committed (second review, F-B)."""
    card_id = _card(store)
    floor = store.card(card_id).share_floor  # type: ignore[union-attr]
    spent = store.spend_guess(card_id, secrets.token_bytes(16), NOW + 120,
                              _challenge(card_id), LIMIT, NOW, share_version=0,
                              proof_floor=floor + 2)
    assert spent.outcome == "unproven"
    card = store.card(card_id)
    assert card is not None and not card.cloned and card.share_version == 0
    ok = store.spend_guess(card_id, secrets.token_bytes(16), NOW + 120, _challenge(card_id),
                           LIMIT, NOW, share_version=0, proof_floor=floor)
    assert ok.outcome == "spent"
