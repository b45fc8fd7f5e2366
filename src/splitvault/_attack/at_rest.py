"""Scenario 3, each side alone against the card: what either side writes to disk.

- :func:`scanner_finds_planted_cards`: the byte scan is not vacuous. A PAN planted
  mid-file in each encoding the scan knows is found.
- :func:`device_files_hold_no_card` and :func:`server_files_hold_no_card`: after a
  wallet's whole life of flows, failures included, and with SQLite's WAL still open,
  no file of that side holds a PAN or a holder name in any encoding (ASCII, UTF-16,
  hex, base64 at every alignment, BCD), and none does after the last card is deleted.
- :func:`one_share_opens_nothing`: the device's sealed record does not open under the
  device share, nor under the server's share; it opens under their XOR (positive
  control). Each share alone is a one-time pad of the key.
- :func:`export_shows_no_patterns`: a bulk export of the server's ledger and audit log
  cannot group purchases: two identical payments (same card, amount, merchant) have
  unrelated parameter digests, every wrapped result has one length whatever the
  merchant's name, and audit times are whole minutes (no join by microseconds).

In-process only.
"""

from __future__ import annotations

from pathlib import Path

from .._protocol import card_record_aad
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.sealing import open_sealed
from ..crypto.shares import combine
from ._flows import KOREAN_HOLDER, complete_flows
from ._harness import (
    HOLDER,
    PAN,
    SECOND_PAN,
    AttackResult,
    Deployment,
    Lab,
    Options,
    guarded,
    pay,
)
from .scan import encodings, scan_files, sqlite_files

__all__ = [
    "device_files_hold_no_card",
    "export_shows_no_patterns",
    "one_share_opens_nothing",
    "run",
    "scanner_finds_planted_cards",
    "server_files_hold_no_card",
]

NEEDLES = {"PAN": PAN, "second PAN": SECOND_PAN, "holder": HOLDER,
           "holder (Korean)": KOREAN_HOLDER}


def scanner_finds_planted_cards(lab: Lab) -> AttackResult:
    name = "self-test: find a PAN planted in each encoding"
    had = "a file with the PAN planted mid-file"

    def attack() -> AttackResult:
        missed: list[str] = []
        forms = encodings(PAN)
        for encoding, pattern in forms.items():
            path = lab.root / f"planted-{len(missed)}.bin"
            path.write_bytes(b"\x00junk" + pattern + b"more junk\x01")
            if not any(f.encoding == encoding for f in scan_files([path], {"PAN": PAN})):
                missed.append(encoding)
        got = f"missed {', '.join(missed)}" if missed else \
            f"found in all {len(forms)} encodings"
        return AttackResult(name, had, got, not missed)

    return guarded(name, had, attack)


def _side_alone(lab: Lab, side: str) -> AttackResult:
    name = f"byte-scan every file of the {side} for the card"
    had = f"every file the {side} wrote (WAL and key files too)"

    def attack() -> AttackResult:
        victim = lab.device()
        flows = complete_flows(lab, victim, failures=True)
        if lab.server is None:
            raise RuntimeError("needs the in-process server")

        def files() -> list[Path]:
            return sqlite_files(victim.path if side == "device" else lab.server_path)

        live = files()
        with_wal = any(p.name.endswith("-wal") for p in live)
        found = [f"{Path(f.path).name}: {f.label} ({f.encoding})"
                 for f in scan_files(live, NEEDLES)]
        for role in ("main", "korean", "locked"):
            victim.device.delete(flows.cards[role])
            victim.cards.remove(flows.cards[role])
        found += [f"after delete {Path(f.path).name}: {f.label} ({f.encoding})"
                  for f in scan_files(files(), NEEDLES)]
        got = "; ".join(found[:5]) if found else (
            f"{len(live)} files, WAL {'open' if with_wal else 'absent'}: no PAN, no holder "
            "name in any encoding, before or after delete")
        return AttackResult(name, had, got, not found and with_wal,
                            "" if with_wal else "the WAL was not there to scan")

    return guarded(name, had, attack)


def device_files_hold_no_card(lab: Lab) -> AttackResult:
    return _side_alone(lab, "device")


def server_files_hold_no_card(lab: Lab) -> AttackResult:
    return _side_alone(lab, "server")


def one_share_opens_nothing(lab: Lab) -> AttackResult:
    name = "open the sealed card with one share"
    had = "the sealed record and one share"

    def attack() -> AttackResult:
        if lab.server is None:
            raise RuntimeError("needs the in-process server")
        victim = lab.device()
        card_id = lab.enroll(victim)
        held = victim.device._store.get(card_id)
        inspector = lab.server.inspector()
        ((wrapped,),) = inspector.query("SELECT share FROM cards WHERE card_id = ?", card_id)
        server_share = inspector.unwrap("share", card_id, bytes(wrapped))
        aad = card_record_aad(card_id)
        opened = []
        for label, key in (("device share", bytearray(held.device_share)),
                           ("server share", server_share)):
            try:
                open_sealed(key, held.sealed_record, aad)
                opened.append(label)
            except AuthenticationFailed:
                pass
        record = open_sealed(combine(held.device_share, server_share), held.sealed_record, aad)
        control = PAN.encode() in record
        wipe(record)
        got = f"opened with the {opened[0]} alone" if opened else \
            "neither share alone opens the record; their XOR does (positive control)"
        return AttackResult(name, had, got, not opened and control,
                            "" if control else "positive control failed")

    return guarded(name, had, attack)


def export_shows_no_patterns(lab: Lab) -> AttackResult:
    name = "group purchases in a bulk export of the ledger and audit log"
    had = "a bulk export of the server's database (no KEK)"

    def attack() -> AttackResult:
        if lab.server is None:
            raise RuntimeError("needs the in-process server")
        victim = lab.device()
        card_id = lab.enroll(victim)
        for key, merchant in (("o-1", "Gift Shop"), ("o-2", "Gift Shop"),
                              ("o-3", "A Much Longer Merchant Name Department Store Seoul")):
            pay(victim, card_id, key=key, amount=12000, merchant=merchant)
        query = lab.server.inspector().query
        digests = [bytes(r[0]) for r in query("SELECT params_digest FROM authorizations")]
        sizes = {len(bytes(r[0])) for r in query("SELECT result FROM authorizations")}
        times = [float(r[0]) for r in query("SELECT at FROM audit")]
        coarse = all(t % 60 == 0 for t in times)
        held = len(set(digests)) == len(digests) == 3 and len(sizes) == 1 and coarse
        lab.server.verify_audit()  # the chain still verifies over the stored times
        return AttackResult(name, had, f"{len(set(digests))} distinct digests of 3 payments "
                            f"(two identical); result lengths {sorted(sizes)}; audit "
                            f"times whole minutes: {coarse}", held)

    return guarded(name, had, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (scanner_finds_planted_cards, device_files_hold_no_card,
                   server_files_hold_no_card, one_share_opens_nothing,
                   export_shows_no_patterns):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
