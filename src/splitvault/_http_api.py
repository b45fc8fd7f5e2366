"""The HTTP contract between the share server and the device: routes, statuses, errors.

One POST route per :class:`ShareService` method (``info`` is a GET), each with the
wire message it takes and the one it returns. Both ``server._http`` and
``device._http`` read this table, and the OpenAPI document is generated from it.

Every error reply is ``{"error": code, "message": text}`` (plus ``attempts_left`` for
``wrong_pin``), where ``code`` is a ``VaultError.code``, or one of the few HTTP-level
codes below that no ``VaultError`` has. The status is a function of the code:

- caller mistakes (malformed or out-of-bounds fields, bad payments, a signature that
  fails proof of possession or a tampered envelope) are **400**; a body too large is
  413 and a body that is not ``application/json`` is 415, both ``malformed_request``;
- ``wrong_pin`` is **401** (with ``attempts_left``); ``unknown_card`` **404**, the same
  bytes for "no such card" and "not signed by the card's device";
- ``invalid_challenge`` and ``idempotency_conflict`` are **409**: the request was well
  formed but conflicts with the server's state (a used challenge, a used key);
- ``payment_in_doubt`` is also **409**, not 5xx: retrying the same key gives the same
  answer until an operator reconciles, and a 5xx would invite generic HTTP clients and
  proxies to retry automatically;
- ``card_locked`` **423**; ``rate_limited`` **429** with ``Retry-After``;
- ``acquirer_unavailable`` **503**: nothing was charged, a retry may succeed;
- anything unexpected is **500** ``internal_error`` with a fixed message.

A decline is never an error: it is an :class:`Authorization` with ``approved`` false.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _wire
from ._wire import Message

__all__ = ["COMMON_ERRORS", "ROUTES", "STATUS", "Route", "error_body", "status_of"]

#: HTTP status of each error code.
STATUS: dict[str, int] = {
    "malformed_request": 400,
    "invalid_payment": 400,
    "invalid_card": 400,
    "invalid_pin": 400,
    "weak_pin": 400,
    "invalid_phrase": 400,
    "tampered_data": 400,
    "realm_faulty": 502,
    "configuration_error": 503,
    "wrong_pin": 401,
    "unknown_card": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "invalid_challenge": 409,
    "idempotency_conflict": 409,
    "payment_in_doubt": 409,
    "card_locked": 423,
    "device_cloned": 423,
    "server_rolled_back": 409,
    "rate_limited": 429,
    "internal_error": 500,
    "acquirer_unavailable": 503,
    "not_ready": 503,
}

#: Statuses any operation can answer: bad body, too large, wrong media type, rate
#: limited, internal error.
COMMON_ERRORS = (400, 413, 415, 429, 500)


def status_of(code: str) -> int:
    return STATUS.get(code, 500)


@dataclass(frozen=True)
class Route:
    path: str
    method: str  # the ShareService method's name; also the OpenAPI operationId
    request: Message[Any] | None  # None: a GET without a body
    reply: Message[Any]
    errors: tuple[str, ...]  # error codes beyond the common ones
    summary: str


ROUTES: tuple[Route, ...] = (
    Route("/v1/info", "info", None, _wire.SERVER_INFO, (),
          "Guess limit and challenge lifetime"),
    Route("/v1/enroll/begin", "enroll_begin", _wire.ENROLL_BEGIN, _wire.ENROLL_BEGIN_REPLY,
          ("tampered_data",), "Register a device key; first OPRF evaluation of the PIN"),
    Route("/v1/enroll/finish", "enroll_finish", _wire.ENROLL_FINISH, _wire.EMPTY,
          ("tampered_data", "unknown_card"), "Store the sealed server share and verifier"),
    Route("/v1/evaluate", "evaluate", _wire.EVALUATE, _wire.EVALUATE_REPLY,
          ("unknown_card", "invalid_challenge", "card_locked", "device_cloned",
           "server_rolled_back"),
          "Evaluate the blinded PIN (spends one counted guess); returns the proof's challenge"),
    Route("/v1/authorize", "authorize", _wire.AUTHORIZE, _wire.AUTHORIZE_REPLY,
          ("invalid_payment", "tampered_data", "wrong_pin", "unknown_card",
           "invalid_challenge", "idempotency_conflict", "payment_in_doubt", "card_locked",
           "device_cloned", "acquirer_unavailable"),
          "Authorize a payment exactly once per idempotency key"),
    Route("/v1/pin/change/begin", "change_pin_begin", _wire.CHANGE_PIN_BEGIN,
          _wire.EVALUATE_REPLY, ("wrong_pin", "unknown_card", "invalid_challenge",
                                 "card_locked"),
          "Prove the old PIN; evaluate the new one under a fresh OPRF key"),
    Route("/v1/pin/change/finish", "change_pin_finish", _wire.CHANGE_PIN_FINISH, _wire.EMPTY,
          ("tampered_data", "unknown_card", "invalid_challenge"),
          "Store the new PIN verifier"),
    Route("/v1/delete", "delete", _wire.DELETE, _wire.EMPTY,
          ("unknown_card", "invalid_challenge"),
          "Destroy the server's share and OPRF key of a card"),
    Route("/v1/card/status", "card_status", _wire.CARD_STATUS, _wire.CARD_STATUS_REPLY,
          ("unknown_card", "invalid_challenge"),
          "The card's PIN state (wrong PINs so far, the limit, locked), for its device"),
    Route("/v1/reenroll/begin", "reenroll_begin", _wire.REENROLL_BEGIN, _wire.EVALUATE_REPLY,
          ("unknown_card", "invalid_challenge"),
          "Start enrolling a card again under a new PIN (device key; works when locked)"),
    Route("/v1/reenroll/finish", "reenroll_finish", _wire.REENROLL_FINISH, _wire.EMPTY,
          ("tampered_data", "unknown_card", "invalid_challenge"),
          "Replace the card's share, OPRF key and verifier; unlock it"),
)


def error_body(code: str, message: str, attempts_left: int | None = None) -> bytes:
    """The JSON bytes of an error reply."""
    return _wire.dumps(_wire.ERROR, _wire.ErrorBody(code, message, attempts_left))
