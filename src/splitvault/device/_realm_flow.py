"""The device's side of a t-of-n deployment: enroll, pay, delete and ask a card's state.

The protocol is in ``_realm_protocol.py``; this file is its device half.

- **Enroll.** The device deals every secret (as Juicebox's clients do): the OPRF key
  ``k`` (the OPRF of the PIN under it computed here, then ``k`` wiped), its t-of-n shares,
  the data key, its own part ``D`` and the realms' shares of the rest. It stores the card
  *pending* with each realm's registration, sends them in parallel, and activates the
  card once ``t`` realms hold it; a realm that did not answer keeps its registration on
  the device (sealed to that realm) and is sent it again before every later call, until
  it confirms (catch-up). Fewer than ``t``: the realms that took it delete it, nothing
  stays, ``ServerUnavailable`` names the realms that did not answer.
- **Pay.** ``t`` realms are asked to evaluate (those not known to be down first; a
  realm that fails is replaced by a spare, in parallel). Every DLEQ proof is checked
  against the realm's public key share: a wrong evaluation names its realm
  (``RealmFaulty``), never "wrong PIN". The ``t`` evaluations combine into the OPRF
  output, the PIN key signs the payment for each of those realms, each realm releases
  its share sealed to the gateway, and the gateway gets them with ``D`` and the sealed
  card record, sealed to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable, Sequence

from .._authorization import Authorization
from .._card import Card
from .._card_state import CardState
from .._deployment import Endpoint
from .._errors import (
    CardLocked,
    RealmFaulty,
    ServerUnavailable,
    UnknownCard,
    VaultError,
    WrongPin,
)
from .._payment import Payment
from .._pin import Pin
from .._profiles import KdfProfile
from .._protocol import CardStatusRequest, DeleteRequest, card_id_for, card_record_aad
from .._realm_api import MAX_DELTAS, REALM_REGISTER
from .._realm_protocol import (
    TOKEN_LEN,
    GatewayAuthorize,
    GatewayReply,
    RealmCatchUp,
    RealmDelta,
    RealmEvaluate,
    RealmEvaluateReply,
    RealmMember,
    RealmRegister,
    RealmRelease,
    RealmReleaseReply,
    RealmService,
    RealmShare,
    gateway_envelope_aad,
    register_aad,
    release_proof_aad,
    share_commitment,
)
from .._realm_refresh import PART_LEN, REFRESH_PLAIN_LEN, open_device_refresh
from .._resplit import possession_mac
from .._wire import dumps, loads
from ..crypto import dleq, oprf, threshold
from ..crypto.envelope import generate_keypair, seal_envelope
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.sealing import seal
from ..crypto.shares import KEY_LEN
from ..crypto.signing import public_key, sign
from ..crypto.threshold_secret import refresh_device_part, split_data_key
from ._device_key import device_sign
from ._pinkey import BlindedPin, derive_pin_seed
from ._realms import RealmClient
from ._store import DeviceCard, DeviceStore, RealmPart

__all__ = ["RealmCards", "is_realm_card"]

REENROLL_STEP = 2
"""A re-enrollment starts this many versions above the card's: above any version a copy
of the device can present, which the realms then cut off (as ``server/_refresh.py``)."""

log = logging.getLogger("splitvault.realms")

_NO_SERVER_KEY = bytes(32)
"""A realm card's ``server_key`` column: it has no single server; its realms are in
``realm_parts`` (and nothing is ever sealed to this value: every path checks first).
No single server's key is this (the zero point is no X25519 public key), so it also
tells the two kinds of card apart without reading ``realm_parts``."""


def is_realm_card(card: DeviceCard) -> bool:
    """Whether ``card`` belongs to a t-of-n deployment (rather than a single server)."""
    return card.server_key == _NO_SERVER_KEY

Millis = Callable[[], int]


class RealmCards:
    """Cards of one deployment on one device. Gets the device's store, the realm
    client, the KDF profile for new cards and the device's clock (milliseconds)."""

    def __init__(self, store: DeviceStore, client: RealmClient, kdf: KdfProfile,
                 millis: Millis, clock: Callable[[], float]) -> None:
        self._store = store
        self._client = client
        self._kdf = kdf
        self._millis = millis
        self._clock = clock

    # -- enrollment ------------------------------------------------------------------

    def enroll(self, card: Card, pin: Pin, phrase: str | None) -> str:
        sign_seed = bytearray(secrets.token_bytes(32))
        try:
            pending, parts = self._deal(card, pin, phrase, sign_seed, 0)
        finally:
            wipe(sign_seed)
        card_id = pending.card_id
        t = self._client.threshold
        # Pending first, with every registration: a crash from here on leaves a row the
        # next open cancels at the realms, never a card whose part was lost.
        self._store.add_realm_card(pending, parts, self._clock())
        registered = self._register(card_id, parts)
        if len(registered) < t:
            missing = [self._client.name(p.realm_key) for p in parts
                       if p.realm_key not in registered]
            with contextlib.suppress(VaultError):
                self.cancel(pending)
            raise ServerUnavailable(
                f"only {len(registered)} of the {t} realms a card needs took it; no answer "
                f"from {', '.join(missing)}. Nothing was kept; enroll again later")
        self._store.activate(card_id)
        return card_id

    def reenroll(self, old: DeviceCard, card: Card, pin: Pin) -> None:
        """Enroll the card again under ``pin`` with the same device key, at a version
        above every copy's: new OPRF key, data key, part, shares and token. Stored here
        first, with a registration per realm; a realm that does not answer now is sent
        its registration later (until then the card pays with the others)."""
        seed = bytearray(old.sign_seed)
        try:
            fresh, parts = self._deal(card, pin, old.security_phrase, seed,
                                      old.share_version + REENROLL_STEP)
        finally:
            wipe(seed)
        self._store.replace_realm_card(fresh, parts)
        registered = self._register(old.card_id, parts)
        t = self._client.threshold
        if len(registered) < t:
            missing = [self._client.name(p.realm_key) for p in parts
                       if p.realm_key not in registered]
            raise ServerUnavailable(
                f"re-enrolled at {len(registered)} of the {t} realms a payment needs; no "
                f"answer from {', '.join(missing)}. It completes when they answer (the "
                "device keeps their registrations)")

    def _deal(self, card: Card, pin: Pin, phrase: str | None, sign_seed: bytearray,
              version: int) -> tuple[DeviceCard, list[RealmPart]]:
        """Every secret of one enrollment at ``version``: the OPRF key (evaluated here
        on the PIN, split, wiped), the data key (split into this device's part and the
        realms' shares), the sealed card, the first token; each realm's registration."""
        deployment = self._client.deployment
        t, n = deployment.threshold, len(deployment.realms)
        device_key = public_key(sign_seed)
        card_id = card_id_for(device_key)
        device_secret = bytearray(secrets.token_bytes(32))
        salt = secrets.token_bytes(16)
        buffers: list[bytearray] = [device_secret]
        key_shares: list[threshold.Share] = []
        sigma_shares: list[threshold.Share] = []
        try:
            k = oprf.generate_key()
            buffers.append(k)
            with BlindedPin(card_id, pin) as blinded:
                # The dealer evaluates its own key: the OPRF of the PIN under k, exactly
                # what t realms' shares of k will give back later.
                output = blinded.finalize(oprf.blind_evaluate(k, blinded.blinded))
            pin_seed = derive_pin_seed(output, salt=salt, device_secret=bytes(device_secret),
                                       card_id=card_id, profile=self._kdf)
            buffers += [output, pin_seed]
            verifier = public_key(pin_seed)
            key_shares = threshold.split_key(k, t, n)
            wipe(k)
            data_key = bytearray(secrets.token_bytes(KEY_LEN))
            record = card._to_record()
            buffers += [data_key, record]
            part, sigma_shares = split_data_key(data_key, t, n)
            buffers.append(part)
            sealed = seal(data_key, record, card_record_aad(card_id))
            token = bytearray(secrets.token_bytes(TOKEN_LEN))  # the first version's
            buffers.append(token)
            parts: list[RealmPart] = []
            for realm, k_i, sigma_i in zip(deployment.realms, key_shares, sigma_shares,
                                           strict=True):
                plain = bytearray(k_i.value + sigma_i.value + verifier + token)
                buffers.append(plain)
                request = RealmRegister(card_id, device_key, seal_envelope(
                    realm.key, plain, register_aad(card_id, realm.key, version)), b"", version)
                request = dataclasses.replace(
                    request, signature=sign(sign_seed, request.signed_bytes(realm.key)))
                parts.append(RealmPart(realm.key, k_i.index,
                                       threshold.public_key_share(k_i),
                                       share_commitment(card_id, realm.key, sigma_i.value),
                                       dumps(REALM_REGISTER, request), version))
            return DeviceCard(card_id, card.brand, card.last4, card.expiry, sealed,
                              bytes(part), bytes(sign_seed), bytes(device_secret), salt,
                              self._kdf.value, _NO_SERVER_KEY, phrase, share_version=version,
                              share_token=bytes(token)), parts
        finally:
            for share in (*key_shares, *sigma_shares):
                share.wipe()
            wipe(*buffers)

    def _register(self, card_id: str, parts: Sequence[RealmPart]) -> set[bytes]:
        """Send the registrations still unconfirmed; the realms that confirmed."""
        todo = {p.realm_key: p for p in parts if p.registration is not None}

        def send(key: bytes, realm: RealmService) -> None:
            registration = todo[key].registration
            if registration is not None:
                realm.realm_register(loads(REALM_REGISTER, registration))

        done = {p.realm_key for p in parts if p.registration is None}
        for key, result in self._client.fan_out(list(todo), send).items():
            if not isinstance(result, BaseException):
                self._store.realm_registered(card_id, key)
                done.add(key)
        return done

    def catch_up(self) -> int:
        """Send every registration a realm has not confirmed (it was down when its card
        was enrolled); returns how many realms took theirs now."""
        taken = 0
        by_card: dict[str, list[RealmPart]] = {}
        for card_id, part in self._store.unregistered():
            by_card.setdefault(card_id, []).append(part)
        for card_id, parts in by_card.items():
            before = sum(p.registration is None for p in parts)
            taken += len(self._register(card_id, parts)) - before
        return taken

    def cancel(self, card: DeviceCard) -> None:
        """Delete a half-done enrollment at every realm, then here."""
        self._delete_everywhere(card)
        self._store.remove(card.card_id)

    # -- payments ----------------------------------------------------------------------

    def authorize(self, card: DeviceCard, pin: Pin, payment: Payment) -> Authorization:
        parts = {p.realm_key: p for p in self._store.realm_parts(card.card_id)}
        if any(p.registration is not None for p in parts.values()):
            self._register(card.card_id, list(parts.values()))  # catch a realm up first
            parts = {p.realm_key: p for p in self._store.realm_parts(card.card_id)}
        usable = [k for k, p in parts.items()
                  if p.registration is None and self._client.deployment.realm(k) is not None]
        gateway = self._client.gateways()[0][0]
        with BlindedPin(card.card_id, pin) as blinded:
            replies = self._evaluations(card, parts, usable, blinded.blinded)
            combined = threshold.combine({parts[k].index: r.evaluated
                                          for k, r in replies.items()})
            output = blinded.finalize(combined)
        pin_seed = derive_pin_seed(output, salt=card.salt, device_secret=card.device_secret,
                                   card_id=card.card_id,
                                   profile=KdfProfile.from_parameters(*card.kdf))
        wipe(output)
        try:
            released = self._releases(card, replies, payment, gateway.key, pin_seed)
        finally:
            wipe(pin_seed)
        shares = tuple(RealmShare(parts[k].index, k, r.sealed_share, parts[k].commitment,
                                  int(replies[k].expires_at * 1000))
                       for k, r in released.items())
        # The key this payment's re-split comes sealed to: in memory only. A reply that
        # never arrives made no delta any realm has, so nothing waits for this key.
        refresh_secret, refresh_key = generate_keypair()
        try:
            floors = {r.share_floor for r in replies.values()}
            if len(floors) != 1:
                raise ServerUnavailable("the realms answered for different enrollments of "
                                        "this card; re-enroll it")
            reply = self._pay(card, payment, gateway, shares, parts, refresh_key,
                              floors.pop())
            self._take_resplit(card, reply, refresh_secret, set(parts))
        finally:
            wipe(refresh_secret)
        return reply.authorization

    def _pay(self, card: DeviceCard, payment: Payment, gateway: Endpoint,
             shares: tuple[RealmShare, ...], parts: dict[bytes, RealmPart],
             refresh_key: bytes, floor: int) -> GatewayReply:
        request = GatewayAuthorize(
            card.card_id, public_key(card.sign_seed), payment.amount, payment.currency,
            payment.merchant, payment.idempotency_key,
            seal_envelope(gateway.key, card.device_share + card.sealed_record,
                          gateway_envelope_aad(card.card_id, gateway.key,
                                               payment.idempotency_key)),
            shares, b"", card.share_version, refresh_key,
            tuple(RealmMember(p.index, k) for k, p in sorted(parts.items(),
                                                             key=lambda kv: kv[1].index)),
            secrets.token_bytes(16), self._millis(), floor)
        request = dataclasses.replace(
            request, signature=device_sign(card, request.signed_bytes(gateway.key)))
        # A gateway answers a key from its ledger: sending the same request again after
        # a lost reply never charges twice (the HTTP client does, once), and neither
        # does sending it to another gateway of the same store (same key, same ledger).
        error: ServerUnavailable | None = None
        for endpoint, other in self._client.gateways():
            if endpoint.key != gateway.key:
                continue
            try:
                result = other.gateway_authorize(request)
            except ServerUnavailable as exc:
                self._client.mark_gateway(endpoint, False)
                error = exc
                continue
            self._client.mark_gateway(endpoint, True)
            return result
        raise error or ServerUnavailable("no gateway of the deployment answered")

    def _take_resplit(self, card: DeviceCard, reply: GatewayReply,
                      refresh_secret: bytearray, keys: set[bytes]) -> None:
        """Take an approval's re-split: ``D - rho`` and the new token at the new
        version, with each realm's delta to carry and its new commitment, in one write.
        One that does not open (or is for another version) is dropped: no realm has a
        delta the device never took, so the old version goes on working.

        ``keys``: the card's realms as ``authorize`` read them, under the card's lock
        (``Device.authorize``), instead of a second ``realm_parts`` query per payment:
        only a re-enrollment changes that set, it takes the same lock, and the write
        below is a compare-and-set on the version, which a re-enrollment moves."""
        if reply.refresh is None or reply.share_version != card.share_version + 1:
            return
        deltas = [(d.realm_key, d.gateway_key, d.sealed) for d in reply.deltas
                  if d.version == reply.share_version and d.realm_key in keys]
        commitments = {c.realm_key: c.commitment for c in reply.commitments
                       if c.realm_key in keys}
        if len(deltas) != len(keys) or len(commitments) != len(keys):
            return
        try:
            plain = open_device_refresh(refresh_secret, card.card_id, reply.share_version,
                                        reply.refresh)
        except AuthenticationFailed:
            return
        nxt = bytearray()
        try:
            if len(plain) != REFRESH_PLAIN_LEN:
                return
            nxt = refresh_device_part(card.device_share, plain[:PART_LEN])
            self._store.realm_resplit(card.card_id, card.share_version, bytes(nxt),
                                      bytes(plain[PART_LEN:]), deltas, commitments,
                                      self._clock())
        except ValueError:  # a ThresholdError: not two canonical scalars
            return
        finally:
            wipe(plain, nxt)

    def _evaluations(self, card: DeviceCard, parts: dict[bytes, RealmPart],
                     usable: Sequence[bytes],
                     blinded: bytes) -> dict[bytes, RealmEvaluateReply]:
        """``t`` verified evaluations, asking spares in parallel for any that failed."""
        t = self._client.threshold
        good: dict[bytes, RealmEvaluateReply] = {}
        failed: dict[bytes, BaseException] = {}
        self._enough_up(usable, t)
        # Among equals, the realms furthest behind first: every realm takes part in
        # turn, so none collects steps to carry while the others serve.
        queue = self._client.order(usable, card.card_id,
                                   {k: card.share_version - parts[k].version for k in usable})

        def ask(key: bytes, realm: RealmService) -> RealmEvaluateReply:
            steps = self._carry(card, key, realm)
            request = RealmEvaluate(card.card_id, secrets.token_bytes(16), self._millis(),
                                    blinded, b"", card.share_version, steps)
            signed = request.signed_bytes(key)
            request = dataclasses.replace(
                request, signature=device_sign(card, signed),
                possession=possession_mac(card.share_token or b"", None, signed))
            reply = realm.realm_evaluate(request)
            if reply.share_version != card.share_version:
                raise ServerUnavailable(f"realm {self._client.name(key)} answered for another "
                                        "version of this card's shares")
            self._store.realm_seen(card.card_id, key, reply.share_version)
            self._client.note_left(card.card_id, key, reply.attempts_left)
            return reply

        while len(good) < t and queue:
            batch, queue = queue[:t - len(good)], queue[t - len(good):]
            for key, result in self._client.fan_out(batch, ask).items():
                if isinstance(result, BaseException):
                    failed[key] = result
                elif not dleq.verify_proof(parts[key].public_share, [blinded],
                                           [result.evaluated], result.proof):
                    failed[key] = RealmFaulty((self._client.name(key),))
                else:
                    good[key] = result
        for key, error in failed.items():
            if isinstance(error, RealmFaulty):
                # Paid with spares, but never silently: the realm's operator must know.
                log.warning("realm %s returned an evaluation whose proof fails against its "
                            "key share", self._client.name(key))
        if len(good) < t:
            raise self._short(failed, t, len(good))
        return good

    def _carry(self, card: DeviceCard, key: bytes,
               realm: RealmService) -> tuple[RealmDelta, ...]:
        """The steps an evaluation at this realm carries: all it lacks, after bringing a
        realm that lacks more than one request holds up by ``realm_catch_up`` requests
        (a realm that was down for many payments)."""
        while True:
            steps = tuple(RealmDelta(key, version, gateway, sealed)
                          for version, gateway, sealed
                          in self._store.realm_deltas(card.card_id, key))
            if len(steps) <= MAX_DELTAS:
                return steps
            request = RealmCatchUp(card.card_id, secrets.token_bytes(16), self._millis(),
                                   steps[:MAX_DELTAS], b"")
            request = dataclasses.replace(
                request, signature=device_sign(card, request.signed_bytes(key)))
            reached = realm.realm_catch_up(request).share_version
            if reached <= steps[0].version - 1:
                raise ServerUnavailable(f"realm {self._client.name(key)} did not take the "
                                        "re-split steps it lacks")
            self._store.realm_seen(card.card_id, key, reached)

    def _enough_up(self, usable: Sequence[bytes], t: int) -> None:
        """Spend no guess when the payment cannot be served: with fewer than ``t`` realms
        not known to be down, those are asked for their info first (free), and if still
        fewer than ``t`` answer, ``ServerUnavailable`` names the others."""
        up = [k for k in usable if not self._client.is_down(k)]
        if len(up) >= t:
            return
        down = [k for k in usable if k not in up]
        answered = self._client.fan_out(down, lambda key, realm: realm.realm_info())
        up += [k for k, r in answered.items() if not isinstance(r, BaseException)]
        if len(up) < t:
            names = ", ".join(self._client.name(k) for k in usable if k not in up)
            raise ServerUnavailable(f"{len(up)} of the {t} realms a payment needs answer; "
                                    f"no answer from {names}. No guess was spent and "
                                    "nothing was charged")

    def _releases(self, card: DeviceCard, replies: dict[bytes, RealmEvaluateReply],
                  payment: Payment, gateway_key: bytes,
                  pin_seed: bytearray) -> dict[bytes, RealmReleaseReply]:
        def release(key: bytes, realm: RealmService) -> RealmReleaseReply:
            reply = replies[key]
            request = RealmRelease(card.card_id, reply.challenge_id, payment.amount,
                                   payment.currency, payment.merchant,
                                   payment.idempotency_key, gateway_key, b"")
            signature = sign(pin_seed, request.signed_bytes(key, reply.nonce))
            request = dataclasses.replace(request, pin_signature=seal_envelope(
                key, signature, release_proof_aad(card.card_id, key)))
            return realm.realm_release(request)

        results = self._client.fan_out(list(replies), release)
        wrong = [r for r in results.values() if isinstance(r, WrongPin)]
        if wrong:
            raise WrongPin(min(w.attempts_left for w in wrong))
        failed = {k: r for k, r in results.items() if isinstance(r, BaseException)}
        if failed:
            # Nothing was charged: the gateway was not asked. A retry starts afresh.
            raise self._short(failed, self._client.threshold,
                              len(results) - len(failed))
        return {k: r for k, r in results.items() if not isinstance(r, BaseException)}

    def _short(self, failed: dict[bytes, BaseException], t: int, good: int) -> VaultError:
        """The error for fewer than ``t`` realms: a faulty realm named as such, a lock
        as a lock, else ``ServerUnavailable`` naming the realms that did not answer."""
        faulty = tuple(self._client.name(k) for k, e in failed.items()
                       if isinstance(e, RealmFaulty))
        if faulty:
            return RealmFaulty(faulty)
        locked = [e for e in failed.values() if isinstance(e, CardLocked)]
        if locked:
            return CardLocked()
        for error in failed.values():
            if isinstance(error, VaultError) and not isinstance(error, ServerUnavailable):
                return error  # the realms' own answer (unknown card, a bad request)
        names = ", ".join(self._client.name(k) for k in failed) or "none"
        return ServerUnavailable(f"{good} of the {t} realms a payment needs answered; no "
                                 f"answer from {names}. Nothing was charged")

    def check(self) -> None:
        """Ask every realm and gateway for its key: ``ServerUnavailable`` naming the
        realms that did not answer if fewer than ``t`` did, or if no gateway did; a
        realm answering with another key than the deployment's is ``RealmFaulty``."""
        deployment = self._client.deployment
        results = self._client.fan_out([r.key for r in deployment.realms],
                                       lambda key, realm: realm.realm_info())
        wrong = tuple(self._client.name(k) for k, r in results.items()
                      if not isinstance(r, BaseException) and r.realm_key != k)
        if wrong:
            raise RealmFaulty(wrong, f"realm(s) {', '.join(wrong)} answer with another key "
                              "than the deployment file's")
        failed = {k: r for k, r in results.items() if isinstance(r, BaseException)}
        if len(results) - len(failed) < deployment.threshold:
            raise self._short(failed, deployment.threshold, len(results) - len(failed))
        for endpoint, gateway in self._client.gateways():
            try:
                info = gateway.gateway_info()
            except ServerUnavailable:
                self._client.mark_gateway(endpoint, False)
                continue
            if info.gateway_key != endpoint.key:
                raise RealmFaulty((endpoint.name,), f"gateway {endpoint.name} answers with "
                                  "another key than the deployment file's")
            return
        raise ServerUnavailable("no gateway of the deployment answered")

    # -- the card's life ---------------------------------------------------------------

    def delete(self, card: DeviceCard) -> None:
        """Delete the card at every realm that answers, then here. A realm down keeps
        its share, which without this device's part (gone with it) opens nothing."""
        self._delete_everywhere(card)
        self._store.remove(card.card_id)

    def _delete_everywhere(self, card: DeviceCard) -> None:
        request = DeleteRequest(card.card_id, secrets.token_bytes(16), self._millis(), b"")
        request = dataclasses.replace(request,
                                      signature=device_sign(card, request.signed_bytes()))
        keys = [p.realm_key for p in self._store.realm_parts(card.card_id)
                if self._client.deployment.realm(p.realm_key) is not None]

        def delete(key: bytes, realm: RealmService) -> None:
            with contextlib.suppress(UnknownCard):
                realm.delete(request)

        self._client.fan_out(keys, delete)

    def state(self, card: DeviceCard) -> CardState:
        """The card's PIN state across its realms: PIN attempts left is what the
        realms that answered still allow, ``t`` evaluations per attempt."""
        request = CardStatusRequest(card.card_id, secrets.token_bytes(16), self._millis(),
                                    b"")
        request = dataclasses.replace(request,
                                      signature=device_sign(card, request.signed_bytes()))
        keys = [p.realm_key for p in self._store.realm_parts(card.card_id)]
        t = self._client.threshold
        results = self._client.fan_out(keys, lambda key, realm: realm.realm_status(request))
        replies = [r for r in results.values() if not isinstance(r, BaseException)]
        if len(replies) < t:
            raise self._short({k: r for k, r in results.items()
                               if isinstance(r, BaseException)}, t, len(replies))
        limit = (len(keys) * replies[0].guess_limit) // t
        left = sum(max(r.guess_limit - r.guesses_used, 0)
                   for r in replies if not r.locked) // t
        open_realms = sum(not r.locked and r.guesses_used < r.guess_limit for r in replies)
        cloned = any(r.cloned for r in replies)
        return CardState(max(limit - left, 0), limit, open_realms < t or cloned, cloned,
                         card.share_version)
