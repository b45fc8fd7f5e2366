"""The fraud rules against the store: the per-payment check, and the operator's dry run.

For each payment that passed the PIN proof and is new to the ledger, :meth:`RiskBook.
check` gives the store a :class:`~._store.RiskCheck`: the card's history row key (a MAC
of the card id) and a pure function from the stored, wrapped history to a verdict. The
store runs it inside the proof's transaction with the row held (``_sql_risk.py``), so the
count is exact however many workers pay for one card at once.

Merchant names and device keys enter the history only as MACs under the server's
ledger MAC key (with their own domain labels): a history opened with the KEK still
shows no merchant name, yet a blocked name can be recognized, by its MAC, in a dry run
over histories recorded before it was blocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from .._payment import Payment
from ..crypto.encoding import encode
from ..crypto.memory import wipe
from ._keyring import Keyring
from ._risk import RiskRules, normalize_merchant
from ._risk_history import Fact, History, decide, record
from ._store import AuditEvent, OutboxMessage, RiskCheck, RiskVerdict, Store

__all__ = ["RiskBook", "WouldDecline"]

_D_ROW = b"splitvault/v1/risk-row"
_D_MERCHANT = b"splitvault/v1/risk-merchant"
_D_DEVICE = b"splitvault/v1/risk-device"


@dataclass(frozen=True)
class WouldDecline:
    """One payment a dry run's rules would have declined. ``card`` is the first 16
    hex digits of the card's history row key (the card id is not stored with it)."""

    card: str
    at: datetime
    amount: int
    currency: str
    reason: str


class RiskBook:
    """Rules, plus the keys to read and write what they remember."""

    def __init__(self, rules: RiskRules, keyring: Keyring, mac_key: bytes | bytearray) -> None:
        self.rules = rules
        self._keyring = keyring
        self._mac_key = mac_key
        self._blocked = frozenset(self._merchant(m) for m in rules.blocked_merchants)

    def _mac(self, *parts: bytes) -> bytes:
        return bytes(blake2b(encode(*parts), digest_size=32, key=bytes(self._mac_key),
                             encoder=RawEncoder))

    def row(self, card_id: str) -> bytes:
        return self._mac(_D_ROW, card_id.encode())

    def _merchant(self, normalized: str) -> bytes:
        return self._mac(_D_MERCHANT, normalized.encode())[:8]

    def fact(self, payment: Payment, device_key: bytes, now: float) -> Fact:
        return Fact(round(now * 1000), payment.amount, payment.currency,
                    self._merchant(normalize_merchant(payment.merchant)),
                    self._mac(_D_DEVICE, device_key)[:8])

    def check(self, card_id: str, fact: Fact, decline: Callable[[str], bytes],
              notify: Callable[[str], tuple[OutboxMessage, ...]] = lambda _: ()
              ) -> RiskCheck | None:
        """The store's check for one payment, or None when no rule is set.
        ``decline(reason)`` seals the decline the ledger records if a rule fires, and
        ``notify(reason)`` makes its receipt (queued with it; none without a sink)."""
        if not self.rules.active:
            return None
        row = self.row(card_id)

        def go(stored: bytes | None) -> RiskVerdict:
            history = self._open(row, stored)
            reason = decide(self.rules, self._blocked, history, fact)
            if reason is not None:
                return RiskVerdict(declined=decline(reason),
                                   event=AuditEvent("risk_declined", card_id,
                                                    {"rule": reason}),
                                   outbox=notify(reason))
            if not self.rules.counting:
                return RiskVerdict()
            return RiskVerdict(history=self._seal(row, record(self.rules, history, fact)))
        return RiskCheck(row, go)

    def forget(self, store: Store, card_id: str) -> None:
        store.forget_risk(self.row(card_id))

    def _open(self, row: bytes, stored: bytes | None) -> History:
        if stored is None:
            return History()
        raw = self._keyring.unwrap("risk", row.hex(), stored)
        try:
            return History.load(raw)
        finally:
            wipe(raw)

    def _seal(self, row: bytes, history: History) -> bytes:
        raw = bytearray(history.dump())
        try:
            return self._keyring.wrap("risk", row.hex(), raw)
        finally:
            wipe(raw)

    def dry_run(self, store: Store) -> Iterator[WouldDecline]:
        """Replay every card's recorded history against these rules, in time order, as
        if they had been in force: what they would have declined (a declined payment
        then counts toward nothing, as it would not have gone to the acquirer)."""
        for row, stored in store.risk_histories():
            replayed = History()
            for entry in self._open(row, stored).entries:
                fact = Fact(entry.at_ms, entry.amount, entry.currency, entry.merchant,
                            # The device at each payment is not kept, only the last one:
                            # the replay sees one device per card.
                            b"\x01" * 8)
                reason = decide(self.rules, self._blocked, replayed, fact)
                if reason is None:
                    replayed = record(self.rules, replayed, fact)
                    continue
                yield WouldDecline(row[:8].hex(),
                                   datetime.fromtimestamp(entry.at_ms / 1000, UTC),
                                   entry.amount, entry.currency, reason)
