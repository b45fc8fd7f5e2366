"""Scenario 7, audit-log tampering: an insider with write access to the database edits,
deletes, reorders or rewrites entries of the MAC-chained audit log.

- :func:`edit_delete_reorder`: each edit (event, detail, time, card id), a deletion and
  a swap of two entries makes ``verify_audit()`` raise ``TamperedData``. Each edit is
  committed as an insider would commit it (``ServerInspector.tamper``), then the saved
  log is put back, and the untouched chain verifies before and after (the control:
  the check is not simply failing).
- :func:`rewrite_chain`: recomputing the whole chain under a guessed key does not help:
  the MAC key is wrapped under the KEK.
- :func:`cut_tail`: removing the newest entries leaves a chain that verifies on its
  own (the residual risk threat_model.md states; the ``audit_head`` row still names
  the removed last entry, but the insider can rewrite it too); against the head an
  operator anchored elsewhere it is detected.

In-process only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .. import _errors
from ..hazmat import ServerInspector
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
    """A server whose log has six entries: enrolled, guess, authorized, shares committed
    (the next request shows the server the device's re-split half), guess, wrong PIN."""
    if lab.server is None:
        raise RuntimeError("needs the in-process server")
    victim = lab.device()
    card_id = lab.enroll(victim)
    pay(victim, card_id)
    with contextlib.suppress(_errors.WrongPin):
        pay(victim, card_id, OTHER_PIN, key="w")
    return lab.server


@contextlib.contextmanager
def _tampering(server: ShareServer) -> Iterator[ServerInspector]:
    """The database as an insider writes it; the audit log and its head are put back
    as they were afterwards, so the control can check the untouched log again."""
    inspector = server.inspector()
    saved, head = inspector.rows("audit"), inspector.rows("audit_head")
    try:
        yield inspector
    finally:
        inspector.tamper("DELETE FROM audit")
        for row in saved:
            inspector.tamper("INSERT INTO audit (seq, at, event, card_id, detail, mac) "
                             "VALUES (?, ?, ?, ?, ?, ?)", row["seq"], row["at"], row["event"],
                             row["card_id"], row["detail"], row["mac"])
        for row in head:
            inspector.tamper("UPDATE audit_head SET seq = ?, mac = ? WHERE id = ?",
                             row["seq"], row["mac"], row["id"])


def edit_delete_reorder(lab: Lab, attack_name: str) -> AttackResult:
    name = attack_name

    def attack() -> AttackResult:
        server = _logged(lab)
        before = server.verify_audit()
        with _tampering(server) as inspector:
            changed = inspector.tamper(TAMPERING[attack_name])
            ok, got = refused(server.verify_audit, _errors.TamperedData)
        ok = ok and changed > 0
        control = server.verify_audit() == before and before.entries == 6
        return AttackResult(name, HAD, f"verify_audit: {got}", ok and control,
                            "" if control else "control failed: the untouched log")

    return guarded(name, HAD, attack)


def rewrite_chain(lab: Lab) -> AttackResult:
    name = "rewrite the whole chain under a guessed key"

    def attack() -> AttackResult:
        server = _logged(lab)
        with _tampering(server) as inspector:
            inspector.tamper("DELETE FROM audit")
            link, prev = _audit.chain(bytes(32)), bytes(32)  # a guessed key
            for seq, event in enumerate(("enrolled", "authorized"), start=1):
                prev = link(prev, seq, 1.0, event, "0" * 32, "{}")
                inspector.tamper("INSERT INTO audit (seq, at, event, card_id, detail, mac) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", seq, 1.0, event, "0" * 32, "{}",
                                 prev)
            inspector.tamper("UPDATE audit_head SET seq = 2, mac = ? WHERE id = 1", prev)
            ok, got = refused(server.verify_audit, _errors.TamperedData)
        return AttackResult(name, HAD, f"verify_audit: {got}", ok)

    return guarded(name, HAD, attack)


def cut_tail(lab: Lab) -> AttackResult:
    name = "cut the newest entries"

    def attack() -> AttackResult:
        server = _logged(lab)
        anchored = server.verify_audit()  # the head an operator exported elsewhere
        with _tampering(server) as inspector:
            inspector.tamper("DELETE FROM audit WHERE seq > 3")
            report = server.verify_audit()
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
