"""The invariant a bank checks, over seeded random fault schedules (issue 11): per
idempotency key the money taken net of reversals is 0 or exactly the amount, the amount
iff the recorded result is approved, nothing is left in doubt, no reference is charged
twice. Each schedule's counts are printed (``pytest -s`` shows them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from splitvault._attack.money import check_schedule
from splitvault.server import _reconcile
from splitvault.server._charges import Charges

SEEDS = (11, 12, 13, 14)
PER_SEED = 250
"""4 x 250 = 1,000 payments, each with retries, some from two devices at once."""


@pytest.mark.parametrize("seed", SEEDS)
def test_no_money_taken_for_a_failed_payment(seed: int, tmp_path: Path) -> None:
    found = check_schedule(seed, PER_SEED, workdir=tmp_path)
    print(found.summary(), dict(found.outcomes))
    assert found.broken == []
    assert found.in_doubt_after == 0
    # The schedule really was hostile: faults of every kind, and work for reconcile.
    assert found.faults > PER_SEED // 10 and found.in_doubt_before > 0
    assert found.attempts > found.payments


def test_the_check_catches_a_reconciler_that_does_not_reverse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sabotage: "unknown" recorded as reversed without calling reverse. The money stays
    taken for a payment reported as not charged, and the check must say so."""

    class NoReverse:
        def __init__(self, settle: _reconcile.Settler) -> None:
            self.status = settle.status

        def reverse(self, reference: str) -> None:
            return None

    real = _reconcile.settler
    monkeypatch.setattr(_reconcile, "settler", lambda acq: NoReverse(real(acq)))  # type: ignore[arg-type]
    found = check_schedule(3, 150, fault_rate=0.5, workdir=tmp_path)
    assert any("recorded reversed" in b or "recorded approved" in b for b in found.broken)


def test_the_check_catches_a_reused_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sabotage: a retry after a reversal or not-found reuses the old reference."""
    real = Charges.start

    def same_reference(self: Charges, card_id: str, card: object, payment: object,
                       key: bytes, params: bytes, attempt: int) -> object:
        start = real(self, card_id, card, payment, key, params, attempt)  # type: ignore[arg-type]
        reused = self._ledger.reference(card_id, payment.idempotency_key, 0)  # type: ignore[attr-defined]
        return type(start)(start.key, start.params_digest, start.owner, start.lease_until,  # type: ignore[attr-defined]
                           reused, start.intent, start.attempt)  # type: ignore[attr-defined]

    monkeypatch.setattr(Charges, "start", same_reference)
    found = check_schedule(4, 150, fault_rate=0.5, workdir=tmp_path)
    assert found.broken
