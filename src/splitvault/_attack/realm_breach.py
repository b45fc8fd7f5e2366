"""Scenario 22, a realm breach: ``t - 1`` realms of a t-of-n deployment (here realm 1 of
3 at threshold 2) taken whole, their database (WAL included) and KEK, together with the
device's files (its part ``D`` of the data key, the sealed card record, the salt, the
device secret, each realm's index and public key share).

- :func:`no_card`: the insider opens every wrapped secret of the stolen realm and tries
  to open the card record with the device's part and realm 1's share ``Sigma_1``: taken
  as the whole of ``Sigma`` (a threshold of 1), scaled by its Lagrange coefficient for
  each pair it belongs to (the best a single share can give), and every 32-byte secret
  held tried as the data key itself. None opens it, and no file holds the PAN or the
  holder. Positive control: with realm 2's share too (which the harness holds, the
  attacker not) the same code opens the card.
- :func:`no_offline_pin_test`: with ``k_1`` and realm 1's PIN verifier, the insider
  computes the OPRF of each candidate PIN under ``k_1`` and under ``lambda * k_1`` for
  each pair, derives the PIN key with the device's salt and secret, and compares with
  the verifier: no candidate matches, the right PIN included, and no output equals the
  real one (computed by the harness from ``t`` shares). Positive control: the real
  output does give the verifier, so a match would be seen.

In-process only: a remote deployment's files are not ours to copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .._card import Card
from .._deployment import Deployment as RealmDeployment
from .._deployment import Endpoint
from .._errors import WrongPin
from .._pin import Pin
from .._profiles import KdfProfile, ServerProfile
from .._protocol import card_record_aad, pin_input
from ..crypto import _field, oprf, threshold
from ..crypto.errors import AuthenticationFailed, DecodeError
from ..crypto.memory import wipe
from ..crypto.sealing import open_sealed
from ..crypto.threshold_secret import recover_data_key
from ..device import Device, RealmClient
from ..hazmat import DeviceCard
from ..server import Kek, ShareServer, open_store
from ._harness import HOLDER, PAN, PIN, AttackResult, Deployment, Lab, Options, guarded
from ._needles import Needles
from ._requests import device_verifier
from .scan import sqlite_files

__all__ = ["no_card", "no_offline_pin_test", "run"]

HAD = ("realm 1's database (WAL included) and KEK, of 3 realms at threshold 2, and the "
       "device's files")
CANDIDATES = (PIN, "580247", "000000", "123456", "902417")
N, T = 3, 2


@dataclass
class _Realms:
    """A 2-of-3 deployment in ``root``, one device with one card enrolled and paid."""

    paths: list[Path]
    servers: list[ShareServer]
    gateway: ShareServer
    device: Device
    card: DeviceCard
    indices: list[int]  # each realm's Shamir index for the card, by position


@contextlib.contextmanager
def _deployment(root: Path) -> Iterator[_Realms]:
    paths = [root / f"realm{i + 1}.db" for i in range(N)]
    keys = []
    for path in [*paths, root / "gateway.db"]:
        server = ShareServer.open(path, profile=ServerProfile.REALM)
        keys.append(server.realm_info().realm_key)
        server.close()
    realms = tuple(Endpoint(f"realm-{i + 1}", f"http://127.0.0.1:{9001 + i}", key)
                   for i, key in enumerate(keys[:N]))
    gateway_ep = Endpoint("gateway-1", "http://127.0.0.1:9100", keys[N])
    described = RealmDeployment(realms, (gateway_ep,), T)
    servers = [ShareServer.open(p, profile=ServerProfile.REALM, deployment=described)
               for p in paths]
    gateway = ShareServer.open(root / "gateway.db", deployment=described)
    client = RealmClient(described, realms={e.key: s for e, s in zip(realms, servers,
                                                                       strict=True)},
                         gateways={gateway_ep.key: gateway}, timeout=10)
    device = Device.open(root / "device.db", server=client, kdf=KdfProfile.TEST_ONLY)
    try:
        with Pin.from_digits(PIN) as pin:
            card_id = device.enroll(Card(pan=PAN, expiry="12/30", holder=HOLDER), pin)
            device.authorize(card_id, pin, amount=12000, currency="KRW", merchant="Cafe",
                             idempotency_key="breach-1")
        # A wrong PIN after the payment carries the payment's re-split to the realms it
        # asks, so realms 1 and 2 hold shares of the device's current version (what the
        # positive control combines).
        with Pin.from_digits("580247") as wrong, contextlib.suppress(WrongPin):
            device.authorize(card_id, wrong, amount=100, currency="KRW", merchant="Cafe",
                             idempotency_key="breach-2")
        store = device._store
        by_key = {p.realm_key: p.index for p in store.realm_parts(card_id)}
        yield _Realms(paths, servers, gateway, device, store.get(card_id),
                      [by_key[e.key] for e in realms])
    finally:
        device.close()
        for server in (*servers, gateway):
            server.close()


class _Stolen:
    """Copies of one realm's files, opened with sqlite3 and its KEK; every wrapped secret
    unwrapped, by (purpose, row)."""

    def __init__(self, path: Path, into: Path) -> None:
        into.mkdir(mode=0o700)
        for each in sqlite_files(path):
            shutil.copyfile(each, into / each.name)
            os.chmod(into / each.name, 0o600)
        # Read now: opening the copy below may fold its WAL in and remove it.
        self.files = {p.name: p.read_bytes() for p in sorted(into.iterdir())}
        keks = Kek.load_all(path.with_name(f"{path.name}.kek"))
        by_kid = {kek.kid: kek for kek in keks}
        store = open_store(into / path.name)
        try:
            self.secrets = {(ref.purpose, ref.row): by_kid[ref.blob[:8]].unwrap(
                ref.purpose, ref.row, ref.blob) for ref in store.wrapped()}
        finally:
            store.close()
            for kek in keks:
                kek.wipe()
        self.db = sqlite3.connect(into / path.name)

    def close(self) -> None:
        self.db.close()
        for value in self.secrets.values():
            wipe(value)


def _try_open(card: DeviceCard, key: bytes | bytearray) -> bytes | None:
    try:
        return bytes(open_sealed(bytes(key), card.sealed_record, card_record_aad(card.card_id)))
    except (AuthenticationFailed, DecodeError, ValueError):
        return None


def _open_with(card: DeviceCard, shares: list[threshold.Share], t: int) -> bytes | None:
    try:
        key = recover_data_key(card.device_share, shares, t)
    except (DecodeError, ValueError):
        return None
    try:
        return _try_open(card, key)
    finally:
        wipe(key)


def _scaled(value: bytes | bytearray, factor: bytes) -> bytearray:
    """``factor * value`` for each 32-byte scalar of ``value``."""
    out = bytearray()
    for w in range(len(value) // 32):
        out += _field.mul(factor, _field.scalar_at(value, w))
    return out


def _lambdas(indices: list[int]) -> list[bytes]:
    """Realm 1's Lagrange coefficient in each pair it belongs to."""
    return [threshold.lagrange_coefficients([indices[0], j])[indices[0]] for j in indices[1:]]


def no_card(lab: Lab) -> AttackResult:
    name = "open the card with t-1 realms and the device's files"

    def attack() -> AttackResult:
        with _deployment(lab.root / "realms") as realms:
            card = realms.card
            stolen = _Stolen(realms.paths[0], lab.root / "insider")
            try:
                sigma = stolen.secrets[("share", card.card_id)]
                index = realms.indices[0]
                # Every 64-byte secret held (the current share and any staged one).
                tries = []
                for value in (v for v in stolen.secrets.values() if len(v) == 64):
                    tries.append(("a share as Sigma", _open_with(
                        card, [threshold.Share(index, bytearray(value))], 1)))
                    for factor in _lambdas(realms.indices):
                        tries.append(("lambda * a share", _open_with(
                            card, [threshold.Share(index, _scaled(value, factor))], 1)))
                keys: list[bytes] = [bytes(v) for v in stolen.secrets.values()
                                     if len(v) == 32]
                keys += [card.device_share[:32], card.device_share[32:], card.device_secret]
                tries += [("a 32-byte secret as the key", _try_open(card, k)) for k in keys]
                opened = [what for what, record in tries if record is not None]
                needles = Needles().text("PAN", PAN).text("holder", HOLDER)
                files = dict(stolen.files)
                files.update((p.name, p.read_bytes())
                             for p in sqlite_files(lab.root / "realms" / "device.db"))
                found = [f"{where}: {hit}" for where, data in files.items()
                         for hit in needles.search(data)]
                found += [f"{purpose}[{row}]: {hit}" for (purpose, row), v
                          in stolen.secrets.items() for hit in needles.search(bytes(v))]
                # Positive control: realm 2's share, which the attacker does not have.
                control_record = _control_open(realms, sigma)
            finally:
                stolen.close()
        control = control_record is not None and PAN.encode() in control_record
        got = ("; ".join(opened + found)[:300] if opened or found else
               f"{len(tries)} ways to open the card record failed; no PAN or holder in "
               f"{len(files)} files or {len(stolen.secrets)} unwrapped secrets")
        detail = "" if control else "positive control failed: t shares did not open it"
        return AttackResult(name, HAD, got, not opened and not found and control, detail)

    return guarded(name, HAD, attack)


def _control_open(realms: _Realms, sigma: bytearray) -> bytes | None:
    """The card opened with realm 1's share and another realm's of the device's current
    version (the harness's knowledge, not the attacker's)."""
    card = realms.card
    for position, server in list(enumerate(realms.servers))[1:]:
        record = server.store.card(card.card_id)
        if record is None or record.share_version != card.share_version:
            continue
        other = server.keyring.unwrap("share", card.card_id, record.share)
        try:
            return _open_with(card, [threshold.Share(realms.indices[0], bytearray(sigma)),
                                     threshold.Share(realms.indices[position], other)], T)
        finally:
            wipe(other)
    return None


def no_offline_pin_test(lab: Lab) -> AttackResult:
    name = "test PINs offline with t-1 realms' OPRF key shares"

    def attack() -> AttackResult:
        with _deployment(lab.root / "realms") as realms:
            card = realms.card
            stolen = _Stolen(realms.paths[0], lab.root / "insider")
            try:
                k_1 = bytearray(stolen.secrets[("oprf-key", card.card_id)])
                (verifier,) = stolen.db.execute(
                    "SELECT verifier FROM cards WHERE card_id = ?", (card.card_id,)
                ).fetchone()
                other = realms.servers[1]
                record = other.store.card(card.card_id)
                k_2 = (other.keyring.unwrap("oprf-key", card.card_id, record.oprf_key)
                       if record is not None else bytearray(32))
            finally:
                stolen.close()
        keys = [k_1, *(_scaled(k_1, f) for f in _lambdas(realms.indices))]
        whole = threshold.recover([threshold.Share(realms.indices[0], k_1),
                                   threshold.Share(realms.indices[1], k_2)], T)
        real = oprf.evaluate(whole, pin_input(card.card_id, PIN.encode()))
        matches, same_output = [], 0
        for digits in CANDIDATES:
            for key in keys:
                output = oprf.evaluate(key, pin_input(card.card_id, digits.encode()))
                same_output += bytes(output) == bytes(real)
                if device_verifier(card, output) == bytes(verifier):
                    matches.append(digits)
        control = device_verifier(card, real) == bytes(verifier)
        wipe(whole, k_2, *keys)
        held = not matches and not same_output and control
        got = (f"PIN {matches[0]} confirmed offline" if matches else
               f"the real OPRF output reached {same_output} times" if same_output else
               f"0 of {len(CANDIDATES) * len(keys)} offline tests matched, the right PIN "
               "included: one key share is not the OPRF key")
        detail = "" if control else "positive control failed: the harness cannot see a match"
        return AttackResult(name, HAD, got, held, detail)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (no_card, no_offline_pin_test):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results

