"""``Device``: the phone's side. Holds one share of each card's key and proves the PIN.

The device never sends the PIN, a PIN hash or anything testable offline: the server
sees a blinded OPRF element (uniformly random to it) and signatures made with a key
derived from the OPRF output, the Argon2id stretch and the device secret.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from .._authorization import Authorization, CardSummary
from .._card import Card
from .._card_state import CardState
from .._deployment import Deployment
from .._errors import (
    ConfigurationError,
    InvalidCard,
    InvalidPhrase,
    InvalidPin,
    RateLimited,
    ServerRolledBack,
    ServerUnavailable,
    UnknownCard,
    VaultError,
)
from .._payment import Payment, validate_payment
from .._pin import Pin, check_new_pin
from .._profiles import KdfProfile, PinPolicy
from .._protocol import (
    FRESHNESS_SECONDS,
    AuthorizeReply,
    AuthorizeRequest,
    CardStatusRequest,
    ChangePinBegin,
    ChangePinFinish,
    DeleteRequest,
    EnrollBegin,
    EnrollFinish,
    EvaluateReply,
    EvaluateRequest,
    ReenrollBegin,
    ReenrollFinish,
    ShareService,
    card_id_for,
    card_record_aad,
    proof_aad,
)
from .._resplit import TOKEN_LEN, epoch_mac, open_refresh, possession_mac
from ..crypto import envelope
from ..crypto.envelope import seal_envelope
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.sealing import seal
from ..crypto.shares import KEY_LEN, combine, split
from ..crypto.signing import public_key, sign
from ._device_key import device_sign
from ._history import PaymentRecord, recorded
from ._pinkey import BlindedPin, derive_pin_seed
from ._realm_flow import RealmCards, is_realm_card
from ._realms import RealmClient
from ._store import DeviceCard, DeviceStore

__all__ = ["Device"]

#: Longest security phrase: it must fit on the keypad beside the PIN display.
MAX_PHRASE = 40
_CARD_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
RESENDS = 1
"""Times a lost authorization reply is answered by sending the same request again:
once rides out a dropped packet; the server answers each copy alike."""


class Device:
    """The device role. Open with :meth:`open`."""

    def __init__(self, store: DeviceStore, server: ShareService | RealmClient, *,
                 kdf: KdfProfile = KdfProfile.INTERACTIVE,
                 pin_policy: PinPolicy = PinPolicy.DEFAULT,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._where = str(store.path.resolve())  # once: resolve() stats every component
        self.kdf = kdf
        self.pin_policy = pin_policy
        self._clock = clock
        # A t-of-n deployment (``_realm_flow.py``) or the single server: one of the two.
        self._realms: RealmCards | None = None
        self._server: ShareService = _NoSingleServer()
        self._owns_transport = True
        if isinstance(server, RealmClient):
            self._realms = RealmCards(store, server, kdf, self._millis, clock)
            self._transport: object = server
        else:
            self._server = server
            self._transport = server

    @classmethod
    def open(cls, path: str | Path, *, server: ShareService | str | Deployment | RealmClient,
             kdf: KdfProfile = KdfProfile.INTERACTIVE,
             pin_policy: PinPolicy = PinPolicy.DEFAULT,
             pin_sha256: str | None = None,
             timeout: float = 10.0) -> Device:
        """Open (or create) the device store at ``path``, talking to ``server``: a
        ``ShareServer`` in this process (any object with the service's methods), the
        URL of one (``https://host:port``), or a t-of-n deployment
        (``sv.Deployment.load("deployment.json")``: its realms and gateways, each asked
        with ``timeout``)."""
        service: ShareService | RealmClient
        if isinstance(server, Deployment):
            service = RealmClient(server, timeout=timeout)
        elif isinstance(server, RealmClient):
            service = server
        elif isinstance(server, str):
            from .._extras import require

            require("httpx", "client", "a device talking to a remote share server")
            from ._http import HttpShareService

            service = HttpShareService(server, pin_sha256=pin_sha256, timeout=timeout)
        else:
            service = server
        device = cls(DeviceStore(path), service, kdf=kdf, pin_policy=pin_policy)
        # A RealmClient the caller made is the caller's (it may serve several devices);
        # one made here from a Deployment, or an HTTP client from a URL, is the device's.
        device._owns_transport = not isinstance(server, RealmClient)
        # Half-done enrollments first: the server may hold a share of each that only
        # this device can delete.
        with contextlib.suppress(ServerUnavailable, RateLimited):
            device.cancel_interrupted()
        if device._realms is not None:
            # A realm that was down when a card was enrolled gets it now.
            with contextlib.suppress(VaultError):
                device._realms.catch_up()
        return device

    def close(self) -> None:
        self._store.close()
        closer = getattr(self._transport, "close_transport", None) if self._owns_transport else None
        if callable(closer):
            closer()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Device {self._store.path}>"

    # -- the public API ------------------------------------------------------------------

    def enroll(self, card: Card, pin: Pin, *, security_phrase: str | None = None) -> str:
        """Split ``card`` between this device and the server under ``pin``; returns the
        new card id. The caller still owns ``pin`` (and wipes it)."""
        if not isinstance(card, Card):
            raise InvalidCard("card must be a splitvault.Card")
        _check_pin(pin)
        check_new_pin(pin, self.pin_policy)
        phrase = _check_phrase(security_phrase)
        if self._realms is not None:
            return self._realms.enroll(card, pin, phrase)
        sign_seed = bytearray(secrets.token_bytes(32))
        card_id = card_id_for(public_key(sign_seed))  # the server accepts no other
        device_secret = bytearray(secrets.token_bytes(32))
        salt = secrets.token_bytes(16)
        wallet_seed = self._store.wallet_seed(self._clock())
        with BlindedPin(card_id, pin) as blinded:
            # Named by the device's one wallet key, so that the server counts wrong PINs
            # across this device's cards too (an owner with one PIN for all cards:
            # one limit, not one per card), and signed by it (possession).
            try:
                begin = EnrollBegin(card_id, public_key(sign_seed), blinded.blinded, b"",
                                    public_key(wallet_seed), b"")
                signed = begin.signed_bytes()
                begin = dataclasses.replace(begin, signature=sign(sign_seed, signed),
                                            wallet_signature=sign(wallet_seed, signed))
            finally:
                wipe(wallet_seed)
            reply = self._server.enroll_begin(begin)
            pin_seed = derive_pin_seed(blinded.finalize(reply.evaluated), salt=salt,
                                       device_secret=bytes(device_secret), card_id=card_id,
                                       profile=self.kdf)
        data_key = bytearray(secrets.token_bytes(KEY_LEN))
        record = card._to_record()
        device_share, server_share = split(data_key)
        # The first share version's token: this device proves it holds a version with
        # it (``possession``), which a copy taken later cannot do for later versions.
        token = bytearray(secrets.token_bytes(TOKEN_LEN))
        half = server_share + token
        try:
            sealed = seal(data_key, record, card_record_aad(card_id))
            envelope = seal_envelope(reply.server_key, half,
                                     EnrollFinish.envelope_aad(card_id))
            finish = EnrollFinish(card_id, _sealed(reply.server_key, public_key(pin_seed),
                                                   "enroll-verifier", card_id),
                                  envelope, b"", b"")
            signed = finish.signed_bytes()
            finish = dataclasses.replace(
                finish, device_signature=sign(sign_seed, signed),
                pin_signature=_sealed(reply.server_key, sign(pin_seed, signed), "enroll-pin",
                                      card_id))
            # Stored as pending first: a crash before the server confirms leaves a row we
            # can discard, never a server-side card whose device share was lost.
            self._store.add_pending(
                DeviceCard(card_id, card.brand, card.last4, card.expiry, sealed,
                           bytes(device_share), bytes(sign_seed), bytes(device_secret), salt,
                           self.kdf.value, reply.server_key, phrase,
                           share_token=bytes(token), epoch_token=bytes(token)),
                self._clock(),
            )
            try:
                self._server.enroll_finish(finish)
            except BaseException:
                # The server may have committed and only the reply was lost: forget
                # the card here only once the server has deleted its half too (else
                # the pending row stays, and the next open cancels it).
                with contextlib.suppress(Exception):
                    self._cancel(card_id, bytes(sign_seed))
                raise
            self._store.activate(card_id)
        finally:
            for buf in (data_key, record, device_share, server_share, sign_seed,
                        device_secret, pin_seed, token, half):
                wipe(buf)
        return card_id

    @recorded
    def authorize(self, card_id: str, pin: Pin, *, amount: int, currency: str, merchant: str,
                  idempotency_key: str) -> Authorization:
        """Pay ``amount`` (minor units of ``currency``) to ``merchant`` with this card.

        Retrying with the same ``idempotency_key`` and parameters returns the recorded
        result and never charges twice. A decline is a result (``approved`` false), not
        an exception: it is recorded like an approval.
        """
        payment = validate_payment(amount, currency, merchant, idempotency_key)
        _check_pin(pin)
        if not isinstance(card_id, str):
            raise UnknownCard()
        card_id = str.__str__(card_id)  # a plain str: a subclass could hash apart
        with self._locked(card_id) as lock:
            # Read once, under the card's lock: what the last payment left.
            try:
                card = self._store.get(card_id)
            except UnknownCard:
                self._drop_lock(card_id, lock)  # no lock kept per id that names no card
                raise
            if self._realm_card(card):
                return self._with_realms().authorize(card, pin, payment)
            # One evaluation per call, never more: the device does not spend a guess on
            # its own. If the evaluation's reply is lost, ServerUnavailable reaches the
            # caller, who may ask the user to try again. If the authorization's reply
            # is lost, the *same* request is sent again: its challenge is consumed by
            # then, and the server answers an identical, verifying proof with the
            # result it recorded (or, if the first copy never arrived, settles it now),
            # and with the re-split of an approval again.
            request, card = self._authorize_request(card, pin, payment)
            for attempt in range(RESENDS + 1):
                try:
                    reply = self._server.authorize(request)
                except RateLimited:
                    raise
                except ServerUnavailable:
                    if attempt == RESENDS:
                        raise
                    continue
                # Staging R drops the refresh key with it. Without R (a decline) no
                # re-split waits for this key, so it may stay until the next payment
                # replaces it: that saves the device a write per payment.
                self._take_refresh(card, reply)
                return reply.authorization
        raise ServerUnavailable("no answer from the share server")  # not reached

    def _authorize_request(self, card: DeviceCard, pin: Pin,
                           payment: Payment) -> tuple[AuthorizeRequest, DeviceCard]:
        # The key this payment's re-split is sealed to, kept on disk before the request
        # (a crash after the server sealed R to it must not lose it): the last one
        # while a request sent with it may still be settled (an authorization held
        # back, or slow, can still be approved, and its R is sealed to that key), else
        # a fresh one, written with the promotion of the last re-split if this
        # evaluation confirmed one.
        kept = card.refresh_secret
        keep = (kept is not None and card.next_share is None
                and (card.refresh_until or 0.0) > self._clock())
        fresh = secrets.token_bytes(32)
        challenge, pin_seed, card = self._prove_pin(card, pin,
                                                    next_secret=None if keep else fresh)
        try:
            until = challenge.expires_at + FRESHNESS_SECONDS  # the device's clock may lag
            # Fresh also if the evaluation just took a waiting R for ``kept``.
            secret = kept if keep and kept is not None and card.refresh_secret == kept else fresh
            if card.refresh_secret != secret or card.refresh_until != until:
                self._store.begin_refresh(card.card_id, secret, until)
            request = AuthorizeRequest(
                card.card_id, challenge.challenge_id, payment.amount, payment.currency,
                payment.merchant, payment.idempotency_key,
                seal_envelope(card.server_key, card.device_share + card.sealed_record,
                              AuthorizeRequest.envelope_aad(card.card_id,
                                                            challenge.challenge_id)),
                b"", envelope.public_key(secret),
            )
            signature = sign(pin_seed, request.signed_bytes(challenge.nonce))
        finally:
            wipe(pin_seed)
        return dataclasses.replace(request, pin_signature=_sealed(
            card.server_key, signature, "authorize", card.card_id)), dataclasses.replace(
                card, refresh_secret=secret)

    def _card_lock(self, card_id: str) -> threading.Lock:
        """One payment or PIN proof at a time per card and device store, across every
        ``Device`` of this process: the shares are re-split after each approval, and
        a request racing another would present a share that one is retiring (the
        server would take it for a copy of the device). One process per store."""
        where = (self._where, card_id)
        with _LOCKS_GUARD:
            return _CARD_LOCKS.setdefault(where, threading.Lock())

    @contextlib.contextmanager
    def _locked(self, card_id: str) -> Iterator[threading.Lock]:
        """Hold the card's lock (:meth:`_current_lock`) for the block."""
        lock = self._current_lock(card_id)
        try:
            yield lock
        finally:
            lock.release()

    def _current_lock(self, card_id: str) -> threading.Lock:
        """The card's lock, acquired, and still the one in the table: a lock dropped
        (:meth:`_drop_lock`) while this thread waited on it is let go and the current
        one taken instead, so two payments of one card never hold two different locks."""
        where = (self._where, card_id)
        while True:
            lock = self._card_lock(card_id)
            lock.acquire()
            try:
                with _LOCKS_GUARD:
                    if _CARD_LOCKS.get(where) is lock:
                        return lock
            except BaseException:
                lock.release()
                raise
            lock.release()

    def _drop_lock(self, card_id: str, lock: threading.Lock) -> None:
        """Forget ``lock`` (held by the caller) for an id found to name no card here,
        so that ids tried in vain leave nothing behind. A thread waiting on it takes
        the table's current lock instead (:meth:`_current_lock`)."""
        with _LOCKS_GUARD:
            where = (self._where, card_id)
            if _CARD_LOCKS.get(where) is lock:
                del _CARD_LOCKS[where]

    def _take_refresh(self, card: DeviceCard, reply: AuthorizeReply | EvaluateReply) -> None:
        """Stage the re-split a reply brings (R sealed to this card's refresh key) as
        version ``reply.share_version + 1`` beside the current share, which stays
        until the server confirms it holds the new version too (the next request's
        reply). One that does not open is left: the server offers it again."""
        if reply.refresh is None or card.refresh_secret is None:
            return
        if card.share_version != reply.share_version or card.next_share is not None:
            return  # not for the share this device holds, or already taken
        try:
            # Tagged under this version's token: a re-split the server did not make
            # (a proxy that knows the refresh public key) is refused here, before it
            # could take the place of a working share.
            r, token = open_refresh(card.refresh_secret, reply.refresh, card.card_id,
                                    reply.share_version + 1, card.share_token)
        except AuthenticationFailed:
            return
        share = bytearray(card.device_share)
        nxt = bytearray()
        try:
            nxt = combine(share, r)
            self._store.stage_share(card.card_id, card.share_version, bytes(nxt),
                                    bytes(token), self._clock())
        finally:
            wipe(r, token, share, nxt)

    def check_new_pin(self, pin: Pin) -> None:
        """Raise ``InvalidPin`` or ``WeakPin`` unless ``pin`` may be chosen as a new PIN
        under this device's policy (so a UI can refuse it before asking twice)."""
        _check_pin(pin)
        check_new_pin(pin, self.pin_policy)

    def check_server(self) -> None:
        """Ask the share server for its settings, once, and raise what went wrong:
        ``ServerUnavailable`` saying why (unreachable, a certificate that fails
        verification or the pin, ``http://`` to a TLS port). For an app to check at
        start instead of at the user's first payment. Spends no guess. For a
        deployment: every realm and gateway is asked, and fewer than ``t`` realms or no
        gateway answering is ``ServerUnavailable`` naming those that did not."""
        if self._realms is not None:
            self._realms.check()
            return
        self._server.info()

    def cards(self) -> list[CardSummary]:
        """The enrolled cards: id, brand, last 4 digits, expiry. Never the PAN."""
        return [CardSummary(*row) for row in self._store.active()]

    def history(self, card_id: str) -> list[PaymentRecord]:
        """This device's record of the card's payments, oldest first: amount, merchant,
        time, and the approval code or why it was not paid (see ``PaymentRecord``).
        Kept on this device only; deleting the card deletes it."""
        return self._store.payments(self._store.get(card_id).card_id)

    def security_phrase(self, card_id: str) -> str | None:
        """The phrase chosen at enrollment, shown on the keypad to prove it is genuine."""
        return self._store.get(card_id).security_phrase

    def change_pin(self, card_id: str, old_pin: Pin, new_pin: Pin) -> None:
        """Replace the PIN. Proving ``old_pin`` spends a guess like a payment does; the
        server also rotates the card's OPRF key, so old transcripts are worthless."""
        _check_pin(old_pin)
        _check_pin(new_pin)
        self._single_server_only(card_id, "changing the PIN")
        check_new_pin(new_pin, self.pin_policy)
        with self._locked(self._store.get(card_id).card_id):
            self._change_pin(self._store.get(card_id), old_pin, new_pin)

    def _change_pin(self, card: DeviceCard, old_pin: Pin, new_pin: Pin) -> None:
        profile = KdfProfile.from_parameters(*card.kdf)
        challenge, old_seed, card = self._prove_pin(card, old_pin)
        new_seed = bytearray()
        try:
            with BlindedPin(card.card_id, new_pin) as blinded:
                begin = ChangePinBegin(card.card_id, challenge.challenge_id, blinded.blinded,
                                       b"")
                begin = dataclasses.replace(begin, pin_signature=_sealed(
                    card.server_key, sign(old_seed, begin.signed_bytes(challenge.nonce)),
                    "change-pin", card.card_id))
                reply = self._server.change_pin_begin(begin)
                new_seed = derive_pin_seed(blinded.finalize(reply.evaluated), salt=card.salt,
                                           device_secret=card.device_secret,
                                           card_id=card.card_id, profile=profile)
            finish = ChangePinFinish(card.card_id, challenge.challenge_id, _sealed(
                card.server_key, public_key(new_seed), "change-pin-verifier", card.card_id),
                b"", b"")
            signed = finish.signed_bytes(challenge.nonce)
            finish = dataclasses.replace(
                finish,
                old_pin_signature=_sealed(card.server_key, sign(old_seed, signed),
                                          "change-pin-old", card.card_id),
                new_pin_signature=_sealed(card.server_key, sign(new_seed, signed),
                                          "change-pin-new", card.card_id))
        finally:
            for buf in (old_seed, new_seed):
                wipe(buf)
        # Only the server changes: salt, device secret and KDF cost stay, so a crash
        # anywhere leaves either the old PIN or the new one working, never neither.
        self._server.change_pin_finish(finish)

    def reenroll(self, card_id: str, card: Card, new_pin: Pin) -> None:
        """Enroll ``card`` again under ``new_pin``, keeping its card id: the way back for
        a locked card (or a forgotten PIN). Needs this device, whose key for the card
        proves possession, and the card itself: the server's share and OPRF key are
        replaced, so the old sealed record can never be opened again, and the card is
        sealed anew from ``card``. The guess count and the lock are cleared.

        A crash at any point is mended by calling it again: the device key does not
        change, and until this device stores the new share its old one simply fails
        to open anything.

        ``card`` must be the card enrolled under ``card_id``: its brand and last four
        digits are checked against the ones this device keeps (``InvalidCard``
        otherwise; the whole number cannot be checked, the device never stores it in
        the clear). A renewed card with a new expiry is the same card."""
        if not isinstance(card, Card):
            raise InvalidCard("card must be a splitvault.Card")
        _check_pin(new_pin)
        check_new_pin(new_pin, self.pin_policy)
        old = self._store.get(card_id)
        if card.brand != old.brand or card.last4 != old.last4:
            raise InvalidCard(f"not the card enrolled under this id (that is a {old.brand} "
                              f"ending {old.last4}); enroll a different card with enroll()")
        if self._realm_card(old):
            with self._locked(old.card_id):
                self._with_realms().reenroll(self._store.get(old.card_id), card, new_pin)
            return
        device_secret = bytearray(secrets.token_bytes(32))
        salt = secrets.token_bytes(16)
        with BlindedPin(card_id, new_pin) as blinded:
            begin = ReenrollBegin(card_id, secrets.token_bytes(16), self._millis(),
                                  blinded.blinded, b"")
            begin = dataclasses.replace(begin,
                                        signature=device_sign(old, begin.signed_bytes()))
            reply = self._server.reenroll_begin(begin)
            pin_seed = derive_pin_seed(blinded.finalize(reply.evaluated), salt=salt,
                                       device_secret=bytes(device_secret), card_id=card_id,
                                       profile=self.kdf)
        data_key = bytearray(secrets.token_bytes(KEY_LEN))
        record = card._to_record()
        device_share, server_share = split(data_key)
        # A new token: every copy of the device, which has the device key, is left
        # without one for the new versions (``possession``), so cannot claim them.
        token = bytearray(secrets.token_bytes(TOKEN_LEN))
        half = server_share + token
        try:
            sealed = seal(data_key, record, card_record_aad(card_id))
            finish = ReenrollFinish(
                card_id, reply.challenge_id,
                _sealed(old.server_key, public_key(pin_seed), "reenroll-verifier", card_id),
                seal_envelope(old.server_key, half,
                              ReenrollFinish.envelope_aad(card_id, reply.challenge_id)),
                b"", b"")
            signed = finish.signed_bytes(reply.nonce)
            finish = dataclasses.replace(
                finish, device_signature=device_sign(old, signed),
                pin_signature=_sealed(old.server_key, sign(pin_seed, signed), "reenroll-pin",
                                      card_id))
            self._server.reenroll_finish(finish)
            # At the version the server's new share has: above every copy's.
            self._store.replace(DeviceCard(
                card_id, card.brand, card.last4, card.expiry, sealed, bytes(device_share),
                old.sign_seed, bytes(device_secret), salt, self.kdf.value, old.server_key,
                old.security_phrase, share_version=reply.share_version,
                share_token=bytes(token), epoch_token=bytes(token)))
        finally:
            for buf in (data_key, record, device_share, server_share, device_secret,
                        pin_seed, token, half):
                wipe(buf)

    def card_state(self, card_id: str) -> CardState:
        """The card's PIN state as the server holds it (wrong PINs so far, the limit,
        locked), asked with this device's key for the card; spends no guess. Useful in
        a UI talking to a remote server, which cannot read the server's database."""
        card = self._store.get(card_id)
        if self._realm_card(card):
            return self._with_realms().state(card)
        request = CardStatusRequest(card.card_id, secrets.token_bytes(16), self._millis(),
                                    b"")
        request = dataclasses.replace(request,
                                      signature=device_sign(card, request.signed_bytes()))
        reply = self._server.card_status(request)
        return CardState(reply.guesses_used, reply.guess_limit, reply.locked, reply.cloned,
                         reply.share_version)

    def delete(self, card_id: str) -> None:
        """Destroy both shares: the server's first, then this device's. Gone for good.
        With realms: at every realm that answers, then here (a realm down keeps a share
        that nothing can ever open again without this device's part)."""
        card = self._store.get(card_id)
        if self._realm_card(card):
            self._with_realms().delete(card)
            return
        request = DeleteRequest(card.card_id, secrets.token_bytes(16), self._millis(), b"")
        request = dataclasses.replace(request,
                                      signature=device_sign(card, request.signed_bytes()))
        # UnknownCard: already gone on the server (an earlier delete crashed half-way).
        with contextlib.suppress(UnknownCard):
            self._server.delete(request)
        self._store.remove(card.card_id)

    def cancel_interrupted(self) -> int:
        """Cancel every enrollment this device began and never saw the server finish
        (a lost ``enroll_finish`` reply, a crash): the server deletes its half, pending
        or already active, with the card's device key, and then this device forgets
        its row. :meth:`open` runs it; returns how many were cancelled. Raises
        ``ServerUnavailable`` if the server cannot be reached (the rows stay)."""
        done = 0
        for card in self._store.pending():
            if is_realm_card(card):
                if self._realms is None:
                    continue  # opened without its deployment: left for the next open
                self._realms.cancel(card)
            else:
                if self._realms is not None:
                    continue  # a single server's card: left for a device opened with it
                self._cancel(card.card_id, card.sign_seed)
            done += 1
        return done

    # -- internals -----------------------------------------------------------------------

    def _cancel(self, card_id: str, sign_seed: bytes) -> None:
        """Delete a half-done enrollment on the server, then here."""
        request = DeleteRequest(card_id, secrets.token_bytes(16), self._millis(), b"")
        seed = bytearray(sign_seed)
        try:
            request = dataclasses.replace(request, signature=sign(seed, request.signed_bytes()))
        finally:
            wipe(seed)
        with contextlib.suppress(UnknownCard):  # never reached the server, or expired there
            self._server.delete(request)
        self._store.remove(card_id)

    def _millis(self) -> int:
        return int(self._clock() * 1000)

    def _realm_card(self, card: DeviceCard) -> bool:
        """Whether the card belongs to a t-of-n deployment; a card of the other kind
        than this device was opened with is refused with what to do."""
        realm = is_realm_card(card)
        if realm and self._realms is None:
            raise ConfigurationError("this card was enrolled with a realm deployment: open "
                                     "the device with server=sv.Deployment.load(...)")
        if not realm and self._realms is not None:
            raise ConfigurationError("this card was enrolled with a single share server: "
                                     "open the device with that server")
        return realm

    def _with_realms(self) -> RealmCards:
        if self._realms is None:  # _realm_card refused it first
            raise ConfigurationError("no realm deployment")
        return self._realms

    def _single_server_only(self, card_id: str, what: str) -> None:
        if self._realm_card(self._store.get(card_id)):
            raise ConfigurationError(
                f"{what} is not available yet for a card of a realm deployment; re-enroll "
                "it with the card and the new PIN (Device.reenroll)")

    def _prove_pin(self, card: DeviceCard, pin: Pin, *, next_secret: bytes | None = None
                   ) -> tuple[EvaluateReply, bytearray, DeviceCard]:
        """Run one OPRF evaluation (one counted guess); return the reply, which carries
        the proof's challenge, the PIN key seed for it, and the card as it stands
        after the reply (a staged re-split promoted or rolled back, one taken). The
        seed is right only if the PIN is. The request is single-use by its fresh nonce
        and time, so this is one round trip.

        The request presents the version of the share this device will use, signed:
        a staged share (version + 1) once the server confirms it commits it; a server
        that never made it (restored from a backup) is answered by going back to the
        current share, which it still has (``ServerRolledBack`` spends nothing)."""
        for _ in range(2):
            staged = card.next_share is not None
            presented = card.share_version + (1 if staged else 0)
            refresh_key = (b"" if card.refresh_secret is None
                           else envelope.public_key(card.refresh_secret))
            with BlindedPin(card.card_id, pin) as blinded:
                request = EvaluateRequest(card.card_id, secrets.token_bytes(16),
                                          self._millis(), blinded.blinded, b"", presented,
                                          refresh_key)
                request = dataclasses.replace(
                    request, signature=device_sign(card, request.signed_bytes()),
                    possession=possession(card, request))
                try:
                    reply = self._server.evaluate(request)
                except ServerRolledBack:
                    if staged and self._store.drop_staged(card.card_id, card.share_version):
                        card = self._store.get(card.card_id)
                        continue
                    raise
                pin_seed = derive_pin_seed(blinded.finalize(reply.evaluated), salt=card.salt,
                                           device_secret=card.device_secret,
                                           card_id=card.card_id,
                                           profile=KdfProfile.from_parameters(*card.kdf))
            try:
                return reply, pin_seed, self._after_evaluate(card, presented, reply,
                                                             next_secret)
            except BaseException:
                wipe(pin_seed)
                raise
        raise ServerRolledBack()  # not reached: the second pass has nothing staged

    def _after_evaluate(self, card: DeviceCard, presented: int, reply: EvaluateReply,
                        next_secret: bytes | None) -> DeviceCard:
        """Bring this device's share to the version the server's challenge is at (and
        keep ``next_secret`` as the refresh key, if a promotion writes anyway)."""
        if card.next_share is not None and reply.share_version == presented:
            # The server holds version + 1 now: the old share can go.
            promoted = self._store.promote_share(card.card_id, presented, next_secret,
                                                 None if next_secret is None
                                                 else reply.expires_at + FRESHNESS_SECONDS)
            card = promoted if promoted is not None else self._store.get(card.card_id)
        elif reply.refresh is not None:
            # Our reply with R was lost: here it is again. This payment still uses
            # the current share (the server has both until we show the new one).
            self._take_refresh(card, reply)
            card = self._store.get(card.card_id)
        if card.share_version != reply.share_version:
            raise ServerUnavailable("the share server answered for another version of this "
                                    "card's shares")
        return card


class _NoSingleServer:
    """The single-server transport of a device opened with a deployment: every call
    refused (``_realm_card`` routes each realm card before one could be made)."""

    def __getattr__(self, name: str) -> Any:
        raise ConfigurationError("this device talks to a realm deployment, not a single "
                                 "share server")


def possession(card: DeviceCard, request: EvaluateRequest) -> bytes:
    """The evaluation's proof (``_resplit``): that this device is of the card's current
    enrollment (its epoch token), and that it holds the share version it presents (that
    version's token: the staged one's for a staged version) and the refresh key's
    secret. Empty for a card enrolled before tokens."""
    if card.epoch_token is None:
        return b""
    staged = request.share_version == card.share_version + 1
    token = card.next_token if staged else card.share_token
    message = request.signed_bytes()
    dh = bytearray()
    try:
        if request.refresh_key and card.refresh_secret is not None:
            dh = envelope.x25519(card.refresh_secret, card.server_key)
        version = (bytes(32) if token is None
                   else possession_mac(token, dh if request.refresh_key else None, message))
        return epoch_mac(card.epoch_token, message) + version
    finally:
        wipe(dh)


def _sealed(server_key: bytes, value: bytes, kind: str, card_id: str) -> bytes:
    """A PIN verifier or PIN signature sealed to the server: never sent in the clear,
    so nothing the device sends or keeps can check a PIN guess offline (see
    ``_protocol.proof_aad``)."""
    return seal_envelope(server_key, value, proof_aad(kind, card_id))


def _check_pin(pin: object) -> None:
    if not isinstance(pin, Pin):
        raise InvalidPin("PIN must be a splitvault.Pin (use Pin.from_digits)")


def _check_phrase(phrase: object) -> str | None:
    if phrase is None:
        return None
    if (not isinstance(phrase, str) or not phrase.strip() or len(phrase.strip()) > MAX_PHRASE
            or not phrase.isprintable()):
        raise InvalidPhrase(f"security phrase must be 1 to {MAX_PHRASE} printable characters")
    return phrase.strip()
