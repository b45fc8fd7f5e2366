"""Scenario 7, audit-log tampering: an insider with write access to the database edits,
deletes, reorders or rewrites entries of the MAC-chained audit log.

- :func:`edit_delete_reorder`: each edit (event, detail, time, card id), a deletion and
  a swap of two entries makes ``verify_audit()`` raise ``TamperedData``. Each runs in a
  transaction that is rolled back, and the untouched chain verifies before and after
  (the control: the check is not simply failing).
- :func:`rewrite_chain`: recomputing the whole chain under a guessed key does not help:
  the MAC key is wrapped under the KEK.
- :func:`cut_tail`: removing the newest entries leaves a chain that verifies on its
  own (the residual risk threat_model.md states); against the head an operator
  anchored elsewhere it is detected.

In-process only.
"""

from __future__ import annotations

import contextlib

from .. import _errors
from ..server import ShareServer, _audit
from ._harness import (
    OTHER_PIN,
    AttackResult,
    Deployment,
    Lab,
    Options,
    guarded,
    pay,
    refused,
)

__all__ = ["TAMPERING", "cut_tail", "edit_delete_reorder", "rewrite_chain", "run"]

HAD = "write access to the server database, not the KEK"
TAMPERING = {
    "edit an event": "UPDATE audit SET event = 'declined' WHERE seq = 3",
    "edit a detail": "UPDATE audit SET detail = '{\"guesses_used\":0,\"limit\":5}' WHERE seq = 4",
    "edit a time": "UPDATE audit SET at = at + 1 WHERE seq = 2",
    "edit a card id": "UPDATE audit SET card_id = '00000000000000000000000000000000' "
                      "WHERE seq = 1",
    "delete an entry": "DELETE FROM audit WHERE seq = 2",
    # entries 2 and 3 trade places: content and MAC move, positions stay
    "reorder two entries": "UPDATE audit SET (at, event, card_id, detail, mac) = (SELECT "
                           "o.at, o.event, o.card_id, o.detail, o.mac FROM audit AS o WHERE "
                           "o.seq = 5 - audit.seq) WHERE seq IN (2, 3)",
}


def _logged(lab: Lab) -> ShareServer:
    """A server whose log has five entries: enrolled, guess, authorized, guess, wrong PIN."""
    if lab.server is None:
        raise RuntimeError("needs the in-process server")
    victim = lab.device()
    card_id = lab.enroll(victim)
    pay(victim, card_id)
    with contextlib.suppress(_errors.WrongPin):
        pay(victim, card_id, OTHER_PIN, key="w")
    return lab.server


def edit_delete_reorder(lab: Lab, attack_name: str) -> AttackResult:
    name = attack_name

    def attack() -> AttackResult:
        server = _logged(lab)
        conn = server._db.connection()
        before = server.verify_audit()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(TAMPERING[attack_name])
            ok, got = refused(server.verify_audit, _errors.TamperedData)
        finally:
            conn.execute("ROLLBACK")
        control = server.verify_audit() == before and before.entries == 5
        return AttackResult(name, HAD, f"verify_audit: {got}", ok and control,
                            "" if control else "control failed: the untouched log")

    return guarded(name, HAD, attack)


def rewrite_chain(lab: Lab) -> AttackResult:
    name = "rewrite the whole chain under a guessed key"

    def attack() -> AttackResult:
        server = _logged(lab)
        conn = server._db.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM audit")
            for event in ("enrolled", "authorized"):
                _audit.append(conn, bytes(32), event, "0" * 32, 1.0)
            ok, got = refused(server.verify_audit, _errors.TamperedData)
        finally:
            conn.execute("ROLLBACK")
        return AttackResult(name, HAD, f"verify_audit: {got}", ok)

    return guarded(name, HAD, attack)


def cut_tail(lab: Lab) -> AttackResult:
    name = "cut the newest entries"

    def attack() -> AttackResult:
        server = _logged(lab)
        anchored = server.verify_audit()  # the head an operator exported elsewhere
        conn = server._db.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM audit WHERE seq > 3")
            report = server.verify_audit()
        finally:
            conn.execute("ROLLBACK")
        detected = report.head != anchored.head
        got = ("the chain alone verifies (residual risk); the anchored head does not match"
               if detected else "undetected even against the anchored head")
        return AttackResult(name, HAD + ", against an anchored head", got, detected)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack_name in TAMPERING:
        with deployment.lab() as lab:
            results.append(edit_delete_reorder(lab, attack_name))
    for attack in (rewrite_chain, cut_tail):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
