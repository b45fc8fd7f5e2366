"""Constants and helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import splitvault as sv
from splitvault._attack._harness import AttackResult

PAN = "4111 1111 1111 1111"
PAN_DIGITS = "4111111111111111"
HOLDER = "KIM MINSU"
PIN = "739184"
OTHER_PIN = "580247"


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


def held(result: AttackResult) -> None:
    """Assert that an attack failed: the defense held (and the attack really ran)."""
    assert result.passed and not result.skipped, (
        f"{result.name}: the attacker got {result.attacker_got} {result.detail}")
