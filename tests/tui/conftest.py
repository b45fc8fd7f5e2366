"""Fixtures for the demo's tests: animations off, a fresh demo in a temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual import constants

from splitvault.tui import DemoApp

from .helpers import make_app


@pytest.fixture(autouse=True)
def no_animations(monkeypatch: pytest.MonkeyPatch) -> None:
    """As tests/keypad/conftest.py: Textual copies this constant into each App when it is
    made, so patching it gives stable snapshots and no siren frames to wait for."""
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setattr(constants, "TEXTUAL_ANIMATIONS", "none")


@pytest.fixture
def demo(tmp_path: Path) -> Callable[..., DemoApp]:
    """A factory: ``demo()`` is a DemoApp over ``tmp_path`` with the TEST_ONLY KDF, a
    seeded keypad and a fixed date and acquirer."""

    def factory(**options: Any) -> DemoApp:
        return make_app(tmp_path, **options)

    return factory
