"""The JSON form of every protocol message, reply and error, for the HTTP transport.

Both sides use this module, and the server's OpenAPI document is generated from the
same field definitions the decoders enforce, so what is documented is what is checked.

Bytes travel as unpadded base64url strings. Decoding is strict, because every
message comes from the network: the body must be one UTF-8 JSON object with exactly
the message's keys (no unknown, missing or duplicate ones), each of the right JSON
type, within its bounds, and every base64url string canonical. Anything else is one
:class:`MalformedRequest` whose message names the field but never echoes its value.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from ._authorization import Authorization
from ._errors import MalformedRequest
from ._protocol import (
    SEALED_KEY_LEN,
    SEALED_REFRESH_LEN,
    SEALED_SIG_LEN,
    AuthorizeReply,
    AuthorizeRequest,
    CardStatusReply,
    CardStatusRequest,
    ChangePinBegin,
    ChangePinFinish,
    DeleteRequest,
    EnrollBegin,
    EnrollBeginReply,
    EnrollFinish,
    EvaluateReply,
    EvaluateRequest,
    ReenrollBegin,
    ReenrollFinish,
    ServerInfo,
)

__all__ = [
    "AUTHORIZATION",
    "AUTHORIZE",
    "AUTHORIZE_REPLY",
    "CARD_STATUS",
    "CARD_STATUS_REPLY",
    "CHANGE_PIN_BEGIN",
    "CHANGE_PIN_FINISH",
    "DELETE",
    "EMPTY",
    "ENROLL_BEGIN",
    "ENROLL_BEGIN_REPLY",
    "ENROLL_FINISH",
    "ERROR",
    "EVALUATE",
    "EVALUATE_REPLY",
    "MAX_BODY",
    "MESSAGES",
    "REENROLL_BEGIN",
    "REENROLL_FINISH",
    "SERVER_INFO",
    "Empty",
    "ErrorBody",
    "Message",
    "dumps",
    "loads",
]

MAX_BODY = 16 * 1024
"""Largest body either side accepts: the largest message (an authorization with a
4 KiB envelope, 5.5 KiB as base64url) with room to spare, small enough that a flood
of maximal bodies costs the server little memory."""

T = TypeVar("T")
JsonValue = Any  # what json.loads returns; each Kind narrows it

_B64 = "[A-Za-z0-9_-]"
# The last character of an unpadded base64url string carries 2 or 4 unused bits,
# which must be zero: otherwise two strings would decode to the same bytes.
_TAIL_1 = f"{_B64}[AQgw]"
_TAIL_2 = f"{_B64}{{2}}[AEIMQUYcgkosw048]"


def _bad(name: str, what: str = "malformed") -> MalformedRequest:
    return MalformedRequest(f"{what} field: {name}")


# -- field kinds: each one decodes, encodes and describes itself ------------------------


class Kind:
    """One JSON field type: its JSON Schema, its decoder and its encoder."""

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def decode(self, name: str, value: JsonValue) -> Any:
        raise NotImplementedError

    def encode(self, value: Any) -> JsonValue:
        return value


def _check_text(name: str, value: JsonValue, lo: int, hi: int) -> str:
    if type(value) is not str or not lo <= len(value) <= hi:
        raise _bad(name)
    try:
        value.encode("utf-8")  # lone surrogates from "\ud800" escapes cannot be signed
    except UnicodeEncodeError:
        raise _bad(name) from None
    return value


@dataclass(frozen=True)
class Text(Kind):
    """A string of ``lo`` to ``hi`` characters, optionally matching ``pattern``."""

    lo: int = 1
    hi: int = 256
    pattern: str | None = None

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "minLength": self.lo, "maxLength": self.hi}
        if self.pattern is not None:
            out["pattern"] = f"^{self.pattern}$"
        return out

    def decode(self, name: str, value: JsonValue) -> str:
        text = _check_text(name, value, self.lo, self.hi)
        if self.pattern is not None and re.fullmatch(self.pattern, text) is None:
            raise _bad(name)
        return text


@dataclass(frozen=True)
class NullableText(Kind):
    hi: int

    def schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"], "minLength": 1, "maxLength": self.hi}

    def decode(self, name: str, value: JsonValue) -> str | None:
        return None if value is None else _check_text(name, value, 1, self.hi)


@dataclass(frozen=True)
class Bytes(Kind):
    """Bytes as canonical unpadded base64url: exactly ``lo`` bytes if ``hi`` is None."""

    lo: int
    hi: int | None = None

    @property
    def pattern(self) -> str:
        if self.hi is None:
            groups, rest = divmod(self.lo, 3)
            return f"(?:{_B64}{{4}}){{{groups}}}" + ("", _TAIL_1, _TAIL_2)[rest]
        return f"(?:{_B64}{{4}})*(?:{_TAIL_1}|{_TAIL_2})?"

    def schema(self) -> dict[str, Any]:
        hi = self.lo if self.hi is None else self.hi
        return {"type": "string", "contentEncoding": "base64url", "pattern": f"^{self.pattern}$",
                "minLength": _b64_len(self.lo), "maxLength": _b64_len(hi)}

    def decode(self, name: str, value: JsonValue) -> bytes:
        hi = self.lo if self.hi is None else self.hi
        if (type(value) is not str or not _b64_len(self.lo) <= len(value) <= _b64_len(hi)
                or re.fullmatch(self.pattern, value) is None):
            raise _bad(name)
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):  # unreachable after the pattern; kept closed
            raise _bad(name) from None

    def encode(self, value: Any) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def _b64_len(n: int) -> int:
    return (4 * n + 2) // 3


@dataclass(frozen=True)
class Int(Kind):
    lo: int
    hi: int

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}

    def decode(self, name: str, value: JsonValue) -> int:
        # type() rather than isinstance(): JSON true is not the number 1.
        if type(value) is not int or not self.lo <= value <= self.hi:
            raise _bad(name)
        return value


@dataclass(frozen=True)
class Number(Kind):
    lo: float
    hi: float

    def schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.lo, "maximum": self.hi}

    def decode(self, name: str, value: JsonValue) -> float:
        # Bounds before isfinite(): a huge JSON integer would overflow the float conversion.
        if type(value) not in (int, float) or not self.lo <= value <= self.hi or not (
                math.isfinite(value)):
            raise _bad(name)
        return float(value)


class Bool(Kind):
    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def decode(self, name: str, value: JsonValue) -> bool:
        if type(value) is not bool:
            raise _bad(name)
        return value


class Timestamp(Kind):
    """An RFC 3339 date-time with an offset, always sent in UTC."""

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "minLength": 20, "maxLength": 40}

    def decode(self, name: str, value: JsonValue) -> datetime:
        text = _check_text(name, value, 20, 40)
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise _bad(name) from None
        if when.tzinfo is None:
            raise _bad(name)
        try:
            # An offset can push an extreme date past the calendar's ends.
            return when.astimezone(UTC)
        except OverflowError:
            raise _bad(name) from None

    def encode(self, value: Any) -> str:
        return str(value.astimezone(UTC).isoformat())


@dataclass(frozen=True)
class Nested(Kind):
    """A JSON object that is itself one :class:`Message` (an authorization inside the
    reply that also carries the shares' re-split)."""

    message: Message[Any]

    def schema(self) -> dict[str, Any]:
        return self.message.schema()

    def decode(self, name: str, value: JsonValue) -> Any:
        return self.message.from_json(value)

    def encode(self, value: Any) -> JsonValue:
        return self.message.to_json(value)


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Message(Generic[T]):
    """A JSON object with exactly ``fields`` (``optional`` ones may be left out)."""

    name: str
    build: Callable[..., T]
    fields: Mapping[str, Kind]
    optional: frozenset[str] = field(default_factory=frozenset)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [k for k in self.fields if k not in self.optional],
            "properties": {k: kind.schema() for k, kind in self.fields.items()},
        }

    def from_json(self, obj: JsonValue) -> T:
        if not isinstance(obj, dict):
            raise MalformedRequest(f"{self.name} must be a JSON object")
        unknown = sorted(k for k in obj if k not in self.fields)
        if unknown:
            # Key names are echoed only if short and printable: they come from strangers.
            shown = ", ".join(k if len(k) <= 40 and k.isprintable() else "?" for k in unknown)
            raise MalformedRequest(f"unknown field(s) in {self.name}: {shown}")
        missing = [k for k in self.fields if k not in obj and k not in self.optional]
        if missing:
            raise MalformedRequest(f"missing field(s) in {self.name}: {', '.join(missing)}")
        values = {k: kind.decode(k, obj[k]) for k, kind in self.fields.items() if k in obj}
        try:
            return self.build(**values)
        except (TypeError, ValueError):  # a cross-field rule of the dataclass
            raise MalformedRequest(f"inconsistent {self.name}") from None

    def to_json(self, value: T) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        for k, kind in self.fields.items():
            item = getattr(value, k)
            if item is not None or k not in self.optional:
                out[k] = kind.encode(item)
        return out


def _reject_constant(_name: str) -> float:
    raise MalformedRequest("body is not valid JSON")  # NaN and Infinity are not JSON


def _no_duplicates(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise MalformedRequest("body has a duplicate key")
    return out


def parse_json(data: bytes | bytearray, *, limit: int = MAX_BODY) -> JsonValue:
    """Strict JSON: UTF-8 only, at most ``limit`` bytes, no NaN, no duplicate keys."""
    if len(data) > limit:
        raise MalformedRequest(f"body larger than {limit} bytes")
    try:
        text = bytes(data).decode("utf-8")  # json.loads(bytes) would also guess UTF-16/32
        return json.loads(text, parse_constant=_reject_constant,
                          object_pairs_hook=_no_duplicates)
    except MalformedRequest:
        raise  # from the hooks: already says what was wrong
    except (UnicodeDecodeError, RecursionError, ValueError):
        # ValueError also covers an integer with more digits than Python converts.
        raise MalformedRequest("body is not valid JSON") from None


def loads(message: Message[T], data: bytes | bytearray, *, limit: int = MAX_BODY) -> T:
    """Decode one message from a request or response body."""
    return message.from_json(parse_json(data, limit=limit))


def dumps(message: Message[T], value: T) -> bytes:
    return json.dumps(message.to_json(value), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


# -- the field types of this protocol ---------------------------------------------------

_ID = Text(32, 32, "[0-9a-f]{32}")
_KEY32 = Bytes(32)
_SIG = Bytes(64)
_SEALED_KEY = Bytes(SEALED_KEY_LEN)  # a PIN verifier, sealed to the server
_SEALED_SIG = Bytes(SEALED_SIG_LEN)  # a PIN-key signature, sealed to the server
_ENVELOPE = Bytes(1, 4096)  # the server's own bound (_checks._MAX_ENVELOPE)
_AMOUNT = Int(1, 10**12)  # _payment.MAX_AMOUNT
_CURRENCY = Text(3, 3, "[A-Z]{3}")
_MERCHANT = Text(1, 256)  # the core strips it and enforces 64 characters, 256 bytes
_IDEMPOTENCY_KEY = Text(1, 128, "[A-Za-z0-9._:-]{1,128}")
_COUNT = Int(0, 2**31 - 1)
_SECONDS = Number(0, 2**53)
_NONCE = Bytes(16)
_MILLIS = Int(0, 2**53)  # Unix milliseconds
_VERSION = Int(0, 2**53)  # a card's share version
_REFRESH_KEY = Bytes(0, 32)  # an X25519 public key, or empty (the server checks which)
_SEALED_REFRESH = Bytes(SEALED_REFRESH_LEN)  # a re-split R, sealed to the device


@dataclass(frozen=True)
class Empty:
    """The body of a reply that carries nothing."""


@dataclass(frozen=True)
class ErrorBody:
    """Every error reply: a stable code (a ``VaultError.code``), a message for people,
    and for ``wrong_pin`` the attempts left."""

    error: str
    message: str
    attempts_left: int | None = None


def _empty() -> Empty:
    return Empty()


ENROLL_BEGIN = Message("EnrollBegin", EnrollBegin, {
    "card_id": _ID, "device_key": _KEY32, "blinded": _KEY32, "signature": _SIG,
    "wallet_key": _KEY32, "wallet_signature": _SIG},
    optional=frozenset({"wallet_key", "wallet_signature"}))
ENROLL_BEGIN_REPLY = Message("EnrollBeginReply", EnrollBeginReply, {
    "evaluated": _KEY32, "server_key": _KEY32})
ENROLL_FINISH = Message("EnrollFinish", EnrollFinish, {
    "card_id": _ID, "verifier": _SEALED_KEY, "envelope": _ENVELOPE, "device_signature": _SIG,
    "pin_signature": _SEALED_SIG})
EVALUATE = Message("EvaluateRequest", EvaluateRequest, {
    "card_id": _ID, "nonce": _NONCE, "timestamp": _MILLIS, "blinded": _KEY32,
    "signature": _SIG, "share_version": _VERSION, "refresh_key": _REFRESH_KEY,
    "possession": Bytes(0, 64)})
EVALUATE_REPLY = Message("EvaluateReply", EvaluateReply, {
    "evaluated": _KEY32, "attempts_left": _COUNT, "challenge_id": _ID, "nonce": _KEY32,
    "expires_at": _SECONDS, "share_version": _VERSION, "refresh": _SEALED_REFRESH},
    optional=frozenset({"refresh"}))
AUTHORIZE = Message("AuthorizeRequest", AuthorizeRequest, {
    "card_id": _ID, "challenge_id": _ID, "amount": _AMOUNT, "currency": _CURRENCY,
    "merchant": _MERCHANT, "idempotency_key": _IDEMPOTENCY_KEY, "envelope": _ENVELOPE,
    "pin_signature": _SEALED_SIG, "refresh_key": _KEY32})
AUTHORIZATION = Message("Authorization", Authorization, {
    "approved": Bool(), "approval_code": NullableText(64), "decline_reason": NullableText(64),
    "masked_pan": Text(1, 32), "amount": _AMOUNT, "currency": _CURRENCY,
    "merchant": _MERCHANT, "idempotency_key": _IDEMPOTENCY_KEY, "timestamp": Timestamp()})
AUTHORIZE_REPLY = Message("AuthorizeReply", AuthorizeReply, {
    "authorization": Nested(AUTHORIZATION), "share_version": _VERSION,
    "refresh": _SEALED_REFRESH}, optional=frozenset({"refresh"}))
CHANGE_PIN_BEGIN = Message("ChangePinBegin", ChangePinBegin, {
    "card_id": _ID, "challenge_id": _ID, "new_blinded": _KEY32, "pin_signature": _SEALED_SIG})
CHANGE_PIN_FINISH = Message("ChangePinFinish", ChangePinFinish, {
    "card_id": _ID, "challenge_id": _ID, "new_verifier": _SEALED_KEY,
    "old_pin_signature": _SEALED_SIG, "new_pin_signature": _SEALED_SIG})
REENROLL_BEGIN = Message("ReenrollBegin", ReenrollBegin, {
    "card_id": _ID, "nonce": _NONCE, "timestamp": _MILLIS, "blinded": _KEY32,
    "signature": _SIG})
REENROLL_FINISH = Message("ReenrollFinish", ReenrollFinish, {
    "card_id": _ID, "challenge_id": _ID, "verifier": _SEALED_KEY, "envelope": _ENVELOPE,
    "device_signature": _SIG, "pin_signature": _SEALED_SIG})
DELETE = Message("DeleteRequest", DeleteRequest, {
    "card_id": _ID, "nonce": _NONCE, "timestamp": _MILLIS, "signature": _SIG})
CARD_STATUS = Message("CardStatusRequest", CardStatusRequest, {
    "card_id": _ID, "nonce": _NONCE, "timestamp": _MILLIS, "signature": _SIG})
CARD_STATUS_REPLY = Message("CardStatusReply", CardStatusReply, {
    "guesses_used": _COUNT, "guess_limit": Int(1, 2**31 - 1), "locked": Bool(),
    "cloned": Bool(), "share_version": _VERSION})
SERVER_INFO = Message("ServerInfo", ServerInfo, {
    "guess_limit": Int(1, 2**31 - 1), "challenge_ttl": _SECONDS})
EMPTY = Message("Empty", _empty, {})
ERROR = Message("Error", ErrorBody, {
    "error": Text(1, 64, "[a-z_]{1,64}"), "message": Text(1, 500), "attempts_left": _COUNT},
    optional=frozenset({"attempts_left"}))

MESSAGES: tuple[Message[Any], ...] = (
    ENROLL_BEGIN, ENROLL_BEGIN_REPLY, ENROLL_FINISH, EVALUATE,
    EVALUATE_REPLY, AUTHORIZE, AUTHORIZATION, AUTHORIZE_REPLY, CHANGE_PIN_BEGIN,
    CHANGE_PIN_FINISH, DELETE,
    CARD_STATUS, CARD_STATUS_REPLY, REENROLL_BEGIN, REENROLL_FINISH, SERVER_INFO, EMPTY, ERROR,
)
"""Every message, for the OpenAPI document's ``components.schemas``."""
