"""A real share server in a subprocess (``python -m splitvault.server._serve``), on a
free loopback port, with a temporary database and a fresh key file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import ServerProcess

import splitvault as sv


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One plain-HTTP server shared by a module's tests (each test enrolls its own cards)."""
    server = ServerProcess(tmp_path_factory.mktemp("live")).start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server for one test, not started: the test adds flags, starts, restarts, kills."""
    server = ServerProcess(tmp_path / "srv")
    yield server
    server.stop()


@pytest.fixture
def http_device(tmp_path: Path, live_server: ServerProcess) -> Iterator[sv.Device]:
    device = sv.Device.open(tmp_path / "device.db", server=live_server.url,
                            kdf=sv.KdfProfile.TEST_ONLY)
    yield device
    device.close()
