"""Scenario 9, the real incidents behind this project, replayed.

Money taken although the payment "failed" (a side path, a receipt service, failed
after the charge):

- :func:`receipt_fails_after_charge`: the acquirer charges, then a step after it
  (sending the receipt) raises. The device is told ``PaymentInDoubt``, now and on every
  retry; never a failure or a decline; charged once.
- :func:`recording_fails_after_charge`: the acquirer approves, then the server cannot
  record it (the disk is full). The device must be told the approval or
  ``PaymentInDoubt``, never a plain failure; retries, before and after a restart, must
  not charge again; every charge must have an approved or in-doubt record.

A bulk export sent to a partner (the 54-billion-records incident):

- :func:`export_identifies_nobody`: every table of the server database as a partner
  would get it (no KEK): no PAN, holder name, last 4, expiry, amount, merchant or
  idempotency key in any text, number or blob. Random ids are left out of the search
  for short numbers only (a 4-digit string occurs in random hex by chance).
- :func:`card_ids_are_random`: the same card enrolled twice gets unrelated ids.
- :func:`cards_are_unlinkable`: two cards of one device share no stored value.

In-process only.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from .._authorization import Authorization
from .._card import Card
from ..server import SimulatedAcquirer
from ._flows import KOREAN_HOLDER, complete_flows
from ._harness import (
    HOLDER,
    PAN,
    SECOND_PAN,
    AttackResult,
    Deployment,
    Lab,
    Options,
    guarded,
    pay,
)
from ._needles import Needles
from .scan import sqlite_files

__all__ = [
    "card_ids_are_random",
    "cards_are_unlinkable",
    "export_identifies_nobody",
    "receipt_fails_after_charge",
    "recording_fails_after_charge",
    "run",
]

HAD_SIDE = "a payment whose side path fails after the charge"
HAD_EXPORT = "a bulk export of every server table, no KEK"
MERCHANT = "Hanbit Books Jongno"
AMOUNT = 98765
ORDER = "order-7f3a9c21"
_ID = re.compile(r"[0-9a-f]{32}")
#: Values the server makes up itself, never from what it is told: ids, payment
#: references (``sv-`` and a MAC), key ids (one, or a list), worker ids (host, pid,
#: random). The short needles (4 or 5 digits) are not searched in such a value: random
#: hex holds "1111" once in 65,536 positions, and a pid may be 11112 (the test failed
#: so under load). The long needles are searched in everything.
_GENERATED = re.compile(r"(?:sv-)?[0-9a-f]{32}|[0-9a-f]{16}(?:,[0-9a-f]{16})*"
                        r"|[^:\s]{1,40}:[0-9]+:[0-9a-f]{8}")


class _Receipt:
    """The acquirer charges; then the receipt service, called right after, is down."""

    def __init__(self) -> None:
        self.acquirer = SimulatedAcquirer()

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str:
        self.acquirer.authorize(card, amount, currency, merchant)
        raise ConnectionError("receipt service unavailable")


def _disk_full() -> Exception:
    """What SQLite raises when the write that records the outcome finds no room."""
    return sqlite3.OperationalError("database or disk is full")


def _told(call: Any) -> str:
    """What the device was told: 'approved', an error name, or 'declined'."""
    try:
        auth = call()
    except Exception as exc:
        return type(exc).__name__
    if isinstance(auth, Authorization):
        return "approved" if auth.approved else "declined"
    return type(auth).__name__


def _accounted(lab: Lab) -> int:
    """Ledger rows that stop a second charge and flag the payment: approved, in doubt,
    or pending (a pending row with no attempt running is answered as in doubt)."""
    if lab.server is None:
        return 0
    ((count,),) = lab.server.inspector().query(
        "SELECT count(*) FROM authorizations "
        "WHERE state IN ('approved', 'in_doubt', 'pending')")
    return int(count)


def _charged(lab: Lab) -> int:
    acquirer = lab.server.acquirer if lab.server is not None else None
    inner = getattr(acquirer, "acquirer", acquirer)
    return sum(1 for c in getattr(inner, "calls", []) if c.approval_code is not None)


_SAFE = {"approved", "PaymentInDoubt"}


def receipt_fails_after_charge(lab: Lab) -> AttackResult:
    name = "the receipt service fails after the charge"

    def attack() -> AttackResult:
        if lab.server is None:
            raise RuntimeError("needs the in-process server")
        victim = lab.device()
        card_id = lab.enroll(victim)
        lab.server.acquirer = _Receipt()
        told = [_told(lambda: pay(victim, card_id)) for _ in range(3)]
        charged, accounted = _charged(lab), _accounted(lab)
        passed = set(told) <= _SAFE and charged == 1 and accounted >= charged
        got = (f"device told {', '.join(told)}; charged {charged}, "
               f"{accounted} approved/in-doubt record(s)")
        return AttackResult(name, HAD_SIDE, got, passed)

    return guarded(name, HAD_SIDE, attack)


def recording_fails_after_charge(lab: Lab) -> AttackResult:
    name = "the approval cannot be recorded (disk full)"

    def attack() -> AttackResult:
        server = lab.server
        if server is None:
            raise RuntimeError("needs the in-process server")
        victim = lab.device()
        card_id = lab.enroll(victim)
        with server.inspector().failing("finish_payment", _disk_full):
            first = _told(lambda: pay(victim, card_id))
        # the disk has room again
        retry = _told(lambda: pay(victim, card_id))
        lab.restart()
        later = _told(lambda: pay(victim, card_id))
        charged, accounted = _charged(lab), _accounted(lab)
        passed = {first, retry, later} <= _SAFE and charged == 1 and accounted >= charged
        got = (f"device told {first}, on retry {retry}, after a restart {later}; charged "
               f"{charged}, {accounted} approved/in-doubt record(s)")
        detail = "" if first in _SAFE else (
            f"money was taken but the device got {first}, which an app shows as a failed "
            "payment: the recording failure should surface as PaymentInDoubt")
        return AttackResult(name, HAD_SIDE, got, passed, detail)

    return guarded(name, HAD_SIDE, attack)


def _export(lab: Lab) -> list[tuple[str, str, object]]:
    """(table, column, value) for every value of every table: the partner's copy."""
    conn = sqlite3.connect(lab.server_path)
    try:
        out: list[tuple[str, str, object]] = []
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            cursor = conn.execute(f"SELECT * FROM {table}")  # noqa: S608  # nosec B608: names from sqlite_master
            columns = [d[0] for d in cursor.description]
            out += [(table, c, v) for row in cursor for c, v in zip(columns, row, strict=True)]
        return out
    finally:
        conn.close()


def export_identifies_nobody(lab: Lab) -> AttackResult:
    name = "identify a card or person in the export"

    def attack() -> AttackResult:
        victim = lab.device()
        flows = complete_flows(lab, victim, failures=True)
        pay(victim, flows.cards["main"], key=ORDER, amount=AMOUNT, merchant=MERCHANT)
        long = (Needles().text("PAN", PAN).text("second PAN", SECOND_PAN)
                .text("holder", HOLDER).text("holder (Korean)", KOREAN_HOLDER)
                .text("merchant", MERCHANT).text("idempotency key", ORDER))
        short = (Needles().text("last 4", PAN[-4:]).text("second last 4", SECOND_PAN[-4:])
                 .text("expiry", "12/30").text("amount", str(AMOUNT)))
        numbers = {int(PAN[-4:]), int(SECOND_PAN[-4:]), AMOUNT, 12000}
        values = _export(lab)
        found: set[str] = set()
        for table, column, value in values:
            where = f"{table}.{column}"
            if isinstance(value, int | float) and not isinstance(value, bool):
                if value in numbers:
                    found.add(f"{where}: the number {value}")
                continue
            if value is None:
                continue
            data = value if isinstance(value, bytes) else str(value).encode()
            found.update(f"{where}: {hit}" for hit in long.search(data))
            # Decided per value: a generated one in a column is no reason to skip the
            # column's other values.
            if not (isinstance(value, str) and _GENERATED.fullmatch(value)):
                found.update(f"{where}: {hit}" for hit in short.search(data))
        for path in sqlite_files(lab.server_path):
            found.update(f"{path.name}: {hit}" for hit in long.search(path.read_bytes()))
        got = "; ".join(sorted(found)[:4]) if found else (
            f"{len(values)} values, {len({t for t, _, _ in values})} tables: nothing that "
            "names a card, a person, an amount, a merchant or an order")
        return AttackResult(name, HAD_EXPORT, got, not found)

    return guarded(name, HAD_EXPORT, attack)


def card_ids_are_random(lab: Lab) -> AttackResult:
    name = "link a card id to a card number"

    def attack() -> AttackResult:
        first, second = lab.device("phone"), lab.device("tablet")
        ids = [lab.enroll(first), lab.enroll(first), lab.enroll(second)]
        distinct = len(set(ids)) == len(ids) and all(_ID.fullmatch(i) for i in ids)
        got = ("the same card enrolled 3 times got 3 unrelated 128-bit random ids"
               if distinct else f"ids repeat or are not random: {ids}")
        return AttackResult(name, "the export, and the card number", got, distinct)

    return guarded(name, HAD_EXPORT, attack)


def cards_are_unlinkable(lab: Lab) -> AttackResult:
    name = "link two cards to one device or person"

    def attack() -> AttackResult:
        victim = lab.device()
        a = lab.enroll(victim)
        b = lab.enroll(victim, Card(SECOND_PAN, "01/31", HOLDER))
        conn = sqlite3.connect(lab.server_path)
        try:
            cursor = conn.execute("SELECT * FROM cards WHERE card_id IN (?, ?)", (a, b))
            columns = [d[0] for d in cursor.description]
            first, second = cursor.fetchall()
        finally:
            conn.close()
        shared = [c for c, x, y in zip(columns, first, second, strict=True)
                  if isinstance(x, bytes | str) and x == y and c != "state"]
        got = ("no stored value in common: device keys, verifiers, wrapped shares and "
               "OPRF keys all differ" if not shared else f"shared: {', '.join(shared)}")
        return AttackResult(name, HAD_EXPORT, got, not shared,
                            "enrollment times remain (residual risk)")

    return guarded(name, HAD_EXPORT, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (receipt_fails_after_charge, recording_fails_after_charge,
                   export_identifies_nobody, card_ids_are_random, cards_are_unlinkable):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
