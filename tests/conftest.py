"""Shared fixtures: a server and a device in a temporary folder, TEST_ONLY KDF."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import splitvault as sv

PAN = "4111 1111 1111 1111"
PAN_DIGITS = "4111111111111111"
HOLDER = "KIM MINSU"
PIN = "739184"
OTHER_PIN = "580247"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[sv.ShareServer]:
    srv = sv.ShareServer.open(tmp_path / "server.db")
    yield srv
    srv.close()


@pytest.fixture
def device(tmp_path: Path, server: sv.ShareServer) -> Iterator[sv.Device]:
    dev = sv.Device.open(tmp_path / "device.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    yield dev
    dev.close()


@pytest.fixture
def card() -> sv.Card:
    return sv.Card(pan=PAN, expiry="12/30", holder=HOLDER)


@pytest.fixture
def pin() -> Iterator[sv.Pin]:
    with sv.Pin.from_digits(PIN) as p:
        yield p


@pytest.fixture
def card_id(device: sv.Device, card: sv.Card, pin: sv.Pin) -> str:
    return device.enroll(card, pin)


def pay(device: sv.Device, card_id: str, pin: sv.Pin, key: str = "order-1",
        amount: int = 12000, merchant: str = "Gift Shop") -> sv.Authorization:
    return device.authorize(card_id, pin, amount=amount, currency="KRW", merchant=merchant,
                            idempotency_key=key)


def snapshot(*paths: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the given SQLite files (to prove nothing changed)."""
    out: dict[str, list[tuple[object, ...]]] = {}
    for path in paths:
        conn = sqlite3.connect(path)
        try:
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            for table in tables:
                out[f"{path.name}:{table}"] = sorted(
                    conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)  # noqa: S608
        finally:
            conn.close()
    return out
