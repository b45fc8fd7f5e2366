"""Attacks on the protocol messages: replay, tampering, stale challenges, strangers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import splitvault as sv
from splitvault._protocol import AuthorizeRequest, EvaluateRequest
from splitvault.crypto import oprf
from splitvault.crypto.signing import sign
from support import pay

pytestmark = pytest.mark.security


class Recorder:
    """A man in the middle: sees every message, may rewrite one, may stall the clock."""

    def __init__(self, server: sv.ShareServer) -> None:
        self.server = server
        self.sent: list[Any] = []
        self.rewrite: Callable[[Any], Any] | None = None
        self.before_authorize: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        target = getattr(self.server, name)

        def call(*args: Any) -> Any:
            if name == "authorize" and self.before_authorize:
                self.before_authorize()
            if args and self.rewrite is not None:
                args = (self.rewrite(args[0]),)
            self.sent.extend(args)
            return target(*args)

        return call


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mitm(tmp_path: Path, clock: Clock) -> Recorder:
    return Recorder(sv.ShareServer.open(tmp_path / "s.db", clock=clock))


@pytest.fixture
def victim(tmp_path: Path, mitm: Recorder) -> sv.Device:
    return sv.Device(sv.device._store.DeviceStore(tmp_path / "d.db"), mitm,
                     kdf=sv.KdfProfile.TEST_ONLY)


def _calls(mitm: Recorder) -> int:
    return len(mitm.server.acquirer.calls)  # type: ignore[attr-defined]


def test_replayed_authorization_is_refused(victim: sv.Device, mitm: Recorder,
                                           card: sv.Card, pin: sv.Pin) -> None:
    """A captured authorization sent again is refused: its challenge is single-use."""
    card_id = victim.enroll(card, pin)
    pay(victim, card_id, pin)
    captured = next(m for m in mitm.sent if isinstance(m, AuthorizeRequest))
    with pytest.raises(sv.InvalidChallenge):
        mitm.server.authorize(captured)
    assert _calls(mitm) == 1


@pytest.mark.parametrize(
    "field, value",
    [("amount", 1_000_000), ("merchant", "Attacker Ltd"), ("currency", "USD"),
     ("idempotency_key", "order-2")],
)
def test_tampered_payment_never_reaches_acquirer(victim: sv.Device, mitm: Recorder,
                                                 card: sv.Card, pin: sv.Pin, field: str,
                                                 value: object) -> None:
    """Changing amount, merchant, currency or idempotency key in flight breaks the PIN
    proof: the server sees a wrong PIN and the acquirer is never called."""
    card_id = victim.enroll(card, pin)
    mitm.rewrite = lambda m: (dataclasses.replace(m, **{field: value})
                              if isinstance(m, AuthorizeRequest) else m)
    with pytest.raises(sv.WrongPin):
        pay(victim, card_id, pin)
    assert _calls(mitm) == 0


def test_tampered_card_id_is_refused(victim: sv.Device, mitm: Recorder, card: sv.Card,
                                     pin: sv.Pin) -> None:
    """Pointing a captured authorization at another card fails: the challenge is bound
    to the card it was issued for."""
    card_id = victim.enroll(card, pin)
    other = victim.enroll(sv.Card("5555555555554444", "01/31", "LEE JIEUN"), pin)
    mitm.rewrite = lambda m: (dataclasses.replace(m, card_id=other)
                              if isinstance(m, AuthorizeRequest) else m)
    with pytest.raises(sv.InvalidChallenge):
        pay(victim, card_id, pin)
    assert _calls(mitm) == 0


def test_tampered_envelope_is_refused(victim: sv.Device, mitm: Recorder, card: sv.Card,
                                      pin: sv.Pin) -> None:
    """A flipped bit in the sealed device share fails the PIN proof (it is signed)."""
    card_id = victim.enroll(card, pin)

    def flip(m: Any) -> Any:
        if isinstance(m, AuthorizeRequest):
            env = bytearray(m.envelope)
            env[-1] ^= 1
            return dataclasses.replace(m, envelope=bytes(env))
        return m

    mitm.rewrite = flip
    with pytest.raises(sv.WrongPin):
        pay(victim, card_id, pin)
    assert _calls(mitm) == 0


def test_expired_challenge_is_refused(victim: sv.Device, mitm: Recorder, clock: Clock,
                                      card: sv.Card, pin: sv.Pin) -> None:
    """A challenge used after its 60 s is refused and the acquirer is not called."""
    card_id = victim.enroll(card, pin)

    def stall() -> None:
        clock.now += sv.ServerProfile.DEFAULT.challenge_ttl + 1

    mitm.before_authorize = stall
    with pytest.raises(sv.InvalidChallenge):
        pay(victim, card_id, pin)
    assert _calls(mitm) == 0


def test_challenge_cannot_be_evaluated_twice(victim: sv.Device, mitm: Recorder,
                                             card: sv.Card, pin: sv.Pin) -> None:
    """One challenge buys one OPRF evaluation: a replayed evaluate request is refused."""
    card_id = victim.enroll(card, pin)
    pay(victim, card_id, pin)
    captured = next(m for m in mitm.sent if isinstance(m, EvaluateRequest))
    with pytest.raises(sv.InvalidChallenge):
        mitm.server.evaluate(captured)


def test_stranger_cannot_spend_guesses(victim: sv.Device, mitm: Recorder, card: sv.Card,
                                       pin: sv.Pin) -> None:
    """Without the device key, evaluate requests are refused as UnknownCard (the same
    answer as for a card that does not exist) and the guess count does not move."""
    card_id = victim.enroll(card, pin)
    server = mitm.server
    stranger_key = bytes(range(32))
    for _ in range(10):
        ch = server.challenge(card_id)
        _, blinded = oprf.blind(b"123456")
        req = EvaluateRequest(card_id, ch.challenge_id, blinded, b"")
        req = dataclasses.replace(req, signature=sign(stranger_key, req.signed_bytes(ch.nonce)))
        with pytest.raises(sv.UnknownCard) as refused:
            server.evaluate(req)
        assert str(refused.value) == "unknown card"
    assert server.card_state(card_id).guesses_used == 0
    ghost = "0" * 32
    ch = server.challenge(ghost)
    with pytest.raises(sv.UnknownCard) as unknown:
        server.evaluate(EvaluateRequest(ghost, ch.challenge_id, blinded, bytes(64)))
    assert str(unknown.value) == str(refused.value)


def test_malformed_blinded_element_spends_no_guess(victim: sv.Device, mitm: Recorder,
                                                   card: sv.Card, pin: sv.Pin) -> None:
    """An invalid group element is refused before a guess is counted."""
    card_id = victim.enroll(card, pin)
    server = mitm.server
    seed = victim._store.get(card_id).sign_seed
    ch = server.challenge(card_id)
    req = EvaluateRequest(card_id, ch.challenge_id, b"\xff" * 32, b"")
    req = dataclasses.replace(req, signature=sign(seed, req.signed_bytes(ch.nonce)))
    with pytest.raises(sv.MalformedRequest):
        server.evaluate(req)
    assert server.card_state(card_id).guesses_used == 0
