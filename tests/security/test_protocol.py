"""Attacks on the protocol messages: replay, tampering, stale challenges, strangers.

Each test runs one attack of the suite (``splitvault._attack``) against a fresh
in-process deployment and requires the defense to hold; the attack itself, and what
it proves, is in the attack's module.
"""

from __future__ import annotations

import pytest

from splitvault._attack import protocol, stranger
from splitvault._attack._harness import Lab, Options
from support import held

pytestmark = pytest.mark.security




def test_replayed_authorization_is_refused(lab: Lab) -> None:
    """A captured authorization sent again charges nothing: its challenge is single-use,
    and an identical copy of a settled proof gets only the recorded result."""
    held(protocol.replay_authorization(lab))


@pytest.mark.parametrize("field", sorted(protocol.TAMPERED))
def test_tampered_payment_never_reaches_acquirer(lab: Lab, field: str) -> None:
    """Changing amount, merchant, currency or idempotency key in flight breaks the PIN
    proof: the server sees a wrong PIN, the acquirer is never called, nothing is
    recorded."""
    held(protocol.tamper_field(lab, field))


def test_tampered_card_id_is_refused(lab: Lab) -> None:
    """Pointing an authorization at another card fails: the challenge is bound to the
    card it was issued for."""
    held(protocol.tamper_card_id(lab))


def test_tampered_envelope_is_refused(lab: Lab) -> None:
    """A flipped bit in the sealed device share fails the PIN proof (it is signed)."""
    held(protocol.tamper_envelope(lab))


def test_expired_challenge_is_refused(lab: Lab) -> None:
    """A challenge used after its 60 s is refused and the acquirer is not called."""
    held(protocol.expired_challenge(lab, Options()))


def test_challenge_cannot_be_evaluated_twice(lab: Lab) -> None:
    """One signed evaluate request buys one OPRF evaluation: replayed, its nonce is
    refused and no guess is spent."""
    held(protocol.evaluate_twice(lab))


def test_evaluation_replayed_after_its_nonce_is_forgotten_is_refused(lab: Lab) -> None:
    """Held past the freshness window and the sweep of its nonce, a captured evaluate
    request is refused for its timestamp."""
    held(protocol.stale_evaluation(lab, Options()))


def test_swapped_server_key_at_enrollment_is_refused(lab: Lab) -> None:
    """A man in the middle who swaps the server's envelope key gets the enrollment
    refused: no card exists for the share it captured."""
    held(protocol.swapped_server_key(lab))


def test_stranger_cannot_spend_guesses(lab: Lab) -> None:
    """Without the device key, evaluate requests are refused as UnknownCard (the same
    answer as for a card that does not exist) and the guess count does not move."""
    held(stranger.spend_guesses(lab))


def test_malformed_blinded_element_spends_no_guess(lab: Lab) -> None:
    """An invalid group element is refused before a guess is counted."""
    held(protocol.malformed_element(lab))
