"""Scenario 8, malformed input: every decoder and the card parser fuzzed with Hypothesis.

The claim: hostile bytes or values only ever produce the decoder's own typed error;
nothing crashes with another exception, and the server's state does not change.

Decoders fuzzed: the HTTP wire decoder of every message (random bytes, random JSON,
and objects with the message's keys holding random JSON values), the device's
decoder of server replies (random status and body: a hostile server), the card parser
and the sealed card record decoder, the length-prefixed signed-message decoder, the
PIN parser, the payment validator, the KEK file parser, and the share server's message
handlers (well-shaped messages with random content, about an enrolled card, with live
challenge ids, whose database must be unchanged afterwards, row for row).

Besides the drawn examples, a few known hostile inputs are tried on every run (dates
pushed past the ends of the calendar by their offset, deep nesting, a lone surrogate,
an infinite number), so a bug found once is found every time.

Against a deployment (``--server``) only its HTTP routes are in reach: malformed bodies
must get a typed 4xx answer, never a 5xx.

Hypothesis is a development dependency: without it the scenario is SKIPPED, never
passed. Each run draws fresh examples (``Options.fuzz_examples`` per decoder).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .. import _errors
from .._authorization import Authorization
from .._card import Card, brand_of, luhn_valid, normalise_pan
from .._payment import validate_payment
from .._pin import Pin
from .._protocol import (
    AuthorizeRequest,
    ChangePinBegin,
    ChangePinFinish,
    DeleteRequest,
    EnrollBegin,
    EnrollFinish,
    EvaluateRequest,
)
from ..crypto import oprf
from ..crypto.encoding import decode
from ..crypto.errors import DecodeError
from ._harness import PIN, AttackResult, Deployment, Lab, Options, Victim, guarded, skipped
from ._requests import signed_evaluate

__all__ = ["run"]

HAD = "any bytes or values"


class _Escaped(Exception):
    """An input made the target raise something other than its typed error."""


def _fuzz(name: str, strategy: Any, target: Callable[[Any], object],
          allowed: tuple[type[BaseException], ...], examples: int,
          after: Callable[[], str | None] | None = None,
          known: Sequence[Any] = (), show: Callable[[Any], str] = repr) -> AttackResult:
    """Run ``target`` on ``examples`` drawn inputs, after the ``known`` hostile ones."""
    from hypothesis import HealthCheck, Phase, example, given, settings

    escaped: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(value: Any) -> None:
        try:
            target(value)
        except allowed:
            pass
        except Exception as exc:
            escaped.append(f"{type(exc).__name__} for input {show(value)[:160]}")
            raise _Escaped from None

    for value in known:
        prop = example(value)(prop)

    def attack() -> AttackResult:
        try:
            prop()
        except Exception:  # _Escaped, or a group of them from several known inputs
            if not escaped:
                raise
        changed = after() if after is not None else None
        if escaped:
            return AttackResult(name, HAD, f"crash: {escaped[0]}", False)
        if changed:
            return AttackResult(name, HAD, f"state changed: {changed}", False)
        typed = "/".join(sorted({e.__name__ for e in allowed})) or "typed 4xx errors"
        return AttackResult(name, HAD, f"{examples} inputs: only {typed}"
                            + (", state unchanged" if after is not None else ""), True)

    return guarded(name, HAD, attack)


def _json(st: Any) -> Any:
    scalars = (st.none() | st.booleans() | st.integers() | st.floats()
               | st.text(max_size=40) | _hex_id(st))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=8)


def _hex_id(st: Any) -> Any:
    return st.binary(min_size=16, max_size=16).map(bytes.hex)


def _valid(st: Any, kind: Any) -> Any:
    """A value the wire decoder accepts for a field of this kind."""
    from .. import _wire

    if isinstance(kind, _wire.Text):
        return st.from_regex(kind.pattern, fullmatch=True) if kind.pattern else st.text(
            min_size=kind.lo, max_size=kind.hi)
    if isinstance(kind, _wire.NullableText):
        return st.none() | st.text(min_size=1, max_size=kind.hi)
    if isinstance(kind, _wire.Bytes):
        top = kind.lo if kind.hi is None else min(kind.hi, 200)
        return st.binary(min_size=kind.lo, max_size=top).map(kind.encode)
    if isinstance(kind, _wire.Int):
        return st.integers(kind.lo, kind.hi)
    if isinstance(kind, _wire.Number):
        return st.floats(kind.lo, kind.hi)
    if isinstance(kind, _wire.Bool):
        return st.booleans()
    if isinstance(kind, _wire.Timestamp):
        offsets = st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
        return st.datetimes(timezones=offsets.map(timezone)).map(datetime.isoformat)
    return _json(st)


def _spoil(t: tuple[dict[str, Any], str | None, bool, Any]) -> dict[str, Any]:
    body, field, drop, junk = t
    if field is not None:
        if drop:
            body.pop(field)
        else:
            body[field] = junk
    return body


def _bodies(st: Any, message: Any) -> Any:
    """(message, body): random bytes, random JSON, or a body valid in every field but
    one, which holds random JSON or is missing."""
    valid = st.fixed_dictionaries({k: _valid(st, kind) for k, kind in message.fields.items()})
    nearly = st.tuples(valid, st.sampled_from([*message.fields, None]),
                       st.booleans(), _json(st)).map(_spoil)
    return st.tuples(st.just(message), st.one_of(
        st.binary(max_size=300),
        _json(st).map(lambda v: json.dumps(v).encode()),
        nearly.map(lambda d: json.dumps(d).encode()),
    ))


def _wire_attack(examples: int) -> AttackResult:
    from hypothesis import strategies as st

    from .. import _wire

    strategy = st.one_of([_bodies(st, message) for message in _wire.MESSAGES])
    return _fuzz(f"HTTP wire decoders ({len(_wire.MESSAGES)} messages)", strategy,
                 lambda pair: _wire.loads(pair[0], pair[1]),
                 (_errors.MalformedRequest,), examples * 3, known=_known_bodies(),
                 show=lambda pair: f"{pair[0].name} ...{pair[1][-100:]!r}")


def _known_bodies() -> list[tuple[Any, bytes]]:
    """Hostile bodies worth trying every time: dates at the ends of the calendar with an
    offset that pushes them past it, deep nesting, a lone surrogate, an infinite number."""
    from .. import _wire

    reply = json.loads(_wire.dumps(_wire.AUTHORIZATION, Authorization(
        True, "ABC234", None, "\u2022\u2022\u2022\u2022 1111", 1, "KRW", "m", "k",
        datetime.now(UTC))))
    known: list[tuple[Any, bytes]] = []
    for stamp in ("0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"):
        known.append((_wire.AUTHORIZATION, json.dumps({**reply, "timestamp": stamp}).encode()))
    known += [(_wire.ENROLL_BEGIN, b"[" * 100_000),
              (_wire.EVALUATE, b'{"card_id": "\\ud800"}'),
              (_wire.EVALUATE, b'{"card_id": "' + b"a" * 32 + b'", "nonce": "' + b"A" * 22
               + b'", "timestamp": 1e999, "blinded": "' + b"A" * 43 + b'", "signature": "'
               + b"A" * 86 + b'"}'),
              (_wire.EVALUATE_REPLY, b'{"evaluated": "' + b"A" * 43 + b'", "attempts_left": 1, '
               b'"challenge_id": "00", "nonce": "", "expires_at": 1e999}')]
    return known


class _ServerFault(Exception):
    """The deployment answered a malformed request with a 5xx or an undecodable body."""


def _http_attack(name: str, service: Any, examples: int, *,
                 after: Callable[[], str | None] | None = None) -> AttackResult:
    """Malformed bodies POSTed to every route of a real HTTP app: each must be answered
    with a typed 4xx error body (or a 200), never a 5xx. With ``after``, every route but
    (none creates anything for a request no device signed)."""
    from hypothesis import strategies as st

    from .. import _wire
    from .._http_api import ROUTES

    paths = {route.request.name: route.path for route in ROUTES if route.request is not None}
    messages = [m for m in _wire.MESSAGES if m.name in paths]
    strategy = st.one_of([_bodies(st, message) for message in messages])

    def send(pair: tuple[Any, bytes]) -> None:
        response = service._client.post(paths[pair[0].name], content=pair[1],
                                         headers={"content-type": "application/json"})
        if response.status_code >= 500:
            raise _ServerFault(f"HTTP {response.status_code}")
        if response.status_code != 200:
            _wire.loads(_wire.ERROR, response.content)  # a typed error body, or a fault

    return _fuzz(f"{name} ({len(paths)} routes)", strategy, send, (), examples, after)


def _remote_attack(url: str, pin_sha256: str | None, examples: int) -> AttackResult:
    from ..hazmat import HttpShareService

    service = HttpShareService(url, pin_sha256=pin_sha256)
    try:
        return _http_attack("the deployment's HTTP routes", service, examples)
    finally:
        service.close_transport()


def _reply_attack(examples: int) -> AttackResult:
    from hypothesis import strategies as st

    from .._http_api import ROUTES
    from ..hazmat import decode_reply

    strategy = st.tuples(st.sampled_from(ROUTES), st.integers(100, 599),
                         st.one_of(st.binary(max_size=200),
                                   _json(st).map(lambda v: json.dumps(v).encode())))
    authorize = next(route for route in ROUTES if route.method == "authorize")
    known = [(authorize, 200, body) for message, body in _known_bodies()
             if message.name == "Authorization"]
    return _fuzz("device's decoder of server replies", strategy,
                 lambda t: decode_reply(t[0], t[1], t[2]), (_errors.VaultError,), examples,
                 known=known, show=lambda t: f"{t[0].method} {t[1]} ...{t[2][-100:]!r}")


def _parser_attacks(examples: int, root: Path) -> list[AttackResult]:
    from hypothesis import strategies as st

    pan_text = st.text(alphabet="0123456789 -/\u0660\uff10x", max_size=24) | st.text()
    anything = st.one_of(st.none(), st.integers(), st.floats(), st.text(), st.binary())

    def card(t: tuple[Any, Any, Any]) -> None:
        brand_of(t[0])
        luhn_valid(t[0])
        try:
            normalise_pan(t[0])
        finally:
            Card(t[0], t[1], t[2])

    def record(data: bytes) -> None:
        Card._from_record(data)

    def kek(data: bytes) -> None:
        from ..hazmat import Kek

        path = root / "fuzz.kek"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        Kek.load(path).wipe()

    def pin(value: Any) -> None:
        if isinstance(value, bytearray):
            Pin.from_buffer(value).wipe()
        else:
            Pin.from_digits(value).wipe()

    record_like = st.one_of(st.binary(max_size=200), st.fixed_dictionaries({
        "v": _json(st), "pan": pan_text, "expiry": st.text(max_size=8),
        "holder": st.text(max_size=20)}).map(lambda d: json.dumps(d).encode()))
    kek_like = st.one_of(st.binary(max_size=120), st.builds(
        lambda kid, key: f"splitvault-kek-v1 {kid} {key}\n".encode(),
        st.text(max_size=20), st.text(max_size=50)))
    return [
        _fuzz("card parser (PAN, expiry, holder)",
              st.tuples(pan_text | anything, st.text(max_size=10) | anything,
                        st.text(max_size=70) | anything), card, (_errors.InvalidCard,),
              examples),
        _fuzz("sealed card record decoder", record_like, record, (_errors.InvalidCard,),
              examples),
        _fuzz("signed-message decoder", st.tuples(st.binary(max_size=20),
                                                 st.binary(max_size=120), st.integers(0, 6)),
              lambda t: decode(t[0], t[1], t[2]), (DecodeError,), examples),
        _fuzz("PIN parser", anything | st.text(alphabet="0123456789\u0661", max_size=14)
              | st.binary(max_size=14).map(bytearray), pin, (_errors.InvalidPin,), examples),
        _fuzz("payment validator", st.tuples(anything | st.integers(), anything | st.text(
              max_size=4), anything, anything), lambda t: validate_payment(*t),
              (_errors.InvalidPayment,), examples),
        _fuzz("KEK file parser", kek_like, kek, (_errors.ConfigurationError,), examples),
    ]


def _server_attack(lab: Lab, examples: int) -> AttackResult:
    from hypothesis import strategies as st

    server = lab.server
    if server is None:
        raise RuntimeError("needs the in-process server")
    victim = lab.device()
    card_id = lab.enroll(victim)
    live = _live_challenges(victim, card_id, 3)
    ids = st.sampled_from([card_id, *live]) | _hex_id(st)
    ids = ids | st.text(max_size=40)
    blob = st.binary(min_size=32, max_size=32) | st.binary(max_size=5000)
    sig = st.binary(min_size=64, max_size=64) | st.binary(max_size=80)
    small = st.integers(1, 10**12) | st.integers()
    nonce = st.binary(min_size=16, max_size=16) | st.binary(max_size=40)
    now = int(server.now() * 1000)
    stamp = st.integers(now - 200_000, now + 200_000) | st.integers() | st.booleans()
    messages = st.one_of(
        st.builds(EnrollBegin, ids, blob, blob, sig),
        st.builds(EnrollFinish, ids, blob, blob, sig, sig),
        st.builds(EvaluateRequest, ids, nonce, stamp, blob, sig),
        st.builds(AuthorizeRequest, ids, ids, small, st.sampled_from(["KRW", "USD", "XXX"]),
                  st.text(max_size=70), st.text(max_size=20), blob, sig),
        st.builds(ChangePinBegin, ids, ids, blob, sig),
        st.builds(ChangePinFinish, ids, ids, blob, sig, sig),
        st.builds(DeleteRequest, ids, nonce, stamp, sig),
    )
    methods: dict[type, Callable[[Any], object]] = {
        EnrollBegin: server.enroll_begin, EnrollFinish: server.enroll_finish,
        EvaluateRequest: server.evaluate, AuthorizeRequest: server.authorize,
        ChangePinBegin: server.change_pin_begin, ChangePinFinish: server.change_pin_finish,
        DeleteRequest: server.delete}
    changed = _unchanged(lab.server_path)
    return _fuzz("share server message handlers", messages,
                 lambda m: methods[type(m)](m), (_errors.VaultError,), examples, changed)


def _live_challenges(victim: Victim, card_id: str, count: int) -> list[str]:
    """Ids of challenges the server issued and still waits on: evaluations signed with
    the victim's device key, whose proofs never come (each spends a guess)."""
    stored = victim.device._store.get(card_id)
    live = []
    for _ in range(count):
        _, blinded = oprf.blind(PIN.encode())
        live.append(victim.wire.evaluate(signed_evaluate(card_id, stored.sign_seed, blinded,
                                                         card=stored)).challenge_id)
    return live


def _app_attack(lab: Lab, examples: int) -> AttackResult:
    """The HTTP app in this process, in front of a server with an enrolled card."""
    from ._asgi import http_service

    if lab.server is None:
        raise RuntimeError("needs the in-process server")
    victim = lab.device()
    lab.enroll(victim)
    service, bridge = http_service(lab.server)
    lab.bridges.append(bridge)
    return _http_attack("the HTTP app", service, examples, after=_unchanged(lab.server_path))


def _unchanged(path: Path) -> Callable[[], str | None]:
    """A check that says which tables changed since it was made, or None. The
    ``workers`` table is left out: every server rewrites its own heartbeat row there
    every few seconds whatever it is sent."""
    before = _snapshot(path)

    def changed() -> str | None:
        after = _snapshot(path)
        diff = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
        return f"tables {', '.join(diff)}" if diff else None

    return changed


def _snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'workers' "
            "ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)  # noqa: S608  # nosec B608: names from sqlite_master
                for t in tables}
    finally:
        conn.close()


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        return [skipped("fuzz every decoder", HAD,
                        "Hypothesis is not installed (pip install splitvault[dev])")]
    n = options.fuzz_examples
    if deployment.url is not None:
        # Against a deployment only its routes are in reach; the decoders below are this
        # installation's own code, fuzzed by the in-process run.
        return [_remote_attack(deployment.url, deployment.pin_sha256, n),
                skipped("local decoders and the server's handlers", HAD,
                        "this installation's code, not the deployment: run without --server")]
    results = [_wire_attack(n), _reply_attack(n)]
    with deployment.lab() as lab:
        results += _parser_attacks(n, lab.root)
        results.append(guarded("share server message handlers", HAD,
                               lambda: _server_attack(lab, n)))
        results.append(guarded("the HTTP app", HAD, lambda: _app_attack(lab, n)))
    return results
