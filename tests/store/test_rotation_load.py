"""Key rotation under load: payments and enrollments keep succeeding while ``splitvault
keys rotate`` runs against live workers, nothing stays wrapped under the old key, the
old key can then be retired, and after a restart every card still pays."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import splitvault as sv
from pg_support import require_postgres, temporary_database
from splitvault.server import Kek

from .serve_support import Serve, cli

PIN = "739184"
pytestmark = pytest.mark.slow


def _card(n: int) -> sv.Card:
    return sv.Card(pan="4111111111111111", expiry="12/30", holder=f"HOLDER {n}")


def _pay(device: sv.Device, card_id: str, key: str) -> sv.Authorization:
    with sv.Pin.from_digits(PIN) as pin:
        return device.authorize(card_id, pin, amount=1500, currency="KRW",
                                merchant="Book Shop", idempotency_key=key)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rotation_under_load(tmp_path: Path, backend: str) -> None:
    kek = tmp_path / "kek.key"
    Kek.generate().write(kek)
    old_kid = Kek.load(kek).kid_hex
    if backend == "postgres":
        require_postgres()
        database = temporary_database()
        url = database.__enter__()
    else:
        database, url = None, str(tmp_path / "srv" / "server.db")
    try:
        assert cli("db", "upgrade", "--db", url).returncode == 0
        serve = Serve(url, kek, tmp_path / "serve.log", "--workers", "2")
        try:
            device = sv.Device.open(tmp_path / "dev" / "device.db", server=serve.url,
                                    kdf=sv.KdfProfile.TEST_ONLY)
            cards = []
            for n in range(3):
                with sv.Pin.from_digits(PIN) as pin:
                    cards.append(device.enroll(_card(n), pin))
            errors: list[BaseException] = []
            stop = threading.Event()
            done = {"payments": 0, "enrollments": 0}

            def load() -> None:
                i = 0
                while not stop.is_set():
                    try:
                        _pay(device, cards[i % len(cards)], f"load-{i}")
                        done["payments"] += 1
                        if i % 4 == 0:
                            with sv.Pin.from_digits(PIN) as pin:
                                cards.append(device.enroll(_card(100 + i), pin))
                            done["enrollments"] += 1
                    except BaseException as exc:  # every failure is a test failure
                        errors.append(exc)
                        return
                    i += 1
            thread = threading.Thread(target=load)
            thread.start()
            rotated = cli("keys", "rotate", "--db", url, "--kek-file", kek)
            after = done["payments"]
            while done["payments"] < after + 5 and thread.is_alive():
                stop.wait(0.05)  # a few more payments under the new primary
            stop.set()
            thread.join()
            assert rotated.returncode == 0, rotated.stderr
            assert not errors, errors
            assert done["payments"] >= 5 and done["enrollments"] >= 1
            device.close()
        finally:
            serve.stop()
        listing = cli("keys", "list", "--db", url, "--kek-file", kek)
        assert f"{old_kid}  active          0 values" in listing.stdout, listing.stdout
        retired = cli("keys", "retire", "--db", url, "--kek-file", kek, "--kid", old_kid)
        assert retired.returncode == 0, retired.stderr
        assert old_kid not in [k.kid_hex for k in Kek.load_all(kek)]
        serve = Serve(url, kek, tmp_path / "serve2.log")  # restarted: only the new key
        try:
            device = sv.Device.open(tmp_path / "dev" / "device.db", server=serve.url,
                                    kdf=sv.KdfProfile.TEST_ONLY)
            for n, card_id in enumerate(cards):
                assert _pay(device, card_id, f"after-{n}").approved
            device.close()
        finally:
            serve.stop()
    finally:
        if database is not None:
            database.__exit__(None, None, None)
