"""``SimulatedAcquirer``: the demo's acquirer and the test double of a real one.

It keeps **books** (what it charged and reversed, per payment reference), deduplicates
by reference as a real gateway does, and injects faults, scripted or seeded-random, of
every kind that makes a payment's outcome hard to know:

- ``authorize``: ``unavailable`` (refused *before* charging: ``AcquirerUnavailable``),
  ``dropped`` (the request is lost before charging, and nobody says so:
  ``ConnectionError``; the books never see it), ``timeout`` (charged, then
  ``TimeoutError``), ``lost`` (charged, then the reply is lost:
  ``ConnectionResetError``), ``malformed`` (charged, then an answer that is not
  an approval code), ``slow`` (answers normally, late);
- ``status``: ``error`` (raises, nothing said), ``unknown`` (the books cannot say
  yet), ``slow``;
- ``reverse``: ``error`` (raises before reversing), ``lost`` (reverses, then raises),
  ``slow``.

The faults are test data, not secrets: a seeded ``random.Random`` makes a failing
schedule reproducible from its seed. Approval codes still come from ``secrets``.

The books are in memory, or with ``books=path`` in a file (``_books.py``) that every
booking is ``fsync``'d to before the acquirer answers, shared by every process that
opens it: then they survive a ``kill -9`` of the server, as a real acquirer's would,
and ``splitvault serve --simulated-books FILE`` and ``splitvault reconcile
--simulated-books FILE`` see the same ones (:func:`simulated_acquirer`).
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import AcquirerUnavailable, ConfigurationError, Declined
from ._acquirer import AcquirerStatus
from ._books import BooksFile

if TYPE_CHECKING:
    from .._card import Card

__all__ = ["AUTHORIZE_FAULTS", "REVERSE_FAULTS", "STATUS_FAULTS", "AcquirerCall", "Booking",
           "SimulatedAcquirer", "simulated_acquirer"]

AUTHORIZE_FAULTS = ("unavailable", "dropped", "timeout", "lost", "malformed", "slow")
STATUS_FAULTS = ("error", "unknown", "slow")
REVERSE_FAULTS = ("error", "lost", "slow")
#: 32 symbols (no I, O, 0, 1): an approval code's symbol is 5 random bits.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class AcquirerCall:
    """What the simulated acquirer remembers of a call: never the PAN."""

    last4: str
    amount: int
    currency: str
    merchant: str
    approval_code: str | None
    reference: str | None = None


@dataclass(frozen=True)
class Booking:
    """One reference's line in the books. ``charges`` counts every time money moved
    under it (more than one is a double charge); ``net`` is what stays taken."""

    reference: str
    amount: int
    currency: str
    approval_code: str | None
    decline_reason: str | None
    charges: int
    reversals: int

    @property
    def net(self) -> int:
        return self.amount * (self.charges - self.reversals)

    @property
    def reversed(self) -> bool:
        return self.charges > 0 and self.charges == self.reversals


class SimulatedAcquirer:
    """Approves, except expired cards and amounts over ``limit`` (in minor units).

    For demos and tests. ``calls`` records each ``authorize`` call (last 4 digits
    only); :meth:`statement` is the books. ``faults``, ``status_faults`` and
    ``reverse_faults`` script the next calls of each method (``None`` for a clean
    call); with ``seed`` and ``fault_rate``, each call past the script draws a fault
    at that rate from ``fault_kinds`` (all kinds by default). ``books``: a file that
    keeps the books across restarts and processes (see the module's docstring).
    """

    #: 1,000,000 minor units: 1,000,000 KRW (about 700 USD), a typical per-payment cap
    #: for a simple-payment wallet.
    DEFAULT_LIMIT = 1_000_000
    #: How late a ``slow`` answer is: enough to overlap concurrent retries, small
    #: enough for a test of thousands of payments.
    SLOW_SECONDS = 0.005

    def __init__(self, limit: int = DEFAULT_LIMIT, *, today: date | None = None,
                 faults: Iterable[str | None] = (), status_faults: Iterable[str | None] = (),
                 reverse_faults: Iterable[str | None] = (), seed: int | None = None,
                 fault_rate: float = 0.0, fault_kinds: Sequence[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 books: str | Path | None = None) -> None:
        self.limit = limit
        self._today = today
        self._lock = threading.Lock()
        self._sleep = sleep
        self._script = {"authorize": list(faults), "status": list(status_faults),
                        "reverse": list(reverse_faults)}
        self._rng = random.Random(seed)  # noqa: S311 (a reproducible test schedule)  # nosec B311
        self._rate = fault_rate if seed is not None else 0.0
        kinds = set(fault_kinds) if fault_kinds is not None else None
        self._kinds = {m: tuple(k for k in ks if kinds is None or k in kinds or
                                f"{m}:{k}" in kinds)
                       for m, ks in (("authorize", AUTHORIZE_FAULTS),
                                     ("status", STATUS_FAULTS), ("reverse", REVERSE_FAULTS))}
        self._books: dict[str, Booking] = {}
        self._file = BooksFile(books) if books is not None else None
        self.calls: list[AcquirerCall] = []
        self.faults_injected: Counter[str] = Counter()
        """Faults injected so far, by ``method:kind``."""

    # -- the acquirer contract -------------------------------------------------------

    def authorize(self, card: Card, amount: int, currency: str, merchant: str,
                  reference: str | None = None) -> str:
        fault = self._fault("authorize")
        code: str | None = None
        try:
            if fault == "unavailable":
                raise AcquirerUnavailable()
            if fault == "dropped":
                raise ConnectionError("connection dropped")
            if card.is_expired(self._today or date.today()):
                self._decline(reference, amount, currency, "card expired")
            if amount > self.limit:
                self._decline(reference, amount, currency, "amount over limit")
            code = self._charge(reference, amount, currency)
            if fault == "timeout":
                raise TimeoutError("the acquirer did not answer in time")
            if fault == "lost":
                raise ConnectionResetError("connection reset")
            if fault == "malformed":
                return None  # type: ignore[return-value]  # the fault under test
            return code
        finally:
            with self._lock:
                self.calls.append(AcquirerCall(card.last4, amount, currency, merchant, code,
                                               reference))

    def reverse(self, reference: str) -> None:
        fault = self._fault("reverse")
        if fault == "error":
            raise ConnectionError("reversal not delivered")
        with self._held():
            booking = self._books.get(reference)
            if booking is not None and booking.charges > booking.reversals:
                self._book({"op": "reverse", "ref": reference})
        if fault == "lost":
            raise TimeoutError("reversal reply lost")

    def status(self, reference: str) -> AcquirerStatus:
        fault = self._fault("status")
        if fault == "error":
            raise ConnectionError("status inquiry failed")
        if fault == "unknown":
            return AcquirerStatus.unknown()
        with self._held():
            booking = self._books.get(reference)
        if booking is None:
            return AcquirerStatus.not_found()
        if booking.decline_reason is not None:
            return AcquirerStatus.declined(booking.decline_reason)
        if booking.reversed:
            return AcquirerStatus.declined("reversed")
        return AcquirerStatus.approved(booking.approval_code or "")

    # -- the books -------------------------------------------------------------------

    def statement(self) -> list[Booking]:
        """Every reference the acquirer has seen, in the order it first saw them."""
        with self._held():
            return list(self._books.values())

    def booking(self, reference: str) -> Booking | None:
        with self._held():
            return self._books.get(reference)

    @contextmanager
    def _held(self) -> Iterator[None]:
        """The books, up to date and held: this process's lock and, with a file, its
        lock too, after reading what other processes booked meanwhile."""
        with self._lock:
            if self._file is None:
                yield
                return
            with self._file.held() as news:
                for booking in news:
                    self._apply(booking)
                yield

    def _book(self, booking: dict[str, Any]) -> None:
        """Enter one booking (only while held): on disk first, then in memory."""
        if self._file is not None:
            self._file.append(booking)
        self._apply(booking)

    def _apply(self, b: dict[str, Any]) -> None:
        ref = b["ref"]
        booking = self._books.get(ref)
        if b["op"] == "charge":
            if booking is None:
                booking = Booking(ref, b["amount"], b["currency"], b["code"], None, 0, 0)
            self._books[ref] = replace(booking, approval_code=b["code"],
                                       charges=booking.charges + 1)
        elif b["op"] == "decline":
            self._books.setdefault(ref, Booking(ref, b["amount"], b["currency"], None,
                                                b["reason"], 0, 0))
        elif booking is not None:  # reverse
            self._books[ref] = replace(booking, reversals=booking.charges)

    def _charge(self, reference: str | None, amount: int, currency: str) -> str:
        with self._held():
            key = reference if reference is not None else f"anonymous-{len(self._books)}"
            booking = self._books.get(key)
            if booking is not None and booking.decline_reason is not None:
                raise Declined(booking.decline_reason)
            if booking is not None and booking.charges > booking.reversals:
                # A retry of a charged reference: the same answer, no second charge.
                return booking.approval_code or ""
            # Six symbols of 5 bits from one read of the system's random source
            # (secrets.choice would read once per symbol, on every payment).
            bits = secrets.randbits(30)
            code = "".join(_CODE_ALPHABET[bits >> shift & 31] for shift in range(0, 30, 5))
            # A reversed reference charged again is counted: the server must never
            # reuse a reference after a reversal (a test checks charges <= 1).
            self._book({"op": "charge", "ref": key, "amount": amount, "currency": currency,
                        "code": code})
            return code

    def _decline(self, reference: str | None, amount: int, currency: str, reason: str) -> None:
        if reference is not None:
            with self._held():
                if reference not in self._books:
                    self._book({"op": "decline", "ref": reference, "amount": amount,
                                "currency": currency, "reason": reason})
        raise Declined(reason)

    def _fault(self, method: str) -> str | None:
        with self._lock:
            script = self._script[method]
            if script:
                fault = script.pop(0)
            elif self._rate and self._kinds[method] and self._rng.random() < self._rate:
                fault = self._rng.choice(self._kinds[method])
            else:
                fault = None
            if fault is not None:
                self.faults_injected[f"{method}:{fault}"] += 1
        if fault == "slow":
            self._sleep(self.SLOW_SECONDS)
        return fault

    def __repr__(self) -> str:
        return (f"<SimulatedAcquirer limit={self.limit} calls={len(self.calls)} "
                f"references={len(self._books)}>")


def simulated_acquirer(books: str | None, faults: str | None = None) -> SimulatedAcquirer | None:
    """The simulated acquirer of ``--simulated-books FILE`` and ``--simulated-faults
    SEED:RATE`` (for demos and crash tests), or None when neither is given (the
    server's default: in-memory books, no faults). ``ConfigurationError`` names a
    malformed ``faults``."""
    if not books and not faults:
        return None
    seed, rate = None, 0.0
    if faults:
        seed_text, sep, rate_text = faults.partition(":")
        try:
            seed, rate = int(seed_text), float(rate_text)
        except ValueError:
            sep = ""
        if not sep or not 0.0 <= rate <= 1.0:
            raise ConfigurationError(
                f"--simulated-faults must be SEED:RATE with a rate from 0 to 1, e.g. "
                f"7:0.2, got {faults!r}")
    return SimulatedAcquirer(books=books or None, seed=seed, fault_rate=rate)
