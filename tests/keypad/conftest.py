"""Fixtures for the SecureKeypad tests."""

from __future__ import annotations

import pytest
from textual import constants


@pytest.fixture
def no_animations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run apps as with TEXTUAL_ANIMATIONS=none (the constant is read when an App is made)."""
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setattr(constants, "TEXTUAL_ANIMATIONS", "none")
