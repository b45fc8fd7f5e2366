"""The device's per-card lock and its store's write transaction: one payment of a card
at a time, even while locks of ids that name no card are being dropped, and a write
that fails to commit leaves the store usable."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import splitvault as sv
from splitvault.device import _device
from splitvault.device._store import _Write
from support import pay


def test_a_payment_waiting_on_a_dropped_lock_takes_the_current_one(
        device: sv.Device, pin: sv.Pin, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thread A holds the lock of an id and drops it (the id named no card); a payment
    B was already waiting on that lock; C takes the table's new lock. When A lets go,
    B must not go on with the dropped lock beside C: it waits for C's."""
    card_id = "ab" * 16
    fetched, answered = threading.Event(), threading.Event()
    table_lock = device._card_lock

    def fetch(cid: str) -> threading.Lock:
        lock = table_lock(cid)
        if threading.current_thread() is thread:
            fetched.set()  # B has the lock object: from here it waits on ``first``
        return lock

    def payment() -> None:
        try:
            pay(device, card_id, pin)
        except sv.UnknownCard:
            answered.set()

    monkeypatch.setattr(device, "_card_lock", fetch)
    thread = threading.Thread(target=payment, daemon=True)
    held = [device._current_lock(card_id)]  # what this thread holds, to let go at the end
    try:
        thread.start()
        assert fetched.wait(5)
        first = held[0]
        device._drop_lock(card_id, first)
        held.append(device._current_lock(card_id))  # a new lock, now the table's
        assert held[1] is not first
        held.remove(first)
        first.release()  # B wakes up holding the dropped lock
        assert not answered.wait(0.5), "a second payment of the card ran beside the first"
    finally:
        for lock in held:
            lock.release()
    thread.join(5)
    assert answered.is_set()
    assert (device._where, card_id) not in _device._CARD_LOCKS


def test_a_str_subclass_id_shares_the_plain_ids_lock(device: sv.Device, card_id: str,
                                                     pin: sv.Pin) -> None:
    """An id passed as a str subclass (with its own hash) pays under the same lock as
    the plain id, and leaves no lock of its own."""

    class Odd(str):
        def __hash__(self) -> int:
            return 7

    before = dict(_device._CARD_LOCKS)
    assert pay(device, Odd(card_id), pin).approved
    added = set(_device._CARD_LOCKS) - set(before)
    assert all(type(key[1]) is str for key in added)


class _FailingCommit:
    """A connection whose COMMIT fails, as on a full disk; everything else is SQLite's."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction


def test_a_write_that_fails_to_commit_is_rolled_back(tmp_path: Path) -> None:
    """A COMMIT that fails rolls the transaction back and lets the lock go: the row is
    not written, and the next write begins (it would fail inside an open transaction)."""
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x INTEGER)")
    lock = threading.RLock()
    with pytest.raises(sqlite3.OperationalError), \
            _Write(lock, _FailingCommit(conn)) as failing:  # type: ignore[arg-type]
        failing.execute("INSERT INTO t VALUES (1)")
    assert not conn.in_transaction
    assert lock.acquire(blocking=False)
    lock.release()
    with _Write(lock, conn) as ok:
        ok.execute("INSERT INTO t VALUES (2)")
    assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]
    conn.close()
