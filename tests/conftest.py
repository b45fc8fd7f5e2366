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
