"""Neither side alone can test a PIN offline.

Each attack has a positive control: with what the attacker lacks (a fresh, counted
server evaluation; the real device secret) the harness does reproduce the verifier, so
a failure to reproduce it with one side alone means the secret is really missing, not
that the harness is wrong.
"""

from __future__ import annotations

import pytest

from splitvault._attack import device_theft, server_breach
from splitvault._attack._harness import Lab

pytestmark = pytest.mark.security



def test_server_breach_cannot_test_pins(lab: Lab) -> None:
    """With the whole server (database and KEK, so the OPRF key) an insider computes the
    OPRF output of any PIN, yet cannot match the verifier even for the right PIN and
    even given the salt: every value the server holds fails as the device secret."""
    result = server_breach.no_offline_pin_test(lab)
    assert result.passed, f"{result.attacker_got} {result.detail}"


def test_stolen_device_cannot_test_pins(lab: Lab) -> None:
    """A thief with a full copy of the device's files and every message the device ever
    exchanged (the verifier included) still cannot check a PIN guess: every recorded
    evaluation was blinded with a random scalar that was wiped."""
    result = device_theft.offline_pin_test(lab)
    assert result.passed, f"{result.attacker_got} {result.detail}"


def test_device_files_hold_nothing_derived_from_the_pin(lab: Lab) -> None:
    """The device's files hold neither the PIN nor its verifier, in any encoding."""
    result = device_theft.files_hold_nothing_of_the_pin(lab)
    assert result.passed, result.attacker_got
