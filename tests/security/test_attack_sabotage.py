"""The suite can fail: each attack, run against a deliberately weakened server, says FAIL.

A suite that always passes proves nothing. ``Deployment(server_factory=...)`` hands
the attacks a sabotaged ``ShareServer``; each sabotage below breaks exactly one
defense, and the attack aimed at it must notice.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

import splitvault as sv
from splitvault._attack import (
    audit_log,
    device_theft,
    double_charge,
    fuzz,
    incidents,
    leakage,
    protocol,
    stranger,
)
from splitvault._attack._harness import AttackResult, Clock, Deployment, Lab
from splitvault.hazmat import AuthorizeRequest, EvaluateReply, EvaluateRequest
from splitvault.server._ledger import Ledger
from splitvault.server._store import ProofOutcome, Spend

pytestmark = pytest.mark.security


def _open(cls: type[sv.ShareServer], **kwargs: object) -> Callable[[Path, Clock],
                                                                     sv.ShareServer]:
    def factory(path: Path, clock: Clock) -> sv.ShareServer:
        return cls.open(path, clock=clock, acquirer=sv.SimulatedAcquirer(),
                        **kwargs)  # type: ignore[arg-type]
    return factory


class ReusableChallenges(sv.ShareServer):
    """Forgets to mark a challenge used after a PIN proof."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        store, inspector = self.store, self.inspector()
        settle = store.settle_proof

        def settle_and_forget(card_id: str, challenge_id: str, **kw: Any) -> ProofOutcome:
            outcome = settle(card_id, challenge_id, **kw)
            inspector.tamper("UPDATE challenges SET state = 'evaluated' "
                             "WHERE challenge_id = ?", challenge_id)
            return outcome
        store.settle_proof = settle_and_forget  # type: ignore[method-assign]


class ReusableNonces(sv.ShareServer):
    """Forgets the device's nonce once a guess is counted: a captured evaluate request
    can be sent again."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        store, inspector = self.store, self.inspector()
        spend = store.spend_guess

        def spend_and_forget(card_id: str, nonce: bytes, *rest: Any) -> Spend:
            spent = spend(card_id, nonce, *rest)
            inspector.tamper("DELETE FROM nonces WHERE nonce = ?", nonce)
            return spent
        store.spend_guess = spend_and_forget  # type: ignore[method-assign]


class ChattyServer(sv.ShareServer):
    """A debug line left in: logs the KEK on every authorization."""

    def authorize(self, request: AuthorizeRequest) -> sv.Authorization:
        keys = self.inspector().key_material()
        kek = next(material for name, material in keys.items() if name.startswith("KEK"))
        logging.getLogger("splitvault.debug").debug("kek=%s", kek.hex())
        return super().authorize(request)


class UncheckedAudit(sv.ShareServer):
    """verify_audit() that does not verify."""

    def verify_audit(self) -> sv.AuditReport:
        return sv.AuditReport(entries=0, head="")


class KeepsMerchants(sv.ShareServer):
    """Keeps the last merchant and amount in clear, for a dashboard."""

    def authorize(self, request: AuthorizeRequest) -> sv.Authorization:
        self.inspector().tamper("INSERT OR REPLACE INTO meta (name, value) VALUES ('last', ?)",
                                f"{request.merchant} {request.amount}")
        return super().authorize(request)


class ForgetfulLedger(Ledger):
    """Indexes each attempt under a fresh key: idempotency keys are never matched."""

    def key_digest(self, card_id: str, idempotency_key: str) -> bytes:
        return secrets.token_bytes(32)


class NoIdempotency(sv.ShareServer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # No public seam lets a server forget idempotency keys, by design: reach in.
        self._payments._ledger = ForgetfulLedger(self._keys.ledger, self.keyring)


class CardFirst(sv.ShareServer):
    """Looks the card up before the challenge: a made-up challenge id then answers
    UnknownCard for made-up cards and InvalidChallenge for real ones."""

    def authorize(self, request: AuthorizeRequest) -> sv.Authorization:
        self.card_state(request.card_id)  # UnknownCard for a card that does not exist
        return super().authorize(request)


class FreshnessLast(sv.ShareServer):
    """Looks the card up before checking the request's timestamp: a stale request then
    answers UnknownCard for made-up cards and InvalidChallenge for real ones."""

    def evaluate(self, request: EvaluateRequest) -> EvaluateReply:
        self.card_state(request.card_id)
        return super().evaluate(request)


WEAK_LIMIT = sv.ServerProfile(guess_limit=1000, challenge_ttl=60.0, enrollment_ttl=600.0)

SABOTAGE: dict[str, tuple[Callable[[Path, Clock], sv.ShareServer],
                          Callable[[Lab], AttackResult]]] = {
    "guess limit of 1000": (_open(sv.ShareServer, profile=WEAK_LIMIT),
                            device_theft.brute_force),
    "challenges reusable": (_open(ReusableChallenges), protocol.replay_authorization),
    "evaluate nonces reusable": (_open(ReusableNonces), protocol.evaluate_twice),
    "KEK in a debug log": (_open(ChattyServer), leakage.through_library),
    "KEK in the HTTP app's log": (_open(ChattyServer), leakage.through_http),
    "audit not verified": (_open(UncheckedAudit),
                           lambda lab: audit_log.edit_delete_reorder(lab, "delete an entry")),
    "merchant kept in clear": (_open(KeepsMerchants), incidents.export_identifies_nobody),
    "no idempotency": (_open(NoIdempotency), double_charge.same_key_retry),
    "card looked up before the challenge": (_open(CardFirst), stranger.enumerate_cards),
    "card looked up before the timestamp": (_open(FreshnessLast), stranger.enumerate_cards),
}


@pytest.mark.parametrize("sabotage", sorted(SABOTAGE))
def test_weakened_server_fails_the_attack(tmp_path: Path, sabotage: str) -> None:
    """The attack aimed at the broken defense reports FAIL (and is not skipped)."""
    factory, attack = SABOTAGE[sabotage]
    with Deployment(workdir=tmp_path, server_factory=factory).lab() as lab:
        result = attack(lab)
    assert not result.passed and not result.skipped, result


def test_fuzzing_catches_a_crashing_decoder() -> None:
    """A decoder that lets an IndexError escape is reported as a crash."""
    def decoder(data: bytes) -> int:
        if len(data) < 2:
            raise ValueError("short")
        return data[5]

    result = fuzz._fuzz("buggy decoder", st.binary(max_size=10), decoder, (ValueError,), 100)
    assert not result.passed and "IndexError" in result.attacker_got


def test_harness_errors_are_failures(tmp_path: Path) -> None:
    """An attack that cannot run to its verdict is a FAIL, never a PASS."""
    with Deployment(workdir=tmp_path).lab() as lab:
        lab.server.close()  # type: ignore[union-attr]
        result = protocol.replay_authorization(lab)
    assert not result.passed and "harness error" in result.attacker_got
