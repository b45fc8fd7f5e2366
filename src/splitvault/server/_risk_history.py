"""What the fraud rules remember of one card, and the rules' decision: pure functions.

A card's history is a short list of the payments that went to the acquirer (time in
milliseconds, amount, currency, a MAC of the merchant, whether that merchant was new to
the card), the merchants it paid within :data:`KNOWN_SECONDS` (MACs only) and a MAC of
the device key it last paid from. It is stored as one blob per card, wrapped under the
KEK (``_risk_book.py``), so the database holds no amounts, merchants or times of
purchases in clear, not even as a count of rows per card.

:func:`decide` is the whole rule evaluation: (rules, history, this payment) -> a
reason, or None. :func:`record` is what a payment that passed adds. Both are plain
functions, so the store only has to make "read the card's history, decide, write it
back" one transaction.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from .._errors import TamperedData
from ._risk import DAY, RiskRules

__all__ = ["KEEP_SECONDS", "KNOWN_SECONDS", "Fact", "History", "decide", "record"]

KEEP_SECONDS = 7 * DAY
"""The least history a card keeps, whatever the rules: what ``splitvault risk check``
can replay a new rule file against. A longer window in the rules keeps more."""
KNOWN_SECONDS = 90 * DAY
"""How long a merchant stays known to a card after its last payment there: a shop
visited every quarter is not new."""
MAX_ENTRIES = 2_000
"""Payments kept per card (the oldest dropped first): bounds the row at ~60 KB. Above
every window's ``max`` (``_risk.MAX_COUNT``), so a count never runs out of history."""
MAX_KNOWN = 512
"""Merchants remembered per card; the least recently paid is forgotten first."""
_VERSION = 1
_PAD_MIN = 1024
_HEAD = struct.Struct(">BII8sq")
_ENTRY = struct.Struct(">qq3s8sB")
_KNOWN = struct.Struct(">8sq")
_NEW_MERCHANT = 1


@dataclass(frozen=True)
class Fact:
    """One payment as the rules see it. ``merchant`` and ``device`` are MACs (8 bytes),
    never the name or the key; ``at_ms`` is the server's clock in milliseconds."""

    at_ms: int
    amount: int
    currency: str
    merchant: bytes
    device: bytes


@dataclass(frozen=True)
class Entry:
    at_ms: int
    amount: int
    currency: str
    merchant: bytes
    new_merchant: bool


@dataclass(frozen=True)
class History:
    entries: tuple[Entry, ...] = ()
    known: tuple[tuple[bytes, int], ...] = ()  # (merchant MAC, last paid at ms)
    device: bytes = bytes(8)
    device_since_ms: int = 0

    def dump(self) -> bytes:
        out = [_HEAD.pack(_VERSION, len(self.entries), len(self.known), self.device,
                          self.device_since_ms)]
        out += [_ENTRY.pack(e.at_ms, e.amount, e.currency.encode("ascii"), e.merchant,
                            _NEW_MERCHANT if e.new_merchant else 0) for e in self.entries]
        out += [_KNOWN.pack(m, at) for m, at in self.known]
        raw = b"".join(out)
        # Padded to a power of two: the wrapped row's length shows the card's activity
        # only to within a factor of two, never its number of payments.
        size = max(_PAD_MIN, 1 << (len(raw) - 1).bit_length())
        return raw + bytes(size - len(raw))

    @classmethod
    def load(cls, raw: bytes | bytearray) -> History:
        """Parse a history; any damage is ``TamperedData`` (the blob was authenticated
        when unwrapped, so this only fires on a bug or a format from the future)."""
        try:
            version, n, k, device, since = _HEAD.unpack_from(raw, 0)
            end = _HEAD.size + n * _ENTRY.size + k * _KNOWN.size
            if version != _VERSION or len(raw) < end or any(raw[end:]):
                raise ValueError("length")
            pos = _HEAD.size
            entries = []
            for _ in range(n):
                at, amount, cur, merchant, flags = _ENTRY.unpack_from(raw, pos)
                entries.append(Entry(at, amount, cur.decode("ascii"), merchant,
                                     bool(flags & _NEW_MERCHANT)))
                pos += _ENTRY.size
            known = []
            for _ in range(k):
                merchant, at = _KNOWN.unpack_from(raw, pos)
                known.append((merchant, at))
                pos += _KNOWN.size
        except (struct.error, ValueError, UnicodeDecodeError):
            raise TamperedData() from None
        return cls(tuple(entries), tuple(known), device, since)


def _within(at_ms: int, now_ms: int, seconds: float) -> bool:
    # A payment counts while less than the window has passed: one made exactly a
    # window ago has left it (tests/server/test_risk.py checks both edges).
    return now_ms - at_ms < round(seconds * 1000)


def _is_new_merchant(history: History, fact: Fact) -> bool:
    return not any(m == fact.merchant and _within(at, fact.at_ms, KNOWN_SECONDS)
                   for m, at in history.known)


def decide(rules: RiskRules, blocked: frozenset[bytes], history: History,
           fact: Fact) -> str | None:
    """The reason the first rule that fires gives (``risk: ...``), or None.
    ``blocked``: MACs of the blocked merchants' names, compared to ``fact.merchant``."""
    if fact.merchant in blocked:
        return "risk: merchant blocked"
    limit = rules.max_per_payment.get(fact.currency)
    if limit is not None and fact.amount > limit:
        return "risk: amount over the per-payment limit"
    entries = history.entries
    for w in rules.velocity:
        if sum(_within(e.at_ms, fact.at_ms, w.seconds) for e in entries) + 1 > w.max:
            return f"risk: more than {w.max} payments per {w.label}"
    daily = rules.max_per_day_per_card.get(fact.currency)
    if daily is not None and fact.amount + sum(
            e.amount for e in entries
            if e.currency == fact.currency and _within(e.at_ms, fact.at_ms, DAY)) > daily:
        return "risk: over the daily amount limit"
    merchants = rules.new_merchants
    if merchants is not None and _is_new_merchant(history, fact) and sum(
            e.new_merchant and _within(e.at_ms, fact.at_ms, merchants.seconds)
            for e in entries) + 1 > merchants.max:
        return f"risk: more than {merchants.max} new merchants per {merchants.label}"
    device = rules.new_device
    if device is not None:
        # A device the card has not paid from before starts its window now.
        since = fact.at_ms if history.device != fact.device else history.device_since_ms
        if _within(since, fact.at_ms, device.seconds) and sum(
                e.at_ms >= since for e in entries) + 1 > device.max:
            return f"risk: more than {device.max} payments per {device.label} from a new device"
    return None


def record(rules: RiskRules, history: History, fact: Fact) -> History:
    """The history after ``fact`` went to the acquirer, pruned to what any rule (and a
    dry run over :data:`KEEP_SECONDS`) can still need."""
    keep = max((KEEP_SECONDS, *rules.windows()))
    entries = [e for e in history.entries if _within(e.at_ms, fact.at_ms, keep)]
    entries.append(Entry(fact.at_ms, fact.amount, fact.currency, fact.merchant,
                         _is_new_merchant(history, fact)))
    known = {m: at for m, at in history.known if _within(at, fact.at_ms, KNOWN_SECONDS)}
    known[fact.merchant] = fact.at_ms
    newest = sorted(known.items(), key=lambda item: item[1])[-MAX_KNOWN:]
    device, since = history.device, history.device_since_ms
    if device != fact.device:
        device, since = fact.device, fact.at_ms
    return replace(history, entries=tuple(entries[-MAX_ENTRIES:]), known=tuple(newest),
                   device=device, device_since_ms=since)
