"""Scenario 2, the server breach: a full copy of the server's database (WAL included) and
its key-encryption key, after a wallet's whole life of flows.

- :func:`no_card_data`: the insider opens *every* wrapped value the server stores (read
  from the stolen copy by the store's own ``wrapped()``, the list key rotation
  re-wraps, so a new secret column cannot be forgotten here) and searches those
  plaintexts, the files and a full SQL dump for the PAN and the holder names in every
  encoding: nothing. The server simply holds no ciphertext of the card at all.
- :func:`no_offline_pin_test`: with the OPRF key the insider computes OPRF(k, PIN) for
  any candidate, and even given the device's salt cannot reach the verifier: every
  32-byte value the server holds, tried as the device secret, fails for every
  candidate, the right PIN included. Positive control: the real device secret does
  match, so a match would be seen.

In-process only: a remote deployment's files are not ours to copy.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

from .._profiles import KdfProfile
from .._protocol import pin_input
from ..crypto import oprf
from ..crypto.memory import wipe
from ..crypto.signing import public_key
from ..hazmat import derive_pin_seed
from ..server import Kek, open_store
from ._flows import KOREAN_HOLDER, complete_flows
from ._harness import HOLDER, PAN, PIN, SECOND_PAN, AttackResult, Deployment, Lab, Options, guarded
from ._needles import Needles
from .scan import sqlite_files

__all__ = ["Breach", "no_card_data", "no_offline_pin_test", "run"]

HAD = "the server database (WAL included) and its KEK"
CANDIDATES = (PIN, "580247", "000000", "123456", "902417")


class Breach:
    """What the insider took: copies of the files, opened with sqlite3 and the KEK."""

    def __init__(self, lab: Lab) -> None:
        stolen = lab.root / "insider"
        stolen.mkdir(mode=0o700)
        for path in sqlite_files(lab.server_path):
            shutil.copyfile(path, stolen / path.name)
            os.chmod(stolen / path.name, 0o600)  # the insider's own copy
        self.files = sorted(stolen.iterdir())
        self.keks = Kek.load_all(stolen / f"{lab.server_path.name}.kek")
        self.db = sqlite3.connect(stolen / lab.server_path.name)
        self.store = open_store(stolen / lab.server_path.name)

    def unwrapped(self) -> list[tuple[str, bytearray]]:
        """Every wrapped secret in the database, opened: (where, plaintext). Each value
        begins with the id of the key it is wrapped under."""
        by_kid = {kek.kid: kek for kek in self.keks}
        columns = {(t, p): c for t, c, p in self.store.wrapped_columns()}
        out: list[tuple[str, bytearray]] = []
        for ref in self.store.wrapped():
            kek = by_kid[ref.blob[:8]]
            out.append((f"{ref.table}.{columns[ref.table, ref.purpose]}[{ref.row}]",
                        kek.unwrap(ref.purpose, ref.row, ref.blob)))
        return out

    def dump(self) -> str:
        return "\n".join(self.db.iterdump())

    def close(self) -> None:
        self.db.close()
        self.store.close()
        for kek in self.keks:
            kek.wipe()


def no_card_data(lab: Lab) -> AttackResult:
    name = "look for the card in the database and every unwrapped secret"

    def attack() -> AttackResult:
        victim = lab.device()
        complete_flows(lab, victim, failures=True)
        breach = Breach(lab)
        try:
            needles = (Needles().text("PAN", PAN).text("second PAN", SECOND_PAN)
                       .text("holder", HOLDER).text("holder (Korean)", KOREAN_HOLDER))
            secrets = breach.unwrapped()
            found = [f"{where}: {hit}" for where, plain in secrets
                     for hit in needles.search(bytes(plain))]
            found += [f"{path.name}: {hit}" for path in breach.files
                      for hit in needles.search(path.read_bytes())]
            found += [f"SQL dump: {hit}" for hit in needles.search(breach.dump())]
            ledger = sum(1 for where, _ in secrets if where.startswith("authorizations"))
        finally:
            breach.close()
        got = "; ".join(found[:5]) if found else (
            f"{len(secrets)} secrets unwrapped, {len(breach.files)} files and a SQL dump "
            "searched: no PAN, no holder name in any encoding")
        detail = (f"{ledger} recorded results opened: with the KEK an insider reads each "
                  "payment's last 4, amount and merchant (residual risk)")
        return AttackResult(name, HAD, got, not found, detail)

    return guarded(name, HAD, attack)


def no_offline_pin_test(lab: Lab) -> AttackResult:
    name = "test PINs offline with the OPRF key"

    def attack() -> AttackResult:
        victim = lab.device()
        card_id = lab.enroll(victim)
        held = victim.device._store.get(card_id)  # for the salt and the control only
        breach = Breach(lab)
        try:
            secrets = dict(breach.unwrapped())
            key = secrets[f"cards.oprf_key[{card_id}]"]
            device_key, verifier = breach.db.execute(
                "SELECT device_key, verifier FROM cards WHERE card_id = ?", (card_id,)
            ).fetchone()
            # Every 32-byte value the insider holds, tried as the device secret.
            tries = [bytes(v) for v in secrets.values() if len(v) == 32]
            tries += [bytes(device_key), bytes(verifier), bytes(32)]
        finally:
            breach.close()
        matches = []
        for digits in CANDIDATES:
            output = oprf.evaluate(key, pin_input(card_id, digits.encode()))
            for guess in tries:
                if _derive(card_id, bytearray(output), held.salt, guess) == verifier:
                    matches.append(digits)
        real = oprf.evaluate(key, pin_input(card_id, PIN.encode()))
        control = _derive(card_id, real, held.salt, held.device_secret) == verifier
        got = f"PIN {matches[0]} confirmed offline" if matches else (
            f"0 of {len(CANDIDATES) * len(tries)} offline tests matched, the right PIN "
            "included: the device secret is missing")
        detail = "" if control else "positive control failed: the harness cannot see a match"
        return AttackResult(name, HAD + " (and, generously, the salt)", got,
                            not matches and control, detail)

    return guarded(name, HAD, attack)


def _derive(card_id: str, output: bytearray, salt: bytes, secret: bytes) -> bytes:
    seed = derive_pin_seed(output, salt=salt, device_secret=secret, card_id=card_id,
                           profile=KdfProfile.TEST_ONLY)
    try:
        return public_key(seed)
    finally:
        wipe(seed)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (no_card_data, no_offline_pin_test):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
