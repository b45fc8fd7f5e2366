"""Neither side alone can test a PIN offline.

Each test has a positive control: with *both* sides' secrets the harness does
reproduce the verifier for the right PIN, so a failure to reproduce it with one side
alone means the secret is really missing, not that the harness is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import splitvault as sv
from splitvault._protocol import EvaluateReply, pin_input
from splitvault.crypto import oprf
from splitvault.crypto.signing import public_key
from splitvault.device._pinkey import derive_pin_seed
from support import PIN, pay

pytestmark = pytest.mark.security

CANDIDATES = ["000000", "739184", "580247", "123457"]
ONE = (1).to_bytes(32, "little")  # the scalar 1


def _verifier(server: sv.ShareServer, card_id: str) -> bytes:
    row = server._db.connection().execute(
        "SELECT verifier FROM cards WHERE card_id = ?", (card_id,)).fetchone()
    return bytes(row[0])


def _derive(card_id: str, digits: str, oprf_out: bytearray, salt: bytes,
            secret: bytes) -> bytes:
    seed = derive_pin_seed(oprf_out, salt=salt, device_secret=secret, card_id=card_id,
                           profile=sv.KdfProfile.TEST_ONLY)
    return public_key(seed)


def _oprf_key(server: sv.ShareServer, card_id: str) -> bytearray:
    wrapped = server._db.connection().execute(
        "SELECT oprf_key FROM cards WHERE card_id = ?", (card_id,)).fetchone()[0]
    return server._kek.unwrap("oprf-key", card_id, wrapped)


def test_server_breach_cannot_test_pins(device: sv.Device, server: sv.ShareServer,
                                        card_id: str) -> None:
    """With the whole server (database and KEK, so the OPRF key) an insider can compute
    the OPRF output of any PIN, yet cannot match the verifier even for the right PIN:
    the 256-bit device secret is missing."""
    key = _oprf_key(server, card_id)
    target = _verifier(server, card_id)
    held = device._store.get(card_id)
    # positive control: both sides together do reproduce the verifier
    both = _derive(card_id, PIN, oprf.evaluate(key, pin_input(card_id, PIN.encode())),
                   held.salt, held.device_secret)
    assert both == target
    for digits in CANDIDATES:
        out = oprf.evaluate(key, pin_input(card_id, digits.encode()))
        for guess in (bytes(32), held.salt * 2):  # the salt is not secret; the secret is
            assert _derive(card_id, digits, bytearray(out), held.salt, guess) != target


class Tap:
    """Records every reply the server sends to the device."""

    def __init__(self, server: sv.ShareServer) -> None:
        self.server = server
        self.replies: list[object] = []

    def __getattr__(self, name: str) -> Callable[..., object]:
        def call(*args: object) -> object:
            reply = getattr(self.server, name)(*args)
            self.replies.append(reply)
            return reply
        return call


def test_stolen_device_cannot_test_pins(tmp_path: Path, server: sv.ShareServer,
                                        card: sv.Card, pin: sv.Pin) -> None:
    """A thief with a full copy of the device's files and every message the device ever
    received still cannot check a PIN guess: every evaluation in the transcript was
    blinded with a random scalar that was wiped, so the right PIN gives no match."""
    tap = Tap(server)
    device = sv.Device(sv.device._store.DeviceStore(tmp_path / "d.db"), tap,
                       kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    pay(device, card_id, pin)
    held = device._store.get(card_id)
    target = _verifier(server, card_id)
    evaluations = [r.evaluated for r in tap.replies if isinstance(r, EvaluateReply)]
    evaluations += [r.evaluated for r in tap.replies if hasattr(r, "server_key")]
    assert evaluations
    for digits in CANDIDATES:
        x = pin_input(card_id, digits.encode())
        for evaluated in evaluations:
            # Finalize with blind = 1, i.e. treat the recorded evaluation as if it had
            # been unblinded: the thief's best try without the wiped blind.
            out = oprf.finalize(x, ONE, evaluated)
            assert _derive(card_id, digits, out, held.salt, held.device_secret) != target
    # positive control: one fresh, counted evaluation from the real server does match
    key = _oprf_key(server, card_id)
    out = oprf.evaluate(key, pin_input(card_id, PIN.encode()))
    assert _derive(card_id, PIN, out, held.salt, held.device_secret) == target
    # and the device's files hold nothing derived from the PIN at all
    stored = (tmp_path / "d.db").read_bytes()
    assert target not in stored and PIN.encode() not in stored
