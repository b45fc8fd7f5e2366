"""Shared fixtures: a server and a device in a temporary folder, TEST_ONLY KDF."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import splitvault as sv
from support import HOLDER, PAN, PIN


@pytest.fixture
def server(tmp_path: Path) -> Iterator[sv.ShareServer]:
    srv = sv.ShareServer.open(tmp_path / "server.db")
    yield srv
    srv.close()


@pytest.fixture
def device(tmp_path: Path, server: sv.ShareServer) -> Iterator[sv.Device]:
    dev = sv.Device.open(tmp_path / "device.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    yield dev
    dev.close()


@pytest.fixture
def card() -> sv.Card:
    return sv.Card(pan=PAN, expiry="12/30", holder=HOLDER)


@pytest.fixture
def pin() -> Iterator[sv.Pin]:
    with sv.Pin.from_digits(PIN) as p:
        yield p


@pytest.fixture
def card_id(device: sv.Device, card: sv.Card, pin: sv.Pin) -> str:
    return device.enroll(card, pin)


# Tests not yet moved onto the store API of issue 8, listed in one place so a change
# removes entries as it migrates them (strict=False because some pass already). All
# have moved; the old in-place KEK rotation tests are skipped in test_kek.py until
# rotation is rebuilt.
_MIGRATING: frozenset[str] = frozenset()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        if base in _MIGRATING or item.nodeid.split("::", 1)[0] in _MIGRATING:
            item.add_marker(pytest.mark.xfail(
                reason="not yet migrated to the store API (issue 8)", strict=False))
