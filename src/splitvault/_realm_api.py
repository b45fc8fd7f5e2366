"""The HTTP contract of realms and gateways: wire messages and routes.

Same rules as the single server's (``_wire``, ``_http_api``): strict JSON, canonical
base64url bytes, exact lengths, one POST route per service method. A realm serves
:data:`REALM_ROUTES` (plus the single server's ``/v1/delete`` and ``/v1/card/status``,
which it answers for the cards it holds); a gateway serves :data:`GATEWAY_ROUTES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _wire
from ._errors import MalformedRequest
from ._http_api import Route
from ._realm_protocol import (
    COMMITMENT_LEN,
    SEALED_REGISTER_LEN,
    SEALED_RELEASE_PROOF_LEN,
    SEALED_SHARE_LEN,
    GatewayAuthorize,
    GatewayInfo,
    GatewayReply,
    RealmCatchUp,
    RealmCatchUpReply,
    RealmCommitment,
    RealmDelta,
    RealmEvaluate,
    RealmEvaluateReply,
    RealmInfo,
    RealmMember,
    RealmRegister,
    RealmRelease,
    RealmReleaseReply,
    RealmShare,
)
from ._realm_refresh import DELTA_LEN, SEALED_REFRESH_LEN
from ._wire import Bytes, Int, JsonValue, Kind, Message, Nested, Number, Text

__all__ = ["GATEWAY_ROUTES", "MESSAGES", "REALM_ROUTES"]

_ID = Text(32, 32, "[0-9a-f]{32}")
_KEY32 = Bytes(32)
_SIG = Bytes(64)
_NONCE = Bytes(16)
_MILLIS = Int(0, 2**53)
_COUNT = Int(0, 2**31 - 1)
_AMOUNT = Int(1, 10**12)
_CURRENCY = Text(3, 3, "[A-Z]{3}")
_MERCHANT = Text(1, 256)
_IDEMPOTENCY_KEY = Text(1, 128, "[A-Za-z0-9._:-]{1,128}")
_ENVELOPE = Bytes(1, 4096)
_VERSION = Int(0, 2**53)
MAX_DELTAS = 32
"""Re-split steps one request carries to a realm (about 350 bytes each: 32 fit well in
the 16 KiB body limit). A realm behind by more is brought up first by ``realm_catch_up``
requests of this many steps each."""


@dataclass(frozen=True)
class ListOf(Kind):
    """A JSON array of ``lo..hi`` objects of one message (decoded as a tuple)."""

    message: Message[Any]
    lo: int
    hi: int

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": self.lo, "maxItems": self.hi,
                "items": self.message.schema()}

    def decode(self, name: str, value: JsonValue) -> Any:
        if not isinstance(value, list) or not self.lo <= len(value) <= self.hi:
            raise MalformedRequest(f"malformed {name}")
        return tuple(self.message.from_json(item) for item in value)

    def encode(self, value: Any) -> JsonValue:
        return [self.message.to_json(item) for item in value]


REALM_INFO = Message("RealmInfo", RealmInfo, {
    "realm_key": _KEY32, "guess_limit": Int(1, 2**31 - 1), "challenge_ttl": Number(0, 2**53)})
GATEWAY_INFO = Message("GatewayInfo", GatewayInfo, {"gateway_key": _KEY32})
REALM_REGISTER = Message("RealmRegister", RealmRegister, {
    "card_id": _ID, "device_key": _KEY32, "envelope": Bytes(SEALED_REGISTER_LEN),
    "signature": _SIG, "share_version": _VERSION}, optional=frozenset({"share_version"}))
REALM_DELTA = Message("RealmDelta", RealmDelta, {
    "realm_key": _KEY32, "version": _VERSION, "gateway_key": _KEY32,
    "sealed": Bytes(DELTA_LEN)})
REALM_MEMBER = Message("RealmMember", RealmMember, {"index": Int(1, 255), "realm_key": _KEY32})
REALM_COMMITMENT = Message("RealmCommitment", RealmCommitment, {
    "realm_key": _KEY32, "commitment": Bytes(COMMITMENT_LEN)})
REALM_EVALUATE = Message("RealmEvaluate", RealmEvaluate, {
    "card_id": _ID, "nonce": _NONCE, "timestamp": _MILLIS, "blinded": _KEY32,
    "signature": _SIG, "share_version": _VERSION,
    "deltas": ListOf(REALM_DELTA, 0, MAX_DELTAS), "possession": Bytes(0, 32)},
    optional=frozenset({"deltas", "possession"}))
REALM_CATCH_UP = Message("RealmCatchUp", RealmCatchUp, {
    "card_id": _ID, "nonce": _NONCE, "timestamp": _MILLIS,
    "deltas": ListOf(REALM_DELTA, 1, MAX_DELTAS), "signature": _SIG})
REALM_CATCH_UP_REPLY = Message("RealmCatchUpReply", RealmCatchUpReply, {
    "share_version": _VERSION})
REALM_EVALUATE_REPLY = Message("RealmEvaluateReply", RealmEvaluateReply, {
    "evaluated": _KEY32, "proof": Bytes(64), "attempts_left": _COUNT, "challenge_id": _ID,
    "nonce": _KEY32, "expires_at": Number(0, 2**53), "share_version": _VERSION,
    "share_floor": _VERSION}, optional=frozenset({"share_floor"}))
REALM_RELEASE = Message("RealmRelease", RealmRelease, {
    "card_id": _ID, "challenge_id": _ID, "amount": _AMOUNT, "currency": _CURRENCY,
    "merchant": _MERCHANT, "idempotency_key": _IDEMPOTENCY_KEY, "gateway_key": _KEY32,
    "pin_signature": Bytes(SEALED_RELEASE_PROOF_LEN)})
REALM_RELEASE_REPLY = Message("RealmReleaseReply", RealmReleaseReply, {
    "sealed_share": Bytes(SEALED_SHARE_LEN)})
REALM_SHARE = Message("RealmShare", RealmShare, {
    "index": Int(1, 255), "realm_key": _KEY32, "sealed": Bytes(SEALED_SHARE_LEN),
    "commitment": Bytes(COMMITMENT_LEN), "expires_at": _MILLIS})
GATEWAY_AUTHORIZE = Message("GatewayAuthorize", GatewayAuthorize, {
    "card_id": _ID, "device_key": _KEY32, "amount": _AMOUNT, "currency": _CURRENCY,
    "merchant": _MERCHANT, "idempotency_key": _IDEMPOTENCY_KEY, "envelope": _ENVELOPE,
    "shares": ListOf(REALM_SHARE, 1, 16), "signature": _SIG, "share_version": _VERSION,
    "refresh_key": _KEY32, "members": ListOf(REALM_MEMBER, 1, 16), "nonce": _NONCE,
    "timestamp": _MILLIS, "share_floor": _VERSION})
GATEWAY_REPLY = Message("GatewayReply", GatewayReply, {
    "authorization": Nested(_wire.AUTHORIZATION), "share_version": _VERSION,
    "refresh": Bytes(SEALED_REFRESH_LEN), "deltas": ListOf(REALM_DELTA, 0, 16),
    "commitments": ListOf(REALM_COMMITMENT, 0, 16)},
    optional=frozenset({"refresh", "deltas", "commitments"}))

_PAY_ERRORS = ("invalid_payment", "tampered_data", "unknown_card", "idempotency_conflict",
               "payment_in_doubt", "acquirer_unavailable", "realm_faulty",
               "configuration_error")

REALM_ROUTES: tuple[Route, ...] = (
    Route("/v1/realm/info", "realm_info", None, REALM_INFO, (),
          "The realm's X25519 key (its identity), guess limit and challenge lifetime"),
    Route("/v1/realm/register", "realm_register", REALM_REGISTER, _wire.EMPTY,
          ("tampered_data", "unknown_card"),
          "Enroll a card at this realm: its OPRF key share, its share and the PIN verifier"),
    Route("/v1/realm/evaluate", "realm_evaluate", REALM_EVALUATE, REALM_EVALUATE_REPLY,
          ("unknown_card", "invalid_challenge", "card_locked"),
          "Evaluate the blinded PIN under this realm's key share (a counted guess), "
          "with a DLEQ proof"),
    Route("/v1/realm/release", "realm_release", REALM_RELEASE, REALM_RELEASE_REPLY,
          ("invalid_payment", "tampered_data", "wrong_pin", "unknown_card",
           "invalid_challenge", "card_locked", "configuration_error"),
          "Check the PIN proof of one payment; release this realm's share sealed to a "
          "gateway of the deployment"),
    Route("/v1/realm/catch-up", "realm_catch_up", REALM_CATCH_UP, REALM_CATCH_UP_REPLY,
          ("unknown_card", "invalid_challenge", "tampered_data", "device_cloned"),
          "Bring this realm's share of a card up by the gateway's re-split steps (no "
          "guess), for a realm that was down for many payments"),
    Route("/v1/delete", "delete", _wire.DELETE, _wire.EMPTY,
          ("unknown_card", "invalid_challenge"),
          "Destroy this realm's share and key share of a card"),
    Route("/v1/card/status", "realm_status", _wire.CARD_STATUS, _wire.CARD_STATUS_REPLY,
          ("unknown_card", "invalid_challenge"),
          "The card's PIN state at this realm (evaluations since the last correct PIN), "
          "for its device"),
)

GATEWAY_ROUTES: tuple[Route, ...] = (
    Route("/v1/gateway/info", "gateway_info", None, GATEWAY_INFO, (),
          "The gateway's X25519 key, which realms seal shares to"),
    Route("/v1/gateway/authorize", "gateway_authorize", GATEWAY_AUTHORIZE,
          GATEWAY_REPLY, _PAY_ERRORS,
          "Recombine the device's part with t realms' shares and pay, exactly once per "
          "idempotency key"),
)

MESSAGES: tuple[Message[Any], ...] = (
    REALM_INFO, GATEWAY_INFO, REALM_REGISTER, REALM_EVALUATE, REALM_EVALUATE_REPLY,
    REALM_RELEASE, REALM_RELEASE_REPLY, REALM_SHARE, GATEWAY_AUTHORIZE, REALM_DELTA,
    REALM_COMMITMENT, GATEWAY_REPLY, REALM_MEMBER, REALM_CATCH_UP, REALM_CATCH_UP_REPLY,
)
