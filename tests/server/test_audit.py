"""The audit log: complete, secret-free, and any edit, deletion or reordering is caught."""

from __future__ import annotations

import json

import pytest

import splitvault as sv
from support import HOLDER, PAN_DIGITS, PIN, pay


@pytest.fixture
def logged(device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin) -> sv.ShareServer:
    pay(device, card_id, pin)
    with sv.Pin.from_digits("580247") as wrong, pytest.raises(sv.WrongPin):
        pay(device, card_id, wrong, key="w")
    return server


def _rows(server: sv.ShareServer) -> list[tuple[object, ...]]:
    return server.inspector().query("SELECT * FROM audit ORDER BY seq")


def test_events_are_logged_without_secrets(logged: sv.ShareServer) -> None:
    """Enrollment, guesses, authorization, the re-split's commit and wrong PINs are
    logged; no PAN, PIN or holder."""
    events = [r[2] for r in _rows(logged)]
    assert events == ["enrolled", "guess_used", "authorized", "shares_committed",
                      "guess_used", "wrong_pin"]
    text = json.dumps([r[:5] for r in _rows(logged)])
    for secret in (PAN_DIGITS, PIN, HOLDER, "1111"):
        assert secret not in text
    assert logged.verify_audit().entries == 6


@pytest.mark.security
@pytest.mark.parametrize(
    "attack",
    [
        "UPDATE audit SET event = 'declined' WHERE seq = 3",
        "UPDATE audit SET detail = '{\"guesses_used\":0,\"limit\":5}' WHERE seq = 4",
        "UPDATE audit SET at = at + 1 WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 2",
        # reorder: entries 2 and 3 trade places (content and MAC move, positions stay)
        "UPDATE audit SET (at, event, card_id, detail, mac) = (SELECT o.at, o.event, "
        "o.card_id, o.detail, o.mac FROM audit AS o WHERE o.seq = 5 - audit.seq) "
        "WHERE seq IN (2, 3)",
        "UPDATE audit SET card_id = '00000000000000000000000000000000' WHERE seq = 1",
    ],
    ids=["edit-event", "edit-detail", "edit-time", "delete", "reorder", "edit-card"],
)
def test_tampering_is_detected(logged: sv.ShareServer, attack: str) -> None:
    """Any edited, removed or reordered entry makes verify_audit raise TamperedData."""
    assert logged.inspector().tamper(attack) >= 1
    with pytest.raises(sv.TamperedData, match="audit log does not verify"):
        logged.verify_audit()


@pytest.mark.security
def test_rewritten_chain_without_key_is_detected(logged: sv.ShareServer) -> None:
    """Recomputing the chain with a guessed key does not help: the MAC key is secret."""
    from splitvault.hazmat import audit_chain, verify_audit_chain

    inspector = logged.inspector()
    inspector.tamper("DELETE FROM audit")
    link = audit_chain(bytes(32))  # a guessed key
    prev = bytes(32)
    for seq, event in enumerate(("enrolled", "authorized"), start=1):
        prev = link(prev, seq, 1.0, event, "0" * 32, "{}")
        inspector.tamper("INSERT INTO audit (seq, at, event, card_id, detail, mac) "
                         "VALUES (?, ?, ?, ?, ?, ?)", seq, 1.0, event, "0" * 32, "{}", prev)
    inspector.tamper("UPDATE audit_head SET seq = 2, mac = ? WHERE id = 1", prev)
    # The forged chain is well formed under the guessed key; only the real key fails it.
    assert verify_audit_chain(logged.store.audit_rows(), bytes(32)).entries == 2
    with pytest.raises(sv.TamperedData, match="audit log does not verify at entry 1"):
        logged.verify_audit()


def test_head_changes_with_every_entry(logged: sv.ShareServer, device: sv.Device,
                                       card_id: str, pin: sv.Pin) -> None:
    """The report's head MAC moves with each entry, so an anchored head detects a cut tail."""
    before = logged.verify_audit()
    pay(device, card_id, pin, key="next")
    after = logged.verify_audit()
    assert after.entries > before.entries and after.head != before.head
