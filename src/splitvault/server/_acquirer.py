"""The acquirer: the plug point for a real payment gateway.

It is the only code that ever sees the whole card, in memory, for one call.

The contract (version 2), stated exactly in README.md, "Payment integrity":

- ``authorize(card, amount, currency, merchant, reference) -> str``: an approval code.
  Raising ``Declined(reason)`` means declined; raising ``AcquirerUnavailable`` means
  *nothing was taken*; anything else (any other exception, or an answer that is not a
  printable string) means the outcome is unknown, and the payment is in doubt.
- ``reverse(reference) -> None``: undo whatever was charged under ``reference``;
  idempotent, a no-op if nothing was.
- ``status(reference) -> AcquirerStatus``: what the acquirer's books say.

``reference`` names one attempt of (card id, idempotency key): every retry of that
attempt reuses it, so the acquirer can deduplicate; a new attempt (after a reversal or
a ``not_found``) gets a new one. It carries nothing that identifies card or person.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from .._card import Card

__all__ = ["Acquirer", "AcquirerCall", "AcquirerStatus", "AnyAcquirer", "LegacyAcquirer",
           "Settler", "SimulatedAcquirer", "authorizer", "settler"]

StatusState = Literal["approved", "declined", "not_found", "unknown"]


@dataclass(frozen=True, slots=True)
class AcquirerStatus:
    """What an acquirer's books say of one reference. Make it with one of the four
    constructors: :meth:`approved`, :meth:`declined`, :meth:`not_found`, :meth:`unknown`.
    """

    state: StatusState
    approval_code: str | None = None
    decline_reason: str | None = None

    def __post_init__(self) -> None:
        # A status decides whether money stays taken: an inconsistent one is refused
        # here (a caller mistake), not interpreted later.
        if self.state not in ("approved", "declined", "not_found", "unknown"):
            raise ValueError("AcquirerStatus.state must be approved, declined, not_found "
                             "or unknown")
        if (self.state == "approved") != isinstance(self.approval_code, str):
            raise ValueError("an approved AcquirerStatus carries an approval code, "
                             "and only an approved one")
        if (self.state == "declined") != isinstance(self.decline_reason, str):
            raise ValueError("a declined AcquirerStatus carries a reason, and only a "
                             "declined one")

    @classmethod
    def approved(cls, code: str) -> AcquirerStatus:
        """The reference was charged; ``code`` is its approval code."""
        return cls("approved", approval_code=code)

    @classmethod
    def declined(cls, reason: str) -> AcquirerStatus:
        """The reference was declined: nothing was taken."""
        return cls("declined", decline_reason=reason)

    @classmethod
    def not_found(cls) -> AcquirerStatus:
        """The acquirer never saw the reference: nothing was taken."""
        return cls("not_found")

    @classmethod
    def unknown(cls) -> AcquirerStatus:
        """The acquirer cannot say (yet): the reconciler reverses it to be sure."""
        return cls("unknown")


class Acquirer(Protocol):
    """An acquirer of contract version 2 (see the module docstring)."""

    def authorize(self, card: Card, amount: int, currency: str, merchant: str,
                  reference: str) -> str: ...

    def reverse(self, reference: str) -> None: ...

    def status(self, reference: str) -> AcquirerStatus: ...


class LegacyAcquirer(Protocol):
    """An acquirer written against 0.1.0: ``authorize`` without the reference, and no
    ``status`` or ``reverse``. Still accepted (see :func:`authorizer`), but it cannot
    deduplicate retries, and its payments in doubt cannot be settled automatically:
    ``ShareServer.reconcile()`` reports them as ``manual``."""

    def authorize(self, card: Card, amount: int, currency: str, merchant: str) -> str: ...


AnyAcquirer = Acquirer | LegacyAcquirer

Authorize = Callable[["Card", int, str, str, str], str]


def authorizer(acquirer: object) -> Authorize:
    """``acquirer.authorize`` called with the payment reference, or, for an acquirer
    written against 0.1.0's four-argument ``authorize(card, amount, currency,
    merchant)``, without it (it then cannot deduplicate by reference)."""
    method = acquirer.authorize  # type: ignore[attr-defined]
    if _takes_reference(method):
        def call(card: Card, amount: int, currency: str, merchant: str, reference: str) -> str:
            result: str = method(card, amount, currency, merchant, reference=reference)
            return result
    else:
        def call(card: Card, amount: int, currency: str, merchant: str, reference: str) -> str:
            result: str = method(card, amount, currency, merchant)
            return result
    return call


@dataclass(frozen=True)
class Settler:
    """The two calls reconciliation needs, taken from a version 2 acquirer."""

    status: Callable[[str], object]
    reverse: Callable[[str], object]


def settler(acquirer: object) -> Settler | None:
    """The acquirer's ``status`` and ``reverse``, or None for an acquirer that cannot
    settle a payment in doubt (0.1.0's four-argument one, or one without them)."""
    status = getattr(acquirer, "status", None)
    reverse = getattr(acquirer, "reverse", None)
    method = getattr(acquirer, "authorize", None)
    if not (callable(status) and callable(reverse) and callable(method)):
        return None
    if not _takes_reference(method):
        # It never saw our references, so its books cannot be asked about them.
        return None
    return Settler(status, reverse)


def _takes_reference(method: object) -> bool:
    try:
        params = list(inspect.signature(method).parameters.values())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        params = []
    return any(p.name == "reference" or p.kind is inspect.Parameter.VAR_KEYWORD
               for p in params)


from ._simulated import AcquirerCall, SimulatedAcquirer  # noqa: E402 (re-exported; needs AcquirerStatus)


def clean_text(text: object) -> str:
    """Acquirer text as we record and show it: printable, at most 64 characters (an
    acquirer's codes and reasons could hold anything, the card included)."""
    if not isinstance(text, str):
        return ""
    return "".join(ch for ch in text if ch.isprintable())[:64].strip()
