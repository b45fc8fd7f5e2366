"""Issue 9 item 5: card ids cannot be probed through enrollment.

A card id is a hash of its device key, so enrollment can answer "in use" only to the
holder of that key; enroll_finish answers an unknown enrollment and a bad signature
alike, after the same Ed25519 verification.
"""

from __future__ import annotations

import secrets

import pytest

import splitvault as sv
from splitvault._attack import card_ids
from splitvault._attack._harness import Lab
from splitvault._protocol import SEALED_KEY_LEN, SEALED_SIG_LEN, EnrollFinish
from splitvault.server import _signatures
from support import held

pytestmark = pytest.mark.security




def _answer(call: object) -> tuple[type[BaseException], str]:
    try:
        call()  # type: ignore[operator]
    except sv.VaultError as exc:
        return type(exc), str(exc)
    raise AssertionError("accepted")


def test_enroll_begin_does_not_confirm_a_live_card_id(lab: Lab) -> None:
    """Enrolling under an enrolled card's id and under a made-up id (each with a fresh
    key of the prober's) answer alike and store nothing."""
    held(card_ids.enroll_under_a_live_id(lab))


def test_enroll_finish_answers_unknown_and_bad_signature_alike(lab: Lab) -> None:
    """A pending enrollment with a bad device signature and one that never began: the
    same error, word for word."""
    held(card_ids.finish_probes(lab))


def test_enroll_finish_verifies_an_unknown_enrollment_against_the_dummy_key(
        server: sv.ShareServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal of an unknown enrollment costs one Ed25519 verification, as a
    pending one with a bad signature does: the time to refuse says nothing."""
    calls: list[bytes] = []
    real = _signatures.verify

    def counting(public: bytes, message: bytes, signature: bytes) -> None:
        calls.append(public)
        real(public, message, signature)

    monkeypatch.setattr(_signatures, "verify", counting)
    request = EnrollFinish(secrets.token_hex(16), secrets.token_bytes(SEALED_KEY_LEN),
                           secrets.token_bytes(200), bytes(64),
                           secrets.token_bytes(SEALED_SIG_LEN))
    with pytest.raises(sv.UnknownCard):
        server.enroll_finish(request)
    assert calls == [_signatures._DUMMY_KEY]


def test_a_card_id_the_device_key_does_not_name_is_refused(server: sv.ShareServer) -> None:
    """Whether or not the id exists: the same typed error, and no row."""
    answers = {_answer(lambda: server.enroll_begin(card_ids.enroll_begin(
        secrets.token_hex(16), secrets.token_bytes(32)))) for _ in range(3)}
    assert len(answers) == 1
    assert server.store.pending_enrollments() == 0
