"""Realms and gateways (t-of-n share servers): their messages and the exact bytes each
signature, seal and commitment covers.

The single server (``_protocol.py``) holds one share of every card's key and evaluates
the PIN's OPRF under one key. A deployment of realms spreads both over ``n`` realms, any
``t`` of which serve a payment, and hands the payment itself to a gateway:

- **Enrollment** (device -> every realm, :class:`RealmRegister`). The device deals the
  card's secrets, as Juicebox's clients do at registration: it draws the OPRF key ``k``,
  computes the OPRF of the PIN under it locally, derives the PIN key and its verifier,
  Shamir-shares ``k`` (``crypto.threshold.split_key``) and the realms' side ``Sigma`` of
  the data key (``crypto.threshold_secret.split_data_key``), seals realm ``i``'s pair
  ``k_i || Sigma_i`` and the verifier to that realm's key, and then forgets ``k``. It
  keeps its own part ``D``, each realm's public key share ``k_i * G`` and a commitment
  to each ``Sigma_i``.
- **Evaluation** (device -> t realms, :class:`RealmEvaluate`). Signed by the device key
  and bound to the realm's key, so a request for one realm spends nothing at another.
  Each realm counts a guess durably, then answers ``k_i * B`` with an RFC 9497 DLEQ
  proof against ``k_i * G`` and a single-use challenge. The device checks every proof
  (a wrong evaluation names its realm), combines the ``t`` evaluations by Lagrange
  interpolation in the exponent and derives the PIN key.
- **Release** (device -> the same t realms, :class:`RealmRelease`). The PIN key signs
  the payment (amount, currency, merchant, idempotency key), the realm's challenge and
  the gateway's key; the signature travels sealed to the realm. A realm whose check
  passes seals ``Sigma_i`` to the gateway, bound to this payment (:func:`share_aad`),
  and only to a gateway of its deployment file.
- **Payment** (device -> a gateway, :class:`GatewayAuthorize`). The device's part and
  the sealed card record go sealed to the gateway, with the t sealed shares. The
  gateway owns the exactly-once ledger, opens the shares, recombines the data key in
  memory for this call, opens the card, calls the acquirer and wipes. It stores no
  share; the realms never see the card.

Encodings are ``crypto.encoding.encode`` (length-prefixed, domain-tagged) like every
other signed message, and ``tests/vectors/protocol.json`` pins them byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from ._authorization import Authorization
from ._protocol import SEALED_OVERHEAD, CardStatusReply, CardStatusRequest, DeleteRequest
from .crypto.encoding import encode, u64

__all__ = [
    "D_REALM_EVALUATE",
    "D_REALM_REGISTER",
    "D_REALM_RELEASE",
    "REGISTER_PLAIN_LEN",
    "SEALED_SHARE_LEN",
    "GatewayAuthorize",
    "GatewayInfo",
    "GatewayReply",
    "GatewayService",
    "RealmCatchUp",
    "RealmCatchUpReply",
    "RealmCommitment",
    "RealmDelta",
    "RealmEvaluate",
    "RealmEvaluateReply",
    "RealmInfo",
    "RealmMember",
    "RealmRegister",
    "RealmRelease",
    "RealmReleaseReply",
    "RealmService",
    "RealmShare",
    "gateway_envelope_aad",
    "register_aad",
    "share_aad",
    "share_commitment",
]

D_REALM_REGISTER = b"splitvault/realm/v1/register"
D_REALM_REGISTER_ENVELOPE = b"splitvault/realm/v1/register-envelope"
D_REALM_EVALUATE = b"splitvault/realm/v1/evaluate"
D_REALM_CATCH_UP = b"splitvault/realm/v1/catch-up"
D_REALM_RELEASE = b"splitvault/realm/v1/release"
D_REALM_RELEASE_PROOF = b"splitvault/realm/v1/release-proof"
D_REALM_SHARE = b"splitvault/realm/v1/share"
D_SHARE_COMMITMENT = b"splitvault/realm/v1/share-commitment"
D_GATEWAY_AUTHORIZE = b"splitvault/gateway/v1/authorize"
D_GATEWAY_ENVELOPE = b"splitvault/gateway/v1/envelope"

KEY_SHARE_LEN = 32
"""Realm ``i``'s OPRF key share ``k_i``: one ristretto255 scalar."""
SIGMA_LEN = 64
"""Realm ``i``'s share ``Sigma_i`` of the realms' side of the data key: two scalars
(``crypto.threshold_secret.PART_LEN``)."""
VERIFIER_LEN = 32
TOKEN_LEN = 32
REGISTER_PLAIN_LEN = KEY_SHARE_LEN + SIGMA_LEN + VERIFIER_LEN + TOKEN_LEN
"""What a registration seals to its realm: ``k_i || Sigma_i || verifier || T_0`` (the
first share version's token, ``_realm_refresh``)."""
SEALED_REGISTER_LEN = REGISTER_PLAIN_LEN + SEALED_OVERHEAD
SEALED_SHARE_LEN = SIGMA_LEN + SEALED_OVERHEAD
"""``Sigma_i`` as a realm seals it to the gateway."""
SEALED_RELEASE_PROOF_LEN = 64 + SEALED_OVERHEAD
COMMITMENT_LEN = 32


def _s(value: str) -> bytes:
    return value.encode("utf-8")


def _payment(amount: int, currency: str, merchant: str, idempotency_key: str) -> list[bytes]:
    return [u64(amount), _s(currency), _s(merchant), _s(idempotency_key)]


@dataclass(frozen=True)
class RealmInfo:
    """What a realm says of itself (``GET /v1/realm/info``): the X25519 key devices seal
    its part of each card to (its identity in a deployment file) and its guess limit."""

    realm_key: bytes
    guess_limit: int
    challenge_ttl: float


@dataclass(frozen=True)
class GatewayInfo:
    """What a gateway says of itself: the X25519 key realms seal shares to."""

    gateway_key: bytes


@dataclass(frozen=True)
class RealmRegister:
    """Device -> realm: enroll a card here. ``envelope`` is ``k_i || Sigma_i || verifier
    || T`` sealed to this realm (:func:`register_aad`); signed by the device key over the
    realm's key too, so a registration is for one realm only.

    ``share_version`` above 0 re-enrolls the card (``Device.reenroll``): a registration
    starting above the card's current floor replaces its keys, share, verifier and
    token, clears its counts, lock and clone mark, and becomes the floor below which
    every older copy of the device is cut off. Sent again (catch-up, a lost reply) it
    changes nothing."""

    card_id: str
    device_key: bytes
    envelope: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    share_version: int = 0  # the version it starts at: above every older one's (reenroll)

    def signed_bytes(self, realm_key: bytes) -> bytes:
        return encode(D_REALM_REGISTER, _s(self.card_id), realm_key, self.device_key,
                      self.envelope, u64(self.share_version))


def register_aad(card_id: str, realm_key: bytes, version: int = 0) -> bytes:
    """AAD of a registration's envelope: this card, this realm, the version it starts at
    (so an envelope kept on a device cannot be signed again for a later version: that
    would put the same keys back with the counts at zero; security review)."""
    return encode(D_REALM_REGISTER_ENVELOPE, _s(card_id), realm_key, u64(version))


@dataclass(frozen=True)
class RealmDelta:
    """One re-split step for one realm, as the gateway made it (``_realm_refresh``):
    ``rho_i || T`` making ``version``, authenticated to the realm by the gateway."""

    realm_key: bytes
    version: int
    gateway_key: bytes
    sealed: bytes = field(repr=False)

    def encoded(self) -> bytes:
        return encode(self.realm_key, u64(self.version), self.gateway_key, self.sealed)


@dataclass(frozen=True)
class RealmCommitment:
    """The device's commitment to a realm's share, after a re-split (the gateway's)."""

    realm_key: bytes
    commitment: bytes


@dataclass(frozen=True)
class RealmMember:
    """A realm of a card and its Shamir index for that card (the device assigned them
    at enrollment), which a gateway needs to deal every realm its part of a re-split."""

    index: int
    realm_key: bytes

    def encoded(self) -> bytes:
        return encode(bytes([self.index]), self.realm_key)


@dataclass(frozen=True)
class RealmEvaluate:
    """Device -> realm: evaluate the blinded PIN under this realm's key share (a counted
    guess). Single-use by its fresh nonce and time, like ``EvaluateRequest``; signed over
    the realm's key, so the request spends a guess at this realm only.

    ``share_version`` is the version of the device's part; ``deltas`` bring this realm
    to it, in order, from the version the device last saw it at (empty if it is there);
    ``possession`` is the MAC under that version's token over the signed bytes, which
    a copy of the device from before a re-split cannot make."""

    card_id: str
    nonce: bytes
    timestamp: int
    blinded: bytes
    signature: bytes = field(repr=False)
    share_version: int = 0
    deltas: tuple[RealmDelta, ...] = field(default=(), repr=False)
    possession: bytes = field(default=b"", repr=False)

    def signed_bytes(self, realm_key: bytes) -> bytes:
        return encode(D_REALM_EVALUATE, _s(self.card_id), realm_key, self.nonce,
                      u64(self.timestamp), self.blinded, u64(self.share_version),
                      *(d.encoded() for d in self.deltas))


@dataclass(frozen=True)
class RealmCatchUp:
    """Device -> realm: re-split steps only (no evaluation, no guess), for a realm behind
    by more steps than an evaluation carries (it was down for many payments). Signed by
    the device key over a fresh nonce and time; each step is the gateway's, so nothing
    here lets the device choose a share."""

    card_id: str
    nonce: bytes
    timestamp: int
    deltas: tuple[RealmDelta, ...] = field(repr=False)
    signature: bytes = field(repr=False)

    def signed_bytes(self, realm_key: bytes) -> bytes:
        return encode(D_REALM_CATCH_UP, _s(self.card_id), realm_key, self.nonce,
                      u64(self.timestamp), *(d.encoded() for d in self.deltas))


@dataclass(frozen=True)
class RealmCatchUpReply:
    share_version: int


@dataclass(frozen=True)
class RealmEvaluateReply:
    """``k_i * B``, the DLEQ proof that it is, and the challenge the release must sign.
    ``attempts_left``: evaluations this realm still allows before a correct PIN."""

    evaluated: bytes
    proof: bytes
    attempts_left: int
    challenge_id: str
    nonce: bytes
    expires_at: float
    share_version: int = 0
    share_floor: int = 0  # the version the card was last enrolled at, at this realm


@dataclass(frozen=True)
class RealmRelease:
    """Device -> realm: the PIN proof for one payment; the realm answers with its share
    sealed to ``gateway_key`` (which must be a gateway of its deployment)."""

    card_id: str
    challenge_id: str
    amount: int
    currency: str
    merchant: str
    idempotency_key: str
    gateway_key: bytes
    pin_signature: bytes = field(repr=False)  # sealed to the realm (release_proof_aad)

    def signed_bytes(self, realm_key: bytes, nonce: bytes) -> bytes:
        return encode(D_REALM_RELEASE, _s(self.card_id), realm_key, _s(self.challenge_id),
                      nonce, *_payment(self.amount, self.currency, self.merchant,
                                       self.idempotency_key), self.gateway_key)


def release_proof_aad(card_id: str, realm_key: bytes) -> bytes:
    """AAD of the PIN signature sealed to a realm (see ``_protocol.proof_aad`` for why
    anything the PIN key makes travels sealed)."""
    return encode(D_REALM_RELEASE_PROOF, _s(card_id), realm_key)


@dataclass(frozen=True)
class RealmReleaseReply:
    sealed_share: bytes = field(repr=False)


def share_aad(card_id: str, realm_key: bytes, gateway_key: bytes, version: int, amount: int,
              currency: str, merchant: str, idempotency_key: str, *, floor: int = 0,
              expires: int = 0) -> bytes:
    """AAD of ``Sigma_i`` sealed to the gateway: which card, which realm, which gateway,
    which share version and which payment. The gateway opens it only for that payment
    at the version the device presents, so a share released for one payment never
    serves another, nor one of another version or enrollment (``floor``: the version the
    card was last enrolled at, which the gateway binds the re-split's deltas to), and
    usable only until ``expires`` (Unix ms: the realm challenge's end), so shares captured
    on the way cannot be sent again later, even re-signed with a fresh nonce."""
    return encode(D_REALM_SHARE, _s(card_id), realm_key, gateway_key, u64(version),
                  *_payment(amount, currency, merchant, idempotency_key), u64(floor),
                  u64(expires))


def share_commitment(card_id: str, realm_key: bytes, sigma: bytes | bytearray) -> bytes:
    """The device's commitment to realm ``i``'s ``Sigma_i`` (BLAKE2b-256 of 512 uniform
    bits: it hides the share). The gateway checks each opened share against it, so a
    realm that releases a wrong share is named, not mistaken for tampering."""
    return bytes(blake2b(encode(D_SHARE_COMMITMENT, _s(card_id), realm_key, bytes(sigma)),
                         digest_size=COMMITMENT_LEN, encoder=RawEncoder))


@dataclass(frozen=True)
class RealmShare:
    """One realm's released share, as the device forwards it to the gateway: the realm's
    Shamir index for this card, its key, the sealed share and the device's commitment."""

    index: int
    realm_key: bytes
    sealed: bytes = field(repr=False)
    commitment: bytes
    expires_at: int = 0  # Unix ms: the end of the realm's challenge, bound in the seal

    def encoded(self) -> bytes:
        return encode(bytes([self.index]), self.realm_key, self.sealed, self.commitment,
                      u64(self.expires_at))


@dataclass(frozen=True)
class GatewayAuthorize:
    """Device -> gateway: the payment, the device's part and the sealed card record
    (``envelope``, sealed to the gateway: :func:`gateway_envelope_aad`), and the shares
    t realms released for it. Signed by the device key (``card_id`` is its hash).

    ``nonce`` and ``timestamp`` make a request charge at most once and only while fresh:
    a copy of it sent again (a lost reply) is answered from the ledger, but one replayed
    after a payment that took no money (``AcquirerUnavailable``, a reversal) never
    charges without a new PIN proof (security review)."""

    card_id: str
    device_key: bytes
    amount: int
    currency: str
    merchant: str
    idempotency_key: str
    envelope: bytes = field(repr=False)
    shares: tuple[RealmShare, ...] = field(repr=False)
    signature: bytes = field(repr=False)
    share_version: int = 0
    refresh_key: bytes = b""  # X25519: where an approval's re-split goes (32 bytes)
    members: tuple[RealmMember, ...] = ()  # every realm of the card, for the re-split
    nonce: bytes = b""  # 16 bytes, single use: a request may charge once
    timestamp: int = 0  # the device's clock, Unix ms: a request charges only while fresh
    share_floor: int = 0  # the realms' enrollment floor (their replies'), bound in shares

    def signed_bytes(self, gateway_key: bytes) -> bytes:
        return encode(D_GATEWAY_AUTHORIZE, _s(self.card_id), gateway_key, self.device_key,
                      *_payment(self.amount, self.currency, self.merchant,
                                self.idempotency_key),
                      self.envelope, u64(self.share_version), self.refresh_key,
                      self.nonce, u64(self.timestamp), u64(self.share_floor),
                      encode(b"shares", *(s.encoded() for s in self.shares)),
                      encode(b"members", *(m.encoded() for m in self.members)))


@dataclass(frozen=True)
class GatewayReply:
    """The payment's result and, after an approval, the re-split the gateway dealt:
    ``refresh`` (``rho || T`` sealed to the request's refresh key) making
    ``share_version``, one delta per realm for the device to carry there, and every
    realm's new commitment. A result answered from the ledger carries no re-split."""

    authorization: Authorization
    share_version: int = 0
    refresh: bytes | None = field(default=None, repr=False)
    deltas: tuple[RealmDelta, ...] = field(default=(), repr=False)
    commitments: tuple[RealmCommitment, ...] = ()


def gateway_envelope_aad(card_id: str, gateway_key: bytes, idempotency_key: str) -> bytes:
    """AAD of the device's part and card record sealed to the gateway."""
    return encode(D_GATEWAY_ENVELOPE, _s(card_id), gateway_key, _s(idempotency_key))


class RealmService(Protocol):
    """One realm, in this process or over HTTP. ``delete`` and ``realm_status`` take the
    single server's messages (signed by the device key)."""

    def realm_info(self) -> RealmInfo: ...

    def realm_register(self, request: RealmRegister) -> None: ...

    def realm_evaluate(self, request: RealmEvaluate) -> RealmEvaluateReply: ...

    def realm_release(self, request: RealmRelease) -> RealmReleaseReply: ...

    def delete(self, request: DeleteRequest) -> None: ...

    def realm_status(self, request: CardStatusRequest) -> CardStatusReply: ...

    def realm_catch_up(self, request: RealmCatchUp) -> RealmCatchUpReply: ...


class GatewayService(Protocol):
    """One gateway, in this process or over HTTP."""

    def gateway_info(self) -> GatewayInfo: ...

    def gateway_authorize(self, request: GatewayAuthorize) -> GatewayReply: ...
