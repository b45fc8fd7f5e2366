"""The store contract: every backend (SQLite; PostgreSQL under READ COMMITTED and under
SERIALIZABLE) gives the same answers, and every operation is atomic and race-free."""

from __future__ import annotations

import secrets
import threading
from collections import Counter

import pytest

from splitvault.server._audit import verify
from splitvault.server._schema import SCHEMA_VERSION
from splitvault.server._sql import SqlStore
from splitvault.server._store import AuditEvent, ChallengeRecord, LedgerStart

from .conftest import AUDIT_KEY

NOW = 1_000_000.0
LIMIT = 5
KID_A = b"A" * 8
KID_B = b"B" * 8


def _blob(kid: bytes = KID_A, body: bytes = b"x" * 24) -> bytes:
    return kid + body


def _card(store: SqlStore, card_id: str | None = None) -> str:
    card_id = card_id or secrets.token_hex(16)
    assert store.begin_enrollment(card_id, b"d" * 32, _blob(), NOW, NOW + 600)
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
    assert store.begin_enrollment(card_id, b"d" * 32, _blob(), NOW, NOW + 600)
    assert not store.begin_enrollment(card_id, b"e" * 32, _blob(), NOW, NOW + 600)
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


def test_spend_guess_counts_then_locks(store: SqlStore) -> None:
    card_id = _card(store)
    used = [_spend(store, card_id, _challenge(card_id, ttl=-1)).guesses_used
            for _ in range(LIMIT)]
    assert used == [1, 2, 3, 4, 5]
    # Every guess spent, their challenges long expired: the next one locks.
    assert _spend(store, card_id).outcome == "locked"
    assert store.card(card_id).locked
    assert _spend(store, card_id).outcome == "locked"
    events = Counter(row.event for row in store.audit_rows())
    assert events["guess_used"] == LIMIT and events["locked"] == 1


def test_spend_guess_busy_while_proofs_pending(store: SqlStore) -> None:
    card_id = _card(store)
    for _ in range(LIMIT):
        assert _spend(store, card_id).outcome == "spent"
    assert _spend(store, card_id).outcome == "busy"  # live challenges may still succeed
    assert not store.card(card_id).locked


def test_spend_guess_replay_and_unknown(store: SqlStore) -> None:
    card_id = _card(store)
    nonce = secrets.token_bytes(16)
    assert store.spend_guess(card_id, nonce, NOW + 120, _challenge(card_id), LIMIT,
                             NOW).outcome == "spent"
    assert store.spend_guess(card_id, nonce, NOW + 120, _challenge(card_id), LIMIT,
                             NOW).outcome == "replayed"
    assert store.card(card_id).guesses_used == 1
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
    report = verify(store.audit_rows(), AUDIT_KEY)
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
    from splitvault.server._audit import chain
    store.attach_audit(chain(AUDIT_KEY))
    assert store.card(card_id).guesses_used == 0
    assert store.query("SELECT count(*) FROM challenges")[0][0] == 0
    assert store.query("SELECT count(*) FROM nonces")[0][0] == 0


def test_sweep(store: SqlStore) -> None:
    card_id = _card(store)
    _spend(store, card_id, _challenge(card_id, ttl=1))
    store.begin_enrollment(secrets.token_hex(16), b"d" * 32, _blob(), NOW, NOW + 1)
    assert store.sweep(NOW + 500) == 3  # challenge, nonce, pending card
    assert store.card(card_id) is not None


def test_concurrent_guesses_never_exceed_limit(store: SqlStore) -> None:
    """Correct by construction: however many threads race, at most LIMIT are spent."""
    card_id = _card(store)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def go() -> None:
        barrier.wait()
        result = _spend(store, card_id).outcome
        with lock:
            outcomes.append(result)
    threads = [threading.Thread(target=go) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("spent") == LIMIT
    assert store.card(card_id).guesses_used == LIMIT
    assert Counter(r.event for r in store.audit_rows())["guess_used"] == LIMIT
    verify(store.audit_rows(), AUDIT_KEY)


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
