"""Fraud rules (the FDS a card issuer expects a payment service to run): the rule set.

Rules decide on what the server may hold: the card id, its device key, the amount,
currency and merchant of the payment, and the time. Never the PAN. They run after the
PIN proof and before the acquirer (``_payments.py``); a rule that fires records a
decline whose reason starts ``risk:`` and the acquirer is never called. The history
they count (``_risk_history.py``) lives in the store, wrapped, one row per card, so a
limit holds across every worker (``_risk_book.py``).

A rules file is TOML (README, "Fraud rules")::

    [velocity]                      # payments per card in a sliding window
    per_card = [{ window = "1m", max = 5 }, { window = "1h", max = 20 }]
    [amount]                        # minor units per currency
    max_per_payment = { KRW = 2000000, USD = 200000 }
    max_per_day_per_card = { KRW = 5000000 }   # a sliding 24 hours
    [merchants]
    blocked = ["Casino Royale"]
    new_burst = { window = "1h", max = 3 }     # merchants this card never paid before
    [devices]
    new_burst = { window = "1d", max = 3 }     # payments from a device new to the card

An expression language (the ``rule-engine`` package) was considered and left out: the
typed rules above are what an issuer's FDS asks for first, each is checked when the
file loads, and an expression an operator mistypes would fail open at payment time.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from .._currencies import CURRENCIES
from .._errors import ConfigurationError

__all__ = ["DAY", "MAX_COUNT", "MAX_WINDOW", "RiskRules", "Window", "normalize_merchant"]

DAY = 86_400.0
"""The window of ``max_per_day_per_card``: a sliding 24 hours, so that a limit cannot
be doubled by paying just before and just after midnight."""
MAX_WINDOW = 30 * DAY
"""The longest window a rule may name: the history a card keeps is bounded by it."""
MAX_COUNT = 1_000
"""The largest ``max`` of a window: below the payments a card's history keeps
(``_risk_history.MAX_ENTRIES``), so that every count a rule asks for is exact."""
_DURATION = re.compile(r"(\d{1,6})([smhd])")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}
_SECTIONS: Mapping[str, frozenset[str]] = MappingProxyType({
    "velocity": frozenset({"per_card"}),
    "amount": frozenset({"max_per_payment", "max_per_day_per_card"}),
    "merchants": frozenset({"blocked", "new_burst"}),
    "devices": frozenset({"new_burst"}),
})


@dataclass(frozen=True)
class Window:
    """At most ``max`` events per ``seconds`` (a sliding window); ``label`` is the
    duration as the rules file wrote it (``"1m"``), for decline reasons."""

    seconds: float
    max: int
    label: str


def normalize_merchant(name: str) -> str:
    """A merchant name as rules compare it: case and runs of spaces do not matter."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True, eq=False)
class RiskRules:
    """A fraud rule set. Load one with :meth:`from_toml`; :data:`DEFAULT` is a
    conservative start, :data:`NONE` runs nothing (what a server has when given none).

    Counting rules (velocity, the daily amount, new-merchant and new-device bursts)
    count the payments that passed every rule and went to the acquirer; a payment a
    rule declined counts toward nothing."""

    velocity: tuple[Window, ...] = ()
    max_per_payment: Mapping[str, int] = field(default_factory=dict)
    max_per_day_per_card: Mapping[str, int] = field(default_factory=dict)
    blocked_merchants: frozenset[str] = frozenset()
    new_merchants: Window | None = None
    new_device: Window | None = None

    NONE: ClassVar[RiskRules]
    DEFAULT: ClassVar[RiskRules]

    @classmethod
    def from_toml(cls, path: str | Path) -> RiskRules:
        """The rules in a TOML file; ``ConfigurationError`` naming the file and the
        exact problem if it is unreadable, not TOML, or not a valid rule set."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"risk rules {source}: cannot read the file ({type(exc).__name__})") from None
        return cls.from_text(text, source=str(source))

    @classmethod
    def from_text(cls, text: str, *, source: str = "<text>") -> RiskRules:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"risk rules {source}: not valid TOML: {exc}") from None
        return _Parser(source).rules(data)

    @property
    def active(self) -> bool:
        """Whether any rule is set (a server with none never touches the history)."""
        return bool(self.velocity or self.max_per_payment or self.max_per_day_per_card
                    or self.blocked_merchants or self.new_merchants or self.new_device)

    @property
    def counting(self) -> bool:
        """Whether a rule counts past payments (and so the history must be kept)."""
        return bool(self.velocity or self.max_per_day_per_card or self.new_merchants
                    or self.new_device)

    def windows(self) -> tuple[float, ...]:
        spans = [w.seconds for w in self.velocity]
        spans += [DAY] if self.max_per_day_per_card else []
        spans += [w.seconds for w in (self.new_merchants, self.new_device) if w is not None]
        return tuple(spans)

    def __repr__(self) -> str:
        return (f"<RiskRules velocity={len(self.velocity)} amount="
                f"{len(self.max_per_payment) + len(self.max_per_day_per_card)} "
                f"blocked={len(self.blocked_merchants)} new_merchants="
                f"{self.new_merchants is not None} new_device={self.new_device is not None}>")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RiskRules):
            return NotImplemented
        return (self.velocity, dict(self.max_per_payment), dict(self.max_per_day_per_card),
                self.blocked_merchants, self.new_merchants, self.new_device) == (
            other.velocity, dict(other.max_per_payment), dict(other.max_per_day_per_card),
            other.blocked_merchants, other.new_merchants, other.new_device)

    __hash__ = None  # type: ignore[assignment]  # holds mappings


RiskRules.NONE = RiskRules()
RiskRules.DEFAULT = RiskRules(
    velocity=(Window(60.0, 5, "1m"), Window(3600.0, 20, "1h"), Window(DAY, 50, "1d")),
    new_merchants=Window(3600.0, 5, "1h"),
    new_device=Window(DAY, 10, "1d"),
)
"""What a card does in normal use, with room: at most 5 payments a minute, 20 an hour
and 50 a day; at most 5 merchants it never paid before within an hour (a stolen card
is tried at many shops quickly); at most 10 payments in the first day of a device the
card has not paid from before. No amount limits: those depend on the currency and the
business, so a deployment sets its own."""


class _Parser:
    """Checks a parsed TOML document, naming the exact place of the first problem."""

    def __init__(self, source: str) -> None:
        self._source = source

    def fail(self, where: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"risk rules {self._source}: {where}: {problem}")

    def rules(self, data: dict[str, Any]) -> RiskRules:
        for name, section in data.items():
            if name not in _SECTIONS:
                raise self.fail(f"[{name}]", "unknown section (known: "
                                + ", ".join(sorted(_SECTIONS)) + ")")
            if not isinstance(section, dict):
                raise self.fail(name, "must be a table ([" + name + "])")
            for key in section:
                if key not in _SECTIONS[name]:
                    raise self.fail(f"[{name}] {key}", "unknown key (known: "
                                    + ", ".join(sorted(_SECTIONS[name])) + ")")
        velocity = data.get("velocity", {})
        amount = data.get("amount", {})
        merchants = data.get("merchants", {})
        devices = data.get("devices", {})
        per_card = velocity.get("per_card", [])
        if not isinstance(per_card, list):
            raise self.fail("[velocity] per_card", "must be a list of { window, max }")
        windows = tuple(self.window(f"[velocity] per_card[{i}]", w)
                        for i, w in enumerate(per_card))
        blocked = merchants.get("blocked", [])
        if not isinstance(blocked, list) or not all(
                isinstance(m, str) and m.strip() for m in blocked):
            raise self.fail("[merchants] blocked", "must be a list of merchant names")
        return RiskRules(
            velocity=windows,
            max_per_payment=self.amounts("[amount] max_per_payment",
                                         amount.get("max_per_payment", {})),
            max_per_day_per_card=self.amounts("[amount] max_per_day_per_card",
                                              amount.get("max_per_day_per_card", {})),
            blocked_merchants=frozenset(normalize_merchant(m) for m in blocked),
            new_merchants=self.optional("[merchants] new_burst", merchants.get("new_burst")),
            new_device=self.optional("[devices] new_burst", devices.get("new_burst")),
        )

    def optional(self, where: str, value: object) -> Window | None:
        return None if value is None else self.window(where, value)

    def window(self, where: str, value: object) -> Window:
        if not isinstance(value, dict) or set(value) != {"window", "max"}:
            raise self.fail(where, 'must be { window = "1m", max = 5 } (exactly those keys)')
        label, most = value["window"], value["max"]
        match = _DURATION.fullmatch(label) if isinstance(label, str) else None
        if match is None:
            raise self.fail(where, f"window must be like 30s, 5m, 1h or 1d, got {label!r}")
        seconds = int(match.group(1)) * _UNIT[match.group(2)]
        if not 0 < seconds <= MAX_WINDOW:
            raise self.fail(where, f"window must be more than 0 and at most 30d, got {label}")
        if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= MAX_COUNT:
            raise self.fail(where, f"max must be a whole number from 1 to {MAX_COUNT}, "
                            f"got {most!r}")
        return Window(seconds, most, label)

    def amounts(self, where: str, value: object) -> Mapping[str, int]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table of currency = minor units")
        out: dict[str, int] = {}
        for currency, limit in value.items():
            if currency not in CURRENCIES:
                raise self.fail(f"{where} {currency}", "not an ISO 4217 currency code")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise self.fail(f"{where} {currency}",
                                f"must be a positive whole number of minor units, got {limit!r}")
            out[currency] = limit
        return MappingProxyType(out)
