"""The messages between device and share server, and the exact bytes each signature covers.

Every request about an existing card is signed: by the card's *device key* (proves the
request comes from the enrolled device, so a stranger cannot spend the card's PIN
guesses) or by the *PIN key* (proves the PIN: only a device that knows the PIN, holds
the device secret and got a fresh OPRF evaluation can derive it). Signed bytes are
built here, and only here, with domain-separated length-prefixed encoding, so device
and server cannot disagree about them.

The server side is one interface, :class:`ShareService`; the device never needs to
know whether it talks to one server in-process, over HTTP, or (later) to t of n realms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from ._authorization import Authorization
from .crypto.encoding import encode, u64

__all__ = [
    "FRESHNESS_SECONDS",
    "AuthorizeReply",
    "AuthorizeRequest",
    "CardStatusReply",
    "CardStatusRequest",
    "ChangePinBegin",
    "ChangePinFinish",
    "DeleteRequest",
    "EnrollBegin",
    "EnrollBeginReply",
    "EnrollFinish",
    "EvaluateReply",
    "EvaluateRequest",
    "ReenrollBegin",
    "ReenrollFinish",
    "ServerInfo",
    "ShareService",
    "card_id_for",
    "refresh_aad",
]

VERSION = b"splitvault/v1/"


def _d(name: str) -> bytes:
    return VERSION + name.encode("ascii")


# Domain tags. A signature for one of these never verifies as another.
D_PIN_INPUT = _d("pin-input")
D_ENROLL_BEGIN = _d("enroll-begin")
D_ENROLL_BEGIN_WALLET = b"splitvault/v5/enroll-begin"  # v5: the wallet key
D_ENROLL_FINISH = _d("enroll-finish")
D_ENROLL_ENVELOPE = _d("enroll-envelope")
D_EVALUATE = b"splitvault/v4/evaluate"  # v4: share version and refresh key (v2: nonce, time)
D_AUTHORIZE = b"splitvault/v4/authorize"  # v4: the refresh key
D_AUTHORIZE_ENVELOPE = _d("authorize-envelope")
D_CHANGE_PIN_BEGIN = _d("change-pin-begin")
D_CHANGE_PIN_FINISH = _d("change-pin-finish")
D_DELETE = b"splitvault/v2/delete"  # v2: as evaluate
D_CARD_RECORD = _d("card-record")
D_SEALED_PROOF = b"splitvault/v3/sealed-proof"  # v3: PIN-derived values travel sealed
D_CARD_STATUS = b"splitvault/v3/card-status"
D_REENROLL_BEGIN = b"splitvault/v3/reenroll-begin"
D_REENROLL_FINISH = b"splitvault/v3/reenroll-finish"
D_CARD_ID = b"splitvault/v3/card-id"
D_REFRESH = b"splitvault/v4/refresh"

SEALED_OVERHEAD = 72
"""Bytes an envelope adds (ephemeral X25519 key 32, nonce 24, tag 16): see
:mod:`splitvault.crypto.envelope`."""
SEALED_KEY_LEN = 32 + SEALED_OVERHEAD
"""A PIN verifier (an Ed25519 public key) sealed to the server."""
SEALED_SIG_LEN = 64 + SEALED_OVERHEAD
"""A PIN-key signature sealed to the server."""
SEALED_REFRESH_LEN = 96 + SEALED_OVERHEAD
"""A re-split sealed to the device: ``R`` (32 bytes, as long as a share), the next
version's token (32) and the server's tag over both (32): see ``_resplit.py``."""


def proof_aad(kind: str, card_id: str) -> bytes:
    """AAD of a sealed PIN verifier or PIN signature.

    Why sealed at all: anything the PIN key produced, seen in the clear, is a test of a
    PIN guess for whoever also holds one OPRF output (a thief with the device asks the
    server for one, and the device's files give the rest of the derivation). Sealed to
    the server, with a fresh ephemeral key each time, the device's own transcripts
    hold nothing to compare a candidate against: only a proof *sent to the server*,
    and counted there, tests a PIN. ``kind`` names the field, so one sealed value
    never opens as another."""
    return encode(D_SEALED_PROOF, _s(kind), _s(card_id))


FRESHNESS_SECONDS = 120.0
"""How far a device-signed request's timestamp may be from the server's clock: wide
enough for a phone's clock drift, short enough that the server keeps each request's
single-use nonce only for minutes."""


def _s(value: str) -> bytes:
    return value.encode("utf-8")


@dataclass(frozen=True)
class ServerInfo:
    """What a device needs to know about the server before enrolling."""

    guess_limit: int
    challenge_ttl: float


@dataclass(frozen=True)
class EnrollBegin:
    """Device -> server: register a card's device key and get the PIN's first evaluation.

    ``wallet_key``: the device's one wallet public key (Ed25519), the same for every
    card it enrolls, so the server can give the device one PIN-guess budget across
    its cards (an owner using one PIN for all of them gets the limit once, not once
    per card). ``wallet_signature``: the wallet key's signature over the same bytes
    as ``signature`` (possession: else anyone who learned the key could spend the
    wallet's budget). Both or neither; a device or client from before wallets sends
    neither, and its card has its own limit only."""

    card_id: str
    device_key: bytes
    blinded: bytes
    signature: bytes = field(repr=False)
    wallet_key: bytes | None = None
    wallet_signature: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.wallet_key is None) != (self.wallet_signature is None):
            raise ValueError("a wallet key comes with its signature")

    def signed_bytes(self) -> bytes:
        if self.wallet_key is None:
            return encode(D_ENROLL_BEGIN, _s(self.card_id), self.device_key, self.blinded)
        return encode(D_ENROLL_BEGIN_WALLET, _s(self.card_id), self.device_key, self.blinded,
                      self.wallet_key)


@dataclass(frozen=True)
class EnrollBeginReply:
    evaluated: bytes
    server_key: bytes  # X25519 public key the device seals its messages to


@dataclass(frozen=True)
class EnrollFinish:
    """Device -> server: the server share and the first share version's token (sealed
    to the server together: ``share || token``) and the PIN verifier."""

    card_id: str
    verifier: bytes
    envelope: bytes = field(repr=False)
    device_signature: bytes = field(repr=False)
    pin_signature: bytes = field(repr=False)

    def signed_bytes(self) -> bytes:
        return encode(D_ENROLL_FINISH, _s(self.card_id), self.verifier, self.envelope)

    @staticmethod
    def envelope_aad(card_id: str) -> bytes:
        return encode(D_ENROLL_ENVELOPE, _s(card_id))


@dataclass(frozen=True)
class EvaluateRequest:
    """Device -> server: evaluate the blinded PIN. Each one is a counted guess.

    Signed by the device key over a fresh random ``nonce`` and the device's clock
    (``timestamp``, Unix milliseconds): the server takes each nonce once and only
    within :data:`FRESHNESS_SECONDS`, so no separate challenge round trip is needed
    to make the request single-use.

    ``share_version`` is the version of the device's share it will present (the
    shares are re-split after every approved payment, ``_refresh.py``): the server
    checks it before anything is spent, and a stale one is a copy of the device.
    ``refresh_key`` is the X25519 key a re-split still in flight is sealed to (empty
    if the device has none). ``possession`` proves the device holds that version (and
    that key's secret) and belongs to the card's current enrollment: two MACs over
    the signed bytes (``_resplit``), since a copy of the device signs as well as the
    device does."""

    card_id: str
    nonce: bytes
    timestamp: int
    blinded: bytes
    signature: bytes = field(repr=False)
    share_version: int = 0
    refresh_key: bytes = b""
    possession: bytes = field(default=b"", repr=False)

    def signed_bytes(self) -> bytes:
        return encode(D_EVALUATE, _s(self.card_id), self.nonce, u64(self.timestamp),
                      self.blinded, u64(self.share_version), self.refresh_key)


@dataclass(frozen=True)
class EvaluateReply:
    """The evaluation, and the single-use challenge its PIN proof must sign."""

    evaluated: bytes
    attempts_left: int  # after this guess, if the PIN turns out wrong
    challenge_id: str
    nonce: bytes
    expires_at: float
    share_version: int = 0  # the server's version of the card's shares, for this challenge
    refresh: bytes | None = field(default=None, repr=False)  # a re-split to finish, sealed


@dataclass(frozen=True)
class AuthorizeRequest:
    """Device -> server: the payment, the device share sealed to the server, the PIN proof.

    ``refresh_key``: a fresh X25519 public key of the device's, which an approval's
    re-split of the shares is sealed to (signed with the rest, so nobody on the way
    can swap in their own)."""

    card_id: str
    challenge_id: str
    amount: int
    currency: str
    merchant: str
    idempotency_key: str
    envelope: bytes = field(repr=False)
    pin_signature: bytes = field(repr=False)
    refresh_key: bytes = b""

    def signed_bytes(self, nonce: bytes) -> bytes:
        return encode(
            D_AUTHORIZE,
            _s(self.card_id),
            _s(self.challenge_id),
            nonce,
            u64(self.amount),
            _s(self.currency),
            _s(self.merchant),
            _s(self.idempotency_key),
            self.envelope,
            self.refresh_key,
        )

    @staticmethod
    def envelope_aad(card_id: str, challenge_id: str) -> bytes:
        return encode(D_AUTHORIZE_ENVELOPE, _s(card_id), _s(challenge_id))


@dataclass(frozen=True)
class AuthorizeReply:
    """Server -> device: the payment's result, the version of the card's shares the
    payment used, and, after an approval, the re-split: ``R`` sealed to the request's
    ``refresh_key`` (:func:`refresh_aad`), which the device XORs into its share to get
    version ``share_version + 1``."""

    authorization: Authorization
    share_version: int = 0
    refresh: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ChangePinBegin:
    """Device -> server: prove the old PIN, get the new PIN evaluated under a fresh OPRF key."""

    card_id: str
    challenge_id: str
    new_blinded: bytes
    pin_signature: bytes = field(repr=False)

    def signed_bytes(self, nonce: bytes) -> bytes:
        return encode(
            D_CHANGE_PIN_BEGIN, _s(self.card_id), _s(self.challenge_id), nonce, self.new_blinded
        )


@dataclass(frozen=True)
class ChangePinFinish:
    """Device -> server: the new verifier, signed by the old and the new PIN key."""

    card_id: str
    challenge_id: str
    new_verifier: bytes
    old_pin_signature: bytes = field(repr=False)
    new_pin_signature: bytes = field(repr=False)

    def signed_bytes(self, nonce: bytes) -> bytes:
        return encode(
            D_CHANGE_PIN_FINISH, _s(self.card_id), _s(self.challenge_id), nonce, self.new_verifier
        )


@dataclass(frozen=True)
class DeleteRequest:
    """Device -> server: destroy the server's share and OPRF key for good. Signed by
    the device key over a fresh nonce and time, like :class:`EvaluateRequest`."""

    card_id: str
    nonce: bytes
    timestamp: int
    signature: bytes = field(repr=False)

    def signed_bytes(self) -> bytes:
        return encode(D_DELETE, _s(self.card_id), self.nonce, u64(self.timestamp))


@dataclass(frozen=True)
class CardStatusRequest:
    """Device -> server: the card's PIN state (wrong PINs so far, locked). Signed by the
    device key over a fresh nonce and time, like :class:`DeleteRequest`: only the
    enrolled device learns it, and a stranger cannot tell a card id from a made-up one."""

    card_id: str
    nonce: bytes
    timestamp: int
    signature: bytes = field(repr=False)

    def signed_bytes(self) -> bytes:
        return encode(D_CARD_STATUS, _s(self.card_id), self.nonce, u64(self.timestamp))


@dataclass(frozen=True)
class CardStatusReply:
    guesses_used: int
    guess_limit: int
    locked: bool
    cloned: bool = False
    share_version: int = 0


@dataclass(frozen=True)
class ReenrollBegin:
    """Device -> server: start enrolling a card again under a new PIN (the way back
    from a lock). Signed by the card's device key over a fresh nonce and time, like
    :class:`EvaluateRequest`; the reply is an evaluation of the new PIN under a fresh
    OPRF key and the challenge :class:`ReenrollFinish` signs."""

    card_id: str
    nonce: bytes
    timestamp: int
    blinded: bytes
    signature: bytes = field(repr=False)

    def signed_bytes(self) -> bytes:
        return encode(D_REENROLL_BEGIN, _s(self.card_id), self.nonce, u64(self.timestamp),
                      self.blinded)


@dataclass(frozen=True)
class ReenrollFinish:
    """Device -> server: the new server share (sealed), the new verifier (sealed),
    signed by the device key and by the new PIN key (sealed) over the challenge."""

    card_id: str
    challenge_id: str
    verifier: bytes
    envelope: bytes = field(repr=False)
    device_signature: bytes = field(repr=False)
    pin_signature: bytes = field(repr=False)

    def signed_bytes(self, nonce: bytes) -> bytes:
        return encode(D_REENROLL_FINISH, _s(self.card_id), _s(self.challenge_id), nonce,
                      self.verifier, self.envelope)

    @staticmethod
    def envelope_aad(card_id: str, challenge_id: str) -> bytes:
        return encode(D_REENROLL_FINISH, b"envelope", _s(card_id), _s(challenge_id))


def pin_input(card_id: str, digits: bytes | bytearray) -> bytearray:
    """The OPRF input for a PIN: bound to the card, so one evaluation serves one card only."""
    return bytearray(encode(D_PIN_INPUT, _s(card_id), digits))


def card_id_for(device_key: bytes) -> str:
    """The card id a new device key enrolls under: 128 bits of a hash of the key.

    Why not a free choice: a device that picks its card id can pick someone else's,
    and "already in use" would then confirm that the id exists. Bound to the key, an
    id can be taken only by the holder of that key (a fresh key names a fresh id), so
    enrollment says nothing about anyone else's cards (threat model I7)."""
    return bytes(blake2b(encode(D_CARD_ID, device_key), digest_size=16,
                         encoder=RawEncoder)).hex()


def refresh_aad(card_id: str, version: int) -> bytes:
    """AAD of a re-split sealed to the device: binds it to the card and to the version
    it makes, so a sealed ``R`` never opens for another card or another step."""
    return encode(D_REFRESH, _s(card_id), u64(version))


def card_record_aad(card_id: str) -> bytes:
    """AAD of the sealed card record: binds it to its card id and format version."""
    return encode(D_CARD_RECORD, _s(card_id))


class ShareService(Protocol):
    """The server side, as the device sees it. ``ShareServer`` implements it in-process;
    the HTTP transport implements it over the network."""

    def info(self) -> ServerInfo: ...

    def enroll_begin(self, request: EnrollBegin) -> EnrollBeginReply: ...

    def enroll_finish(self, request: EnrollFinish) -> None: ...

    def evaluate(self, request: EvaluateRequest) -> EvaluateReply: ...

    def authorize(self, request: AuthorizeRequest) -> AuthorizeReply: ...

    def change_pin_begin(self, request: ChangePinBegin) -> EvaluateReply: ...

    def change_pin_finish(self, request: ChangePinFinish) -> None: ...

    def delete(self, request: DeleteRequest) -> None: ...

    def card_status(self, request: CardStatusRequest) -> CardStatusReply: ...

    def reenroll_begin(self, request: ReenrollBegin) -> EvaluateReply: ...

    def reenroll_finish(self, request: ReenrollFinish) -> None: ...
