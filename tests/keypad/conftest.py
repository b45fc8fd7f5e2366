"""Fixtures for the SecureKeypad tests."""

from __future__ import annotations

import pytest
from textual import constants


@pytest.fixture(autouse=True)
def no_animations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run apps as with TEXTUAL_ANIMATIONS=none: stable snapshots, no siren frames to wait
    for. The env var is read once, at import, into a constant that each App copies when
    it is made, so the constant is what is patched. A test wanting animations sets
    ``app.animation_level = "full"``."""
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setattr(constants, "TEXTUAL_ANIMATIONS", "none")
