"""Complete flows, failures included, so there is something real to search and steal.

:func:`complete_flows` runs what a wallet does in its life: enroll (a Latin and a
Korean holder name), pay, retry, conflict, decline, wrong PIN, PIN change, delete,
and with ``failures`` also a lockout, an acquirer that is down, one that times out
after charging, and a tampered message. Every result and every exception is kept in
:attr:`Flows.outcomes` for the leakage search.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from .._card import Card
from .._errors import AcquirerUnavailable
from .._protocol import AuthorizeRequest
from ._harness import OTHER_PIN, PIN, SECOND_PAN, Lab, Victim, pay, sample_card

__all__ = ["KOREAN_HOLDER", "Flows", "complete_flows"]

KOREAN_HOLDER = "김민수"
NEW_PIN = "902417"
OVER_LIMIT = 2_000_000
"""Above SimulatedAcquirer's default limit: a decline."""


@dataclass
class Flows:
    """Card ids by role, and every outcome (result or exception) of every step."""

    cards: dict[str, str] = field(default_factory=dict)
    outcomes: list[tuple[str, object]] = field(default_factory=list)

    def step(self, label: str, call: Callable[[], object]) -> object:
        try:
            outcome = call()
        except Exception as exc:  # kept: the leakage search reads every exception
            outcome = exc
        self.outcomes.append((label, outcome))
        return outcome


def complete_flows(lab: Lab, victim: Victim, *, failures: bool = False) -> Flows:
    flows = Flows()
    main = lab.enroll(victim)
    korean = lab.enroll(victim, sample_card(SECOND_PAN, KOREAN_HOLDER))
    gone = lab.enroll(victim, Card(SECOND_PAN, "01/31", "PARK JISOO"))
    flows.cards.update(main=main, korean=korean, deleted=gone)
    flows.step("pay", lambda: pay(victim, main))
    flows.step("retry", lambda: pay(victim, main))
    flows.step("conflict", lambda: pay(victim, main, amount=13000))
    flows.step("decline", lambda: pay(victim, main, key="big", amount=OVER_LIMIT))
    flows.step("wrong PIN", lambda: pay(victim, korean, OTHER_PIN, key="typo"))
    flows.step("change PIN", lambda: _change_pin(victim, korean, PIN, NEW_PIN))
    flows.step("pay after change", lambda: pay(victim, korean, NEW_PIN, key="k2"))
    flows.step("delete", lambda: victim.device.delete(gone))
    victim.cards.remove(gone)
    if failures:
        _failures(lab, victim, flows)
    return flows


def _change_pin(victim: Victim, card_id: str, old: str, new: str) -> None:
    from .._pin import Pin

    with Pin.from_digits(old) as o, Pin.from_digits(new) as n:
        victim.device.change_pin(card_id, o, n)


def _failures(lab: Lab, victim: Victim, flows: Flows) -> None:
    # The card to lock gets a wallet of its own, as if enrolled from another device:
    # its five wrong PINs spend its wallet's budget, which would lock main and korean
    # too (threat_model.md S8), and the steps below still pay with main.
    victim.device._store.forget_wallet()
    locked = lab.enroll(victim)
    flows.cards["locked"] = locked
    for i in range(6):
        flows.step(f"wrong PIN {i}", partial(pay, victim, locked, OTHER_PIN, key=f"w{i}"))
    flows.step("right PIN after lock", lambda: pay(victim, locked, key="late"))
    main = flows.cards["main"]
    if lab.server is not None:
        server = lab.server
        real = server.acquirer
        server.acquirer = _Down()
        flows.step("acquirer down", lambda: pay(victim, main, key="down"))
        server.acquirer = _ChargesThenTimesOut()
        flows.step("acquirer times out after charging", lambda: pay(victim, main, key="t"))
        flows.step("retry in doubt", lambda: pay(victim, main, key="t"))
        server.acquirer = real
    victim.wire.rewrite = _flip_envelope
    flows.step("tampered envelope", lambda: pay(victim, main, key="tamper"))
    victim.wire.rewrite = None
    flows.step("unknown card", lambda: pay(victim, "0" * 32, key="ghost"))
    flows.step("bad payment", lambda: pay(victim, main, key="bad key with spaces"))


class _Down:
    """A gateway that refused the connection, and says so with the card in its text."""

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str:
        raise AcquirerUnavailable(f"connection refused for card {card.pan} ({card.holder})")


class _ChargesThenTimesOut:
    """Takes the money, then the read times out; the error names the card."""

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str:
        raise TimeoutError(f"read timeout after charging {card.pan} exp {card.expiry}")


def _flip_envelope(message: object) -> object:
    if isinstance(message, AuthorizeRequest):
        env = bytearray(message.envelope)
        env[-1] ^= 1
        return dataclasses.replace(message, envelope=bytes(env))
    return message
