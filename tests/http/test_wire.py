"""The JSON codec: round trips for every message, strictness, and fuzzing of every decoder.

Strategies are derived from the same field definitions the decoders enforce, and each
encoding is also checked against the JSON Schema the OpenAPI document publishes, so
the documented schema, the decoder and the encoder cannot drift apart.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitvault import Authorization, MalformedRequest
from splitvault._wire import (
    AUTHORIZATION,
    MAX_BODY,
    MESSAGES,
    Bool,
    Bytes,
    Int,
    Kind,
    Message,
    Nested,
    NullableText,
    Number,
    Text,
    Timestamp,
    dumps,
    loads,
    parse_json,
)

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
NAMES = [m.name for m in MESSAGES]


def values(kind: Kind) -> st.SearchStrategy[Any]:
    if isinstance(kind, Text):
        if kind.pattern is not None:
            return st.from_regex(kind.pattern, fullmatch=True).filter(
                lambda s: kind.lo <= len(s) <= kind.hi)
        return st.text(min_size=kind.lo, max_size=kind.hi)
    if isinstance(kind, NullableText):
        return st.none() | st.text(min_size=1, max_size=kind.hi)
    if isinstance(kind, Bytes):
        return st.binary(min_size=kind.lo, max_size=kind.lo if kind.hi is None else kind.hi)
    if isinstance(kind, Int):
        return st.integers(kind.lo, kind.hi)
    if isinstance(kind, Number):
        return st.floats(kind.lo, kind.hi, allow_nan=False, allow_infinity=False)
    if isinstance(kind, Bool):
        return st.booleans()
    if isinstance(kind, Timestamp):
        return st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1),
                            timezones=st.just(UTC))
    if isinstance(kind, Nested):
        return messages(kind.message)
    raise AssertionError(kind)


def messages(message: Message[Any]) -> st.SearchStrategy[Any]:
    fields = {k: values(kind) for k, kind in message.fields.items()}
    if message is AUTHORIZATION:
        # approved exactly when there is an approval code, declined exactly when a reason
        return st.fixed_dictionaries(fields).map(_consistent).map(
            lambda v: Authorization(**v))
    return st.fixed_dictionaries(fields).map(lambda v: message.build(**v))


def _consistent(v: dict[str, Any]) -> dict[str, Any]:
    if v["approved"]:
        return {**v, "approval_code": v["approval_code"] or "A1B2C3", "decline_reason": None}
    return {**v, "approval_code": None, "decline_reason": v["decline_reason"] or "declined"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                               max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
@FAST
@given(data=st.data())
def test_round_trip(message: Message[Any], data: st.DataObject) -> None:
    value = data.draw(messages(message))
    encoded = dumps(message, value)
    assert loads(message, encoded) == value
    assert len(encoded) <= MAX_BODY
    # What we send validates against what we document.
    assert jsonschema_rs.validator_for(message.schema()).is_valid(json.loads(encoded))


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
@FAST
@given(raw=st.binary(max_size=300))
def test_decoder_fuzz_bytes(message: Message[Any], raw: bytes) -> None:
    """Any bytes: a message or MalformedRequest, never another exception."""
    with contextlib.suppress(MalformedRequest):
        loads(message, raw)


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
@FAST
@given(data=st.data())
def test_decoder_fuzz_fields(message: Message[Any], data: st.DataObject) -> None:
    """A valid message with one field replaced, removed or added: the decoder accepts
    exactly what the published schema accepts (or is stricter), and never crashes."""
    obj = message.to_json(data.draw(messages(message)))
    action = data.draw(st.sampled_from(["replace", "remove", "add"]))
    keys = sorted(message.fields)
    if action == "replace" and keys:
        obj[data.draw(st.sampled_from(keys))] = data.draw(json_values)
    elif action == "remove" and keys:
        del obj[data.draw(st.sampled_from(keys))]
    else:
        obj[data.draw(st.text(max_size=12))] = data.draw(json_values)
    try:
        message.from_json(obj)
    except MalformedRequest:
        return
    assert jsonschema_rs.validator_for(message.schema()).is_valid(obj)


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
@FAST
@given(obj=json_values)
def test_decoder_fuzz_json(message: Message[Any], obj: Any) -> None:
    with contextlib.suppress(MalformedRequest):
        message.from_json(obj)


@pytest.mark.parametrize("text", [
    b'{"a": 1, "a": 2}', b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}',
    b"\xef\xbb\xbf{}", b'{"a": "\xff"}', b"[" * 5000 + b"]" * 5000, b"1" * 5000, b"",
    '{"a": 1}'.encode("utf-16"),
])
def test_strict_json(text: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_json(text)


def test_oversize_is_refused() -> None:
    with pytest.raises(MalformedRequest, match="larger than"):
        parse_json(b" " * (MAX_BODY + 1))


@pytest.mark.parametrize("n", range(0, 10))
def test_base64url_is_canonical(n: int) -> None:
    """Exactly one string decodes to each byte string: no padding, no spare bits."""
    kind = Bytes(0, 64)
    good = kind.encode(bytes(range(n)))
    assert kind.decode("f", good) == bytes(range(n))
    dangling = good + "A" if len(good) % 4 == 0 else "=="  # 4k+1 characters never decode
    for bad in (good + "=", good + "==", good.replace("A", "+"), dangling):
        if bad != good:
            with pytest.raises(MalformedRequest):
                kind.decode("f", bad)
    if n % 3:
        last = good[-1]
        flipped = "B" if last == "A" else chr(ord(last) + 1) if last != "w" else "x"
        with pytest.raises(MalformedRequest):
            kind.decode("f", good[:-1] + flipped)


def test_messages_never_echo_values() -> None:
    message = MESSAGES[0]
    secret = "s3cr3t-value-that-must-not-show"
    with pytest.raises(MalformedRequest) as caught:
        message.from_json({"card_id": secret, "device_key": secret, "blinded": secret,
                           "signature": secret})
    assert secret not in str(caught.value)
    with pytest.raises(MalformedRequest) as caught:
        message.from_json({secret * 3: 1})
    assert secret not in str(caught.value)


def test_inconsistent_authorization_is_malformed() -> None:
    good = {"approved": True, "approval_code": None, "decline_reason": None,
            "masked_pan": "•••• 1111", "amount": 1, "currency": "USD", "merchant": "m",
            "idempotency_key": "k", "timestamp": "2030-01-01T00:00:00+00:00"}
    with pytest.raises(MalformedRequest, match="inconsistent"):
        AUTHORIZATION.from_json(good)
    with pytest.raises(MalformedRequest):
        AUTHORIZATION.from_json({**good, "approval_code": "X", "timestamp": "2030-01-01"})
