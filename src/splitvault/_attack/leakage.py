"""Scenario 6, leakage: what the logs, warnings and error messages of real flows hold.

The attacker reads everything a deployment's operators, log pipeline and error
reporter would see: every log record (root logger at DEBUG, formatted both as the
server's JSON lines and as Python's default text with tracebacks), every warning,
every result's ``repr`` and every exception's message, ``repr`` and traceback, and the
``repr`` of every local variable in every frame of those tracebacks (what an error
reporter such as Sentry captures). Through the HTTP app, also every request and
response body: what a network attacker sees without TLS.

The flows are a wallet's whole life with its failures (:func:`~._flows.complete_flows`):
enroll, pay, retry, conflict, decline, wrong PIN to lockout, PIN change, delete, an
acquirer that is down, one that times out after charging, a tampered message, an
unknown card, a malformed payment. The acquirers in them put the PAN into their own
exception messages, as careless gateways do.

Searched for, in every encoding: the PANs, holder names, every PIN used, and the bytes
of every share and key that can be pulled from both stores: device share, server share
(unwrapped), the data key they XOR to, OPRF key, device secret, device signing seed,
the server's envelope, audit and ledger keys, and the KEK itself. A positive control
plants one secret in a log line first: the search must find it.

In-process only: a remote deployment's logs are not ours to read.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from .._errors import VaultError
from ..crypto.shares import combine
from ._flows import KOREAN_HOLDER, NEW_PIN, Flows, complete_flows
from ._harness import (
    HOLDER,
    OTHER_PIN,
    PAN,
    PIN,
    SECOND_PAN,
    AttackResult,
    Deployment,
    Lab,
    Options,
    Victim,
    guarded,
)
from ._needles import Needles

__all__ = ["exception_chains", "run", "secrets_of", "through_http", "through_library"]

HAD = "every log line, warning, error and traceback (with locals) of a wallet's life"
_HARNESS = str(Path(__file__).parent)
_REPR_LIMIT = 4096
"""Error reporters truncate each local's repr; this is more than any of them keeps."""


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._text = logging.Formatter("%(levelname)s %(name)s %(message)s")
        self._json: logging.Formatter | None = None
        with contextlib.suppress(ImportError):
            from ..hazmat import JsonFormatter

            self._json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self._text.format(record))
        if self._json is not None:
            self.lines.append(self._json.format(record))
        self.lines.append(repr(vars(record)))


@contextlib.contextmanager
def _captured() -> Iterator[tuple[_Capture, list[warnings.WarningMessage]]]:
    root = logging.getLogger()
    handler = _Capture()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield handler, caught
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def secrets_of(lab: Lab, victim: Victim, flows: Flows) -> Needles:
    """Every secret either store holds for the cards still enrolled, and the texts."""
    needles = Needles()
    for label, text in (("PAN", PAN), ("second PAN", SECOND_PAN), ("holder", HOLDER),
                        ("holder (Korean)", KOREAN_HOLDER), ("PIN", PIN),
                        ("wrong PIN", OTHER_PIN), ("new PIN", NEW_PIN)):
        needles.text(label, text)
    server = lab.server
    if server is None:
        raise RuntimeError("needs the in-process server")
    inspector = server.inspector()
    for role, card_id in flows.cards.items():
        if role == "deleted":
            continue
        held = victim.device._store.get(card_id)
        ((share_blob, oprf_blob),) = inspector.query(
            "SELECT share, oprf_key FROM cards WHERE card_id = ?", card_id)
        server_share = inspector.unwrap("share", card_id, bytes(share_blob))
        needles.data(f"{role} device share", held.device_share)
        needles.data(f"{role} server share", server_share)
        needles.data(f"{role} data key", combine(held.device_share, server_share))
        needles.data(f"{role} OPRF key", inspector.unwrap("oprf-key", card_id, bytes(oprf_blob)))
        needles.data(f"{role} device secret", held.device_secret)
        needles.data(f"{role} signing seed", held.sign_seed)
    for name, material in inspector.key_material().items():
        needles.data(name, material)  # the KEKs, envelope, audit and ledger keys
    return needles


def _exception_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), repr(exc.args),
             "".join(traceback.format_exception(exc))]
    tb: TracebackType | None = exc.__traceback__
    for frame, _ in traceback.walk_tb(tb):
        if frame.f_code.co_filename.startswith(_HARNESS):
            continue  # the attacker's own frames: it typed the PIN, it may hold it
        for name, value in frame.f_locals.items():
            try:
                texts.append(f"{frame.f_code.co_name}.{name} = {repr(value)[:_REPR_LIMIT]}")
            except Exception as failed:  # a repr that raises is what a reporter sees too
                texts.append(f"{frame.f_code.co_name}.{name} = <repr failed: {failed!r}>")
    return texts


def _leak_hunt(lab: Lab, over_http: bool) -> AttackResult:
    where = "through the HTTP app" if over_http else "through the library"
    name = f"search logs, warnings and errors for secrets, {where}"

    def attack() -> AttackResult:
        victim = lab.device(over_http=over_http)
        with _captured() as (handler, caught):
            flows = complete_flows(lab, victim, failures=True)
            needles = secrets_of(lab, victim, flows)
            # Positive control: a planted secret in a log line must be found.
            control_label = "main device share"
            logging.getLogger("splitvault.attack").debug(
                "planted %s", needles.forms[control_label]["hex"].decode())
        planted = handler.lines[-3:]
        control = any(control_label in hit for line in planted for hit in needles.search(line))
        texts = handler.lines[:-3]
        texts += [f"{w.category.__name__}: {w.message}" for w in caught]
        errors = 0
        for label, outcome in flows.outcomes:
            if isinstance(outcome, BaseException):
                errors += 1
                texts += [f"{label}: {t}" for t in _exception_texts(outcome)]
            else:
                texts += [f"{label}: {outcome!r}", f"{label}: {outcome!s}"]
        bodies = [b for bridge in lab.bridges for b in bridge.bodies]
        found = sorted({hit for text in texts for hit in needles.search(text)})
        found += sorted({f"HTTP body: {hit}" for body in bodies for hit in needles.search(body)})
        unexpected = sorted({type(o).__name__ for _, o in flows.outcomes
                             if isinstance(o, Exception) and not isinstance(o, VaultError)})
        got = "; ".join(found[:6]) if found else (
            f"{len(handler.lines) - 3} log lines, {len(caught)} warnings, {errors} errors, "
            f"{len(bodies)} HTTP bodies: none holds any of {len(needles.labels())} secrets")
        detail = "" if control else "positive control failed: a planted secret was missed"
        if unexpected:
            detail += f" untyped errors in the flows: {', '.join(unexpected)}"
        return AttackResult(name, HAD, got, not found and control, detail.strip())

    return guarded(name, HAD, attack)


def through_library(lab: Lab) -> AttackResult:
    return _leak_hunt(lab, over_http=False)


def exception_chains(lab: Lab) -> AttackResult:
    """Every exception the library raised, with the exceptions chained to it, even those
    hidden by ``raise ... from None``: the object still reaches the caller as
    ``__context__``, and any code that walks the chain regardless reads it."""
    name = "walk each error's chained exceptions, suppressed ones included"
    had = "every exception the library raised, and its __context__ chain"

    def attack() -> AttackResult:
        victim = lab.device()
        flows = complete_flows(lab, victim, failures=True)
        needles = secrets_of(lab, victim, flows)
        found: set[str] = set()
        for label, outcome in flows.outcomes:
            chained = outcome.__context__ if isinstance(outcome, BaseException) else None
            while chained is not None:
                found.update(f"{label}: {type(chained).__name__}: {hit}"
                             for hit in needles.search(f"{chained!s} {chained!r}"))
                chained = chained.__context__
        got = "; ".join(sorted(found)[:3]) if found else "no chained exception holds a secret"
        return AttackResult(name, had, got, not found,
                            "fix: raise the library's error outside the except block, so "
                            "nothing is chained" if found else "")

    return guarded(name, had, attack)


def through_http(lab: Lab) -> AttackResult:
    return _leak_hunt(lab, over_http=True)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (through_library, through_http, exception_chains):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
