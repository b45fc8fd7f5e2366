"""The authorization flow: verify, recombine in memory, call the acquirer once, record.

1. Validate the payment and the message shape (no state touched on bad input).
2. In one transaction: consume the challenge, check the PIN proof (a wrong PIN never
   gets further), reset the guess count, look up the idempotency key.
3. Already recorded: same parameters -> the recorded result; different -> conflict.
4. Recombine the shares and open the card, in memory, for this call only.
5. Write the ledger row as ``pending`` (durable), call the acquirer, record the outcome.
   A crash between 5's call and its record leaves ``pending``: a retry is refused with
   ``PaymentInDoubt``, never charged again. Only an acquirer that says it did not take
   the payment (``AcquirerUnavailable``) lets the row go, so a retry may call again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .._authorization import Authorization
from .._card import Card
from .._errors import (
    AcquirerUnavailable,
    Declined,
    IdempotencyConflict,
    PaymentInDoubt,
    TamperedData,
    VaultError,
)
from .._payment import Payment, validate_payment
from .._protocol import AuthorizeRequest, card_record_aad
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.sealing import open_sealed
from ..crypto.shares import KEY_LEN, combine
from ._checks import check_bytes, check_id
from ._ledger import LedgerEntry

if TYPE_CHECKING:
    from ._server import ShareServer

__all__ = ["PaymentFlow"]

#: How long a retry waits for a concurrent attempt with the same key to finish
#: before answering PaymentInDoubt. Longer than any sane acquirer timeout.
IN_FLIGHT_WAIT = 30.0
_POLL = 0.02


class PaymentFlow:
    def __init__(self, server: ShareServer) -> None:
        self._server = server
        # Ledger keys whose acquirer call is running in this process right now. A
        # 'pending' row not in this set was left by a crash or a failed write: it is in
        # doubt at once; one in it is waited for (a concurrent retry).
        self._flying: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def authorize(self, request: AuthorizeRequest) -> Authorization:
        server = self._server
        card_id = check_id(request.card_id, "card id")
        challenge_id = check_id(request.challenge_id, "challenge id")
        payment = validate_payment(request.amount, request.currency, request.merchant,
                                   request.idempotency_key)
        envelope = check_bytes(request.envelope, "envelope")
        ledger = server._ledger
        error: VaultError | None
        key = ledger.key_digest(card_id, payment.idempotency_key)
        params = ledger.params_digest(card_id, payment.amount, payment.currency,
                                      payment.merchant)
        # One transaction: the PIN proof, the idempotency lookup and, for a new payment,
        # the card opened in memory and the ledger row written as pending. Marked in flight
        # before that row exists, so a concurrent retry that sees it waits for us.
        found: Card | None = None
        with self._in_flight(key):
            with server._db.write() as conn:
                card, error = server.prove_pin(conn, card_id, challenge_id,
                                               request.signed_bytes, request.pin_signature)
                entry = ledger.lookup(conn, key) if error is None else None
                if error is None and entry is None:
                    # The PIN verified: only now are the shares recombined.
                    found, error = self._open_card(card_id, card.share, challenge_id, envelope)
                    if found is not None:
                        ledger.start(conn, key, params, server.now())
            if found is not None:
                try:
                    return self._charge(card_id, found, payment, key)
                finally:
                    del found  # the acquirer's copy is the last; see threat_model.md
        if error is not None:
            raise error
        if entry is None:  # cannot happen: no error means a card or a recorded entry
            raise TamperedData()
        return self._recorded(key, params, entry)

    def _charge(self, card_id: str, card: Card, payment: Payment, key: bytes) -> Authorization:
        server = self._server
        outcome = self._ask_acquirer(card, payment, key)
        recorded = False
        try:
            with server._db.write() as conn:
                server._ledger.finish(conn, server._kek, key, outcome, server.now())
                event = "authorized" if outcome.approved else "declined"
                server._audit(conn, event, card_id)
            recorded = True
        except Exception:
            recorded = False  # handled below, outside the except block
        if not recorded:
            # The acquirer answered but we could not write it down (disk full, I/O
            # error): money may have moved, so the answer is "in doubt", never "failed".
            self._mark_in_doubt(key)
            raise PaymentInDoubt()
        return outcome

    def _ask_acquirer(self, card: Card, payment: Payment, key: bytes) -> Authorization:
        """The acquirer's answer as a result, or the error to raise.

        Errors are raised *after* the except blocks, so the acquirer's own exception is
        not even reachable as ``__context__``: its text could hold anything, the card
        included.
        """
        verdict, code, reason = "doubt", None, None
        try:
            code = self._server.acquirer.authorize(card, payment.amount, payment.currency,
                                                   payment.merchant)
            verdict = "approved"
        except Declined as declined:
            verdict, reason = "declined", _clean(declined.reason) or "declined"
        except AcquirerUnavailable:
            verdict = "unavailable"
        except Exception:
            verdict = "doubt"  # anything else: see below
        if verdict == "unavailable":
            # The acquirer says it never took the payment: nothing was charged, nothing
            # is recorded, and a retry may try again.
            with self._server._db.write() as conn:
                self._server._ledger.abandon(conn, key)
            raise AcquirerUnavailable()
        if verdict == "approved" and (not isinstance(code, str) or not _clean(code)):
            verdict = "doubt"  # an approval we cannot record faithfully
        if verdict == "doubt":
            # A timeout, a dropped connection, a bug: any of them may have come after the
            # money moved. Calling that "failed" is how money gets taken for a payment
            # the user was told had failed; so it stays in doubt until reconciled.
            self._mark_in_doubt(key)
            raise PaymentInDoubt()
        return self._result(card, payment, _clean(code) if code else None, reason)

    def _mark_in_doubt(self, key: bytes) -> None:
        try:
            with self._server._db.write() as conn:
                self._server._ledger.mark_in_doubt(conn, key)
        except Exception:
            # Best effort: a row left 'pending' and no longer in flight is treated as
            # in doubt anyway (see _recorded).
            return

    @contextmanager
    def _in_flight(self, key: bytes) -> Iterator[None]:
        with self._lock:
            self._flying[key] = self._flying.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._flying[key] -= 1
                if not self._flying[key]:
                    del self._flying[key]

    def _result(self, card: Card, payment: Payment, code: str | None,
                reason: str | None) -> Authorization:
        return Authorization(
            approved=code is not None,
            approval_code=code,
            decline_reason=reason,
            masked_pan=f"•••• {card.last4}",
            amount=payment.amount,
            currency=payment.currency,
            merchant=payment.merchant,
            idempotency_key=payment.idempotency_key,
            timestamp=datetime.fromtimestamp(self._server.now(), UTC),
        )

    def _recorded(self, key: bytes, params: bytes, entry: LedgerEntry) -> Authorization:
        server = self._server
        if not server._ledger.same_params(entry, params):
            raise IdempotencyConflict()
        deadline = time.monotonic() + IN_FLIGHT_WAIT
        while entry.state in ("pending", "in_doubt"):
            if (entry.state == "in_doubt" or key not in self._flying
                    or time.monotonic() > deadline):
                raise PaymentInDoubt()
            time.sleep(_POLL)
            found = server._ledger.lookup(server._db.connection(), key)
            if found is None:  # the other attempt's acquirer took nothing; not retried here
                raise AcquirerUnavailable()
            entry = found
        return server._ledger.result(server._kek, key, entry)

    def _open_card(self, card_id: str, wrapped_share: bytes, challenge_id: str,
                   envelope: bytes) -> tuple[Card | None, TamperedData | None]:
        """The card, or the error to raise once the transaction has committed (the
        challenge stays consumed: the PIN proof was good, the device's data is not)."""
        server = self._server
        buffers: list[bytearray] = []
        try:
            plain = server._open_envelope(envelope,
                                          AuthorizeRequest.envelope_aad(card_id, challenge_id))
            buffers.append(plain)
            server_share = server._kek.unwrap("share", card_id, wrapped_share)
            buffers.append(server_share)
            if len(plain) <= KEY_LEN:
                return None, TamperedData()
            device_share = bytearray(plain[:KEY_LEN])
            data_key = combine(device_share, server_share)
            buffers += [device_share, data_key]
            record = open_sealed(data_key, bytes(plain[KEY_LEN:]), card_record_aad(card_id))
            buffers.append(record)
            return Card._from_record(record), None
        except (AuthenticationFailed, TamperedData, ValueError):
            return None, TamperedData()
        finally:
            wipe(*buffers)


def _clean(text: object) -> str:
    """Acquirer text as we record and show it: printable, at most 64 characters."""
    if not isinstance(text, str):
        return ""
    return "".join(ch for ch in text if ch.isprintable())[:64].strip()
