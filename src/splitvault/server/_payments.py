"""The authorization flow: verify, recombine in memory, call the acquirer once, record.

1. Validate the payment and the message shape (no state touched on bad input).
2. Read the card and the proof's challenge; check the PIN signature (pure).
3. For a good proof of a key not yet in the ledger: recombine the shares and open
   the card, in memory, for this call only.
4. One transaction: consume the challenge, record the proof's outcome (a wrong PIN
   never gets further), reset the guess count and, for a new payment, write the
   ledger row as ``pending`` with this worker's *lease* (owner, expiry).
5. Call the acquirer with the payment's reference, then record its outcome (a second
   transaction). A crash in between leaves ``pending``: once the lease has expired a
   retry is refused as ``PaymentInDoubt``, never charged again; while it is live, a
   retry on any worker waits for it. Only an acquirer that says it did not take the
   payment (``AcquirerUnavailable``) lets the row go, so a retry may call again.
   Between the two, for a new key, the fraud rules (``_risk_book.py``) run inside the
   transaction of step 4: one that fires records a ``risk:`` decline instead of the
   pending row, and the acquirer is never called. The outcome's receipt is queued in
   the transaction of step 5 (``_outbox.py``) and delivered after it commits, so a
   failing receipt can never change the payment.
6. A payment in doubt is settled by reconciliation (``_reconcile.py``); one settled as
   ``reversed`` or ``failed`` took no money, and the next retry charges it once, under
   a new attempt and so a new payment reference (``Store.restart_payment``).
7. An approval re-splits the shares (``_refresh.py``): the next server share is drawn
   while the current one is unwrapped in step 3, written (wrapped) in the transaction
   of step 5 with the approval, and R goes back sealed to the request's refresh key.
   Every reply carries the re-split still waiting for this device, if the request's
   key is the one it was sealed to, so a retry of a lost reply gets it again.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from .._authorization import Authorization
from .._card import Card
from .._errors import (
    InvalidChallenge,
    TamperedData,
)
from .._payment import Payment, validate_payment
from .._profiles import ServerProfile
from .._protocol import AuthorizeReply, AuthorizeRequest, card_record_aad
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.sealing import open_sealed
from ..crypto.shares import KEY_LEN, combine
from ._acquirer import Authorize
from ._charges import Charges
from ._checks import check_bytes, check_id
from ._envelopes import open_to_server
from ._guesses import Guesses
from ._keyring import Keyring
from ._keys import ServerKeys
from ._ledger import Ledger
from ._outbox import Outbox
from ._refresh import Resplit, draw, resealed
from ._risk_book import RiskBook
from ._store import (
    RETRYABLE,
    CardRecord,
    OutboxMessage,
    RiskCheck,
    ShareStep,
    Store,
)

__all__ = ["Payments"]

class Payments:
    """Authorizes payments exactly once. Gets the store, keys, ledger, the guess rules,
    the acquirer call, a clock and this worker's name (the lease owner)."""

    def __init__(self, store: Store, keyring: Keyring, keys: ServerKeys, ledger: Ledger,
                 guesses: Guesses, authorize: Authorize, profile: ServerProfile,
                 clock: Callable[[], float], owner: str,
                 sleep: Callable[[float], None] = time.sleep, *,
                 risk: RiskBook | None = None, outbox: Outbox | None = None) -> None:
        self._store = store
        self._keyring = keyring
        self._keys = keys
        self._ledger = ledger
        self._guesses = guesses
        self._profile = profile
        self._clock = clock
        self._owner = owner
        self._risk = risk
        self._outbox = outbox
        self._charges = Charges(store, ledger, authorize, profile, clock, owner, sleep,
                                outbox=outbox)

    def authorize(self, request: AuthorizeRequest) -> AuthorizeReply:
        card_id = check_id(request.card_id, "card id")
        payment = validate_payment(request.amount, request.currency, request.merchant,
                                   request.idempotency_key)
        envelope = check_bytes(request.envelope, "envelope")
        refresh_key = check_bytes(request.refresh_key, "refresh key", 32)
        card, challenge = self._guesses.proof_card(card_id, request.challenge_id,
                                                   resent=True)
        verified = self._guesses.pin_verified(card, "authorize",
                                              request.signed_bytes(challenge.nonce),
                                              request.pin_signature)
        ledger = self._ledger
        key = ledger.key_digest(card_id, payment.idempotency_key)
        params = ledger.params_digest(card_id, payment.idempotency_key, payment.amount,
                                      payment.currency, payment.merchant)
        if challenge.state == "used":
            return self._reply(card_id, refresh_key, self._resent(key, params, verified))
        if challenge.share_version != card.share_version:
            # The shares were re-split and committed since this challenge was issued
            # (another payment of this device, racing): the envelope holds a share of
            # a version the server no longer has. The proof is settled (counted if
            # wrong) and nothing is charged.
            self._guesses.settle(card_id, challenge.challenge_id, verified)
            raise InvalidChallenge("the card's shares were re-split during this payment; "
                                   "pay again")
        entry = self._store.ledger_entry(key) if verified else None
        found: Card | None = None
        resplit: Resplit | None = None
        tampered = False
        if verified and (entry is None or entry.state in RETRYABLE):
            # The PIN verified and there is something to charge: only now are the
            # shares recombined.
            opened = self._open_card(card, challenge.challenge_id, envelope)
            if opened is not None:
                found, resplit = opened
            tampered = found is None
        start = risk = None
        step = None
        try:
            if found is not None and resplit is not None:
                start = self._charges.start(card_id, found, payment, key, params, 0)
                risk = self._risk_check(card_id, card.device_key, found, payment, key,
                                        start.reference)
                step = ShareStep(card_id, card.share_version, resplit.wrapped_next,
                                 refresh_key, resplit.wrapped_token)
            outcome = self._guesses.settle(card_id, challenge.challenge_id, verified,
                                           ledger=start, risk=risk)
            if tampered:
                # The challenge stays consumed: the PIN proof was good, the device's
                # data is not.
                raise TamperedData()
            if found is not None and start is not None and outcome.ledger == "new":
                return self._reply(card_id, refresh_key,
                                   self._charges.charge(card_id, found, payment, start, step),
                                   resplit)
            recorded = outcome.entry or entry
            if (found is not None and recorded is not None and recorded.state in RETRYABLE
                    and ledger.same_params(recorded, params)):
                # Settled without taking money: this retry charges it once, under the
                # next attempt's reference. Of concurrent retries one wins the row.
                charged = self._charges.retry(card_id, found, payment, key, params, recorded,
                                              step)
                if charged is not None:
                    return self._reply(card_id, refresh_key, charged, resplit)
                recorded = self._store.ledger_entry(key)
        finally:
            del found  # the acquirer's copy is the last; see threat_model.md
            if resplit is not None:
                resplit.wipe()
        if recorded is None:  # cannot happen: a good proof has a card or an entry
            raise TamperedData()
        return self._reply(card_id, refresh_key, self._charges.recorded(key, params, recorded))

    def _reply(self, card_id: str, refresh_key: bytes, result: Authorization,
               resplit: Resplit | None = None) -> AuthorizeReply:
        """The result, with the re-split waiting for the device if ``refresh_key`` is
        the key it was sealed to: this payment's own (R still in memory), or an
        earlier one whose reply was lost (R recomputed from the two versions)."""
        card = self._store.card(card_id)
        if card is None:
            return AuthorizeReply(result)
        if (card.share_next is None or card.refresh_key is None
                or not hmac.compare_digest(card.refresh_key, refresh_key)):
            return AuthorizeReply(result, card.share_version)
        if resplit is not None and card.share_next == resplit.wrapped_next:
            sealed = resplit.seal(refresh_key, card_id, card.share_version)
        else:
            sealed = resealed(self._keyring, card, refresh_key)
        return AuthorizeReply(result, card.share_version, sealed)

    def _risk_check(self, card_id: str, device_key: bytes, card: Card, payment: Payment,
                    key: bytes, reference: str) -> RiskCheck | None:
        """The fraud rules' check for a new payment (None if no rule is set). Only what
        the server may hold enters it: card id, device key, amount, currency, merchant,
        time; the decline it may record is sealed like any other result, and gets a
        receipt like any other (queued in the same transaction)."""
        if self._risk is None:
            return None
        fact = self._risk.fact(payment, device_key, self._clock())
        outbox = self._outbox

        def notify(reason: str) -> tuple[OutboxMessage, ...]:
            if outbox is None:
                return ()
            return outbox.receipts(self._charges.result(card, payment, None, reason), reference)
        return self._risk.check(card_id, fact, lambda reason: self._ledger.seal_result(
            key, self._charges.result(card, payment, None, reason)), notify)

    def _resent(self, key: bytes, params: bytes, verified: bool) -> Authorization:
        """A proof sent again for the challenge it already consumed (the device lost
        the reply): the recorded result for its key, or ``InvalidChallenge``.

        Nothing is counted, reset or charged: the proof was settled when it first
        arrived. Only the holder of the PIN key can make a proof that verifies, it is
        bound to this payment's key and parameters, and the answer is the result its
        first arrival recorded, which the sender was owed anyway."""
        entry = self._store.ledger_entry(key) if verified else None
        if entry is None:
            raise InvalidChallenge()
        return self._charges.recorded(key, params, entry)

    def _open_card(self, stored: CardRecord, challenge_id: str,
                   envelope: bytes) -> tuple[Card, Resplit] | None:
        """The card and the re-split an approval will write (drawn while the server's
        share is unwrapped anyway), or None if the device's data does not open."""
        card_id = stored.card_id
        buffers: list[bytearray] = []
        try:
            plain = open_to_server(self._keys, envelope,
                                   AuthorizeRequest.envelope_aad(card_id, challenge_id))
            buffers.append(plain)
            server_share = self._keyring.unwrap("share", card_id, stored.share)
            buffers.append(server_share)
            if len(plain) <= KEY_LEN:
                return None
            device_share = bytearray(plain[:KEY_LEN])
            data_key = combine(device_share, server_share)
            buffers += [device_share, data_key]
            record = open_sealed(data_key, bytes(plain[KEY_LEN:]), card_record_aad(card_id))
            buffers.append(record)
            card = Card._from_record(record)
            return card, draw(self._keyring, card_id, server_share, stored.share_token)
        except (AuthenticationFailed, TamperedData, ValueError):
            return None
        finally:
            wipe(*buffers)

