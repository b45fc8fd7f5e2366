"""The gateway of a t-of-n deployment: recombines one payment's key in memory and pays.

It holds no share and no card: its store has the exactly-once ledger (with the lease of
``_charges.py``, so several gateways over one replicated store act as one), its own keys
and its audit log. Per payment it receives, from the device:

- the device's part ``D`` and the sealed card record, sealed to the gateway and bound to
  the card and the idempotency key;
- ``t`` realms' shares ``Sigma_i``, each sealed by its realm to this gateway and bound to
  this payment (``_realm_protocol.share_aad``): a realm releases one only after the PIN
  proof for exactly this amount, merchant and key verified there.

The order: shape and the device key's signature (no state touched); the ledger (a key
recorded already is answered from it, the card never opened); then the shares opened,
each checked against the device's commitment (a realm whose share does not match is
named: ``RealmFaulty``), the key recombined, the card opened, the pending row written
with this worker's lease, the acquirer called once, the outcome recorded, and every
buffer wiped. Fraud rules (``RiskRules``) are the single server's only for now.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from .._authorization import Authorization
from .._card import Card
from .._deployment import Deployment
from .._errors import (
    ConfigurationError,
    InvalidChallenge,
    MalformedRequest,
    RealmFaulty,
    TamperedData,
)
from .._payment import Payment, validate_payment
from .._protocol import FRESHNESS_SECONDS, card_id_for, card_record_aad
from .._realm_protocol import (
    SIGMA_LEN,
    TOKEN_LEN,
    GatewayAuthorize,
    GatewayInfo,
    GatewayReply,
    RealmCommitment,
    RealmDelta,
    RealmMember,
    gateway_envelope_aad,
    share_aad,
    share_commitment,
)
from .._realm_refresh import seal_delta, seal_device_refresh
from ..crypto.envelope import open_envelope
from ..crypto.errors import AuthenticationFailed, DecodeError
from ..crypto.memory import wipe
from ..crypto.sealing import open_sealed
from ..crypto.threshold import Share, add_shares, share_at
from ..crypto.threshold_secret import PART_LEN, deal_refresh, recover_data_key
from ._charges import Charges
from ._checks import check_bytes, check_id, check_version
from ._guesses import check_fresh
from ._keys import ServerKeys
from ._ledger import Ledger
from ._signatures import check_signature
from ._store import RETRYABLE, LedgerEntry, Store

__all__ = ["Gateway"]



class Gateway:
    """The gateway role. Gets the store (its ledger), this server's keys, the ledger's
    digests, the charge flow, a clock and how to read its deployment (which realms'
    shares it accepts, and how many it needs)."""

    def __init__(self, store: Store, keys: ServerKeys, ledger: Ledger, charges: Charges,
                 clock: Callable[[], float],
                 deployment: Callable[[], Deployment | None]) -> None:
        self._store = store
        self._keys = keys
        self._ledger = ledger
        self._charges = charges
        self._clock = clock
        self._deployment = deployment

    @property
    def key(self) -> bytes:
        return self._keys.x25519_public

    def info(self) -> GatewayInfo:
        return GatewayInfo(self.key)

    def authorize(self, request: GatewayAuthorize) -> GatewayReply:
        card_id = check_id(request.card_id, "card id")
        device_key = check_bytes(request.device_key, "device key", 32)
        if not hmac.compare_digest(card_id, card_id_for(device_key)):
            raise MalformedRequest("card id is not the one its device key names")
        payment = validate_payment(request.amount, request.currency, request.merchant,
                                   request.idempotency_key)
        check_bytes(request.envelope, "envelope")
        refresh_key = check_bytes(request.refresh_key, "refresh key", 32)
        version = request.share_version
        check_version(version, top=2**53 - 1)
        check_version(request.share_floor)
        check_signature(device_key, request.signed_bytes(self.key), request.signature)
        deployment = self._deployment()
        if deployment is None:
            raise ConfigurationError("this gateway has no deployment file, so it knows no "
                                     "realm (start it with --deployment)")
        self._check_shares(request, deployment)
        members = self._check_members(request, deployment)
        ledger = self._ledger
        key = ledger.key_digest(card_id, payment.idempotency_key)
        params = ledger.params_digest(card_id, payment.idempotency_key, payment.amount,
                                      payment.currency, payment.merchant)
        entry = self._store.ledger_entry(key)
        if entry is not None and (entry.state not in RETRYABLE
                                  or not ledger.same_params(entry, params)):
            # Recorded (or being charged) already: answered from the ledger, and the
            # card is not opened again (so no re-split: the device keeps its version).
            return GatewayReply(self._charges.recorded(key, params, entry), version)
        # About to charge: only a fresh request, and only once. A copy replayed later
        # (after a payment that took no money) must not charge without a new PIN proof.
        nonce, nonce_expires = check_fresh(request.nonce, request.timestamp, self._clock())
        self._check_fresh_shares(request)
        if not self._store.use_nonce(nonce, nonce_expires):
            return GatewayReply(self._answered(key, params), version)
        card, opened = self._open(request, payment, deployment)
        try:
            result, charged = self._pay(card_id, card, payment, key, params, entry)
            if not (charged and result.approved):
                return GatewayReply(result, version)
            # Approved by this call: the shares are re-split while they are open here.
            return self._resplit(request, deployment, members, opened, result, refresh_key)
        finally:
            del card  # the acquirer's copy is the last; see threat_model.md
            for share in opened:
                share.wipe()

    def _answered(self, key: bytes, params: bytes) -> Authorization:
        """A request whose nonce was taken: the same request at another gateway, or one
        that failed after taking it. Its answer if one is recorded (or being charged:
        then ``recorded`` waits on that lease); else refused at once. Never a wait of its
        own: a stranger replaying a request of a throwaway card must not hold a worker
        (second security review)."""
        entry = self._store.ledger_entry(key)
        if entry is not None and entry.state not in RETRYABLE:
            return self._charges.recorded(key, params, entry)
        raise InvalidChallenge("this payment request was used before; pay again")

    def _pay(self, card_id: str, card: Card, payment: Payment, key: bytes, params: bytes,
             entry: LedgerEntry | None) -> tuple[Authorization, bool]:
        """The payment's result, and whether this call charged it (rather than read it
        from the ledger)."""
        charges, ledger = self._charges, self._ledger
        if entry is None:
            start = charges.start(card_id, card, payment, key, params, 0)
            found = self._store.begin_payment(start, self._clock())
            if found is None:
                return charges.charge(card_id, card, payment, start, None), True
            entry = found
            if entry.state not in RETRYABLE or not ledger.same_params(entry, params):
                return charges.recorded(key, params, entry), False
        # Settled without taking money: this retry charges it once, under the next
        # attempt's reference. Of concurrent retries one wins the row.
        charged = charges.retry(card_id, card, payment, key, params, entry, None)
        if charged is not None:
            return charged, True
        latest = self._store.ledger_entry(key)
        if latest is None:
            raise TamperedData()  # a row never disappears; not reached
        return charges.recorded(key, params, latest), False

    @staticmethod
    def _check_members(request: GatewayAuthorize,
                       deployment: Deployment) -> tuple[RealmMember, ...]:
        members = request.members
        if not isinstance(members, tuple) or len(members) != len(deployment.realms):
            raise MalformedRequest("the request must name each realm of the deployment once")
        if (any(not 1 <= m.index <= len(deployment.realms) for m in members)
                or len({m.index for m in members}) != len(members)
                or {m.realm_key for m in members} != {r.key for r in deployment.realms}):
            raise MalformedRequest("the request must name each realm of the deployment once")
        by_key = {m.realm_key: m.index for m in members}
        if any(by_key.get(s.realm_key) != s.index for s in request.shares):
            raise MalformedRequest("a share's index is not its realm's")
        return members

    def _resplit(self, request: GatewayAuthorize, deployment: Deployment,
                 members: tuple[RealmMember, ...], opened: list[Share],
                 result: Authorization, refresh_key: bytes) -> GatewayReply:
        """Deal the next version (``_realm_refresh``): ``rho || T`` for the device, a
        delta per realm, and every realm's next commitment (its share interpolated from
        the t open ones, plus its part of rho)."""
        card_id, version = request.card_id, request.share_version + 1
        t, n = deployment.threshold, len(members)
        fresh = deal_refresh(t, n)
        token = bytearray(secrets.token_bytes(TOKEN_LEN))
        buffers: list[bytearray] = [token]
        try:
            plain = bytearray(fresh.device_delta + token)
            buffers.append(plain)
            refresh = seal_device_refresh(refresh_key, card_id, version, plain)
            deltas, commitments = [], []
            by_index = {s.index: s for s in opened}
            for member in members:
                rho = fresh.share_deltas[member.index - 1]
                now_share = by_index.get(member.index) or share_at(opened, t, member.index)
                nxt = add_shares(now_share, rho)
                buffers.append(nxt.value)
                if member.index not in by_index:
                    buffers.append(now_share.value)
                step = bytearray(rho.value + token)
                buffers.append(step)
                deltas.append(RealmDelta(member.realm_key, version, self.key, seal_delta(
                    self._keys.x25519_secret, self.key, member.realm_key, card_id, version,
                    step, floor=request.share_floor)))
                commitments.append(RealmCommitment(member.realm_key, share_commitment(
                    card_id, member.realm_key, nxt.value)))
            return GatewayReply(result, version, refresh, tuple(deltas), tuple(commitments))
        finally:
            fresh.wipe()
            wipe(*buffers)

    @staticmethod
    def _check_shares(request: GatewayAuthorize, deployment: Deployment) -> None:
        shares = request.shares
        if not isinstance(shares, tuple):
            raise MalformedRequest("malformed shares")
        indices = [s.index for s in shares]
        keys = [s.realm_key for s in shares]
        if len(set(indices)) != len(indices) or len(set(keys)) != len(keys):
            raise MalformedRequest("two shares of one realm")
        if len(shares) < deployment.threshold:
            raise MalformedRequest(f"a payment needs the shares of {deployment.threshold} "
                                   f"realms, not {len(shares)}")
        for share in shares:
            if deployment.realm(share.realm_key) is None:
                raise MalformedRequest("a share comes from a realm not in this deployment")

    def _check_fresh_shares(self, request: GatewayAuthorize) -> None:
        """Shares are good until their realm challenge ends (bound in their seal): ones
        captured and sent again later are refused. The end is on the realm's clock, and
        realm and gateway may each be FRESHNESS_SECONDS from the devices' clocks, so
        twice that is allowed (third security review)."""
        now_ms = self._clock() * 1000
        for share in request.shares:
            check_version(share.expires_at)  # a Unix-ms count, same bounds
            if share.expires_at + 2 * FRESHNESS_SECONDS * 1000 < now_ms:
                raise InvalidChallenge("the realms' answers for this payment have expired; "
                                       "pay again")

    def _open(self, request: GatewayAuthorize, payment: Payment,
              deployment: Deployment) -> tuple[Card, list[Share]]:
        """The card, opened with the device's part and the realms' shares (all in memory,
        all wiped but the shares, which the caller wipes after the re-split), or
        ``TamperedData`` / ``RealmFaulty``."""
        card_id = request.card_id
        buffers: list[bytearray] = []
        opened: list[Share] = []
        faulty: list[str] = []
        try:
            try:
                plain = open_envelope(self._keys.x25519_secret, request.envelope,
                                      gateway_envelope_aad(card_id, self.key,
                                                           payment.idempotency_key),
                                      public=self.key)
            except AuthenticationFailed:
                raise TamperedData() from None
            buffers.append(plain)
            if len(plain) <= PART_LEN:
                raise TamperedData()
            part = bytearray(plain[:PART_LEN])
            buffers.append(part)
            for share in request.shares:
                realm = deployment.realm(share.realm_key)
                name = realm.name if realm is not None else share.realm_key.hex()[:16]
                try:
                    sigma = open_envelope(
                        self._keys.x25519_secret, share.sealed,
                        share_aad(card_id, share.realm_key, self.key, request.share_version,
                                  payment.amount, payment.currency, payment.merchant,
                                  payment.idempotency_key, floor=request.share_floor,
                                  expires=share.expires_at),
                        public=self.key)
                except AuthenticationFailed:
                    # Sealed for another payment, card or gateway: replayed or tampered
                    # on the way, not a realm's wrong share.
                    raise TamperedData() from None
                buffers.append(sigma)
                if len(sigma) != SIGMA_LEN or not hmac.compare_digest(
                        share_commitment(card_id, share.realm_key, sigma), share.commitment):
                    faulty.append(name)
                    continue
                opened.append(Share(share.index, bytearray(sigma)))
            if faulty:
                raise RealmFaulty(tuple(faulty))
            try:
                data_key = recover_data_key(part, opened, deployment.threshold)
            except (DecodeError, ValueError):
                raise TamperedData() from None
            buffers.append(data_key)
            try:
                record = open_sealed(data_key, bytes(plain[PART_LEN:]),
                                     card_record_aad(card_id))
            except AuthenticationFailed:
                raise TamperedData() from None
            buffers.append(record)
            card = Card._from_record(record)
        except BaseException:
            for each in opened:
                each.wipe()
            raise
        finally:
            wipe(*buffers)
        return card, opened
