"""Scenario 17, card ids probed: a stranger who wants to learn which card ids exist
asks the enrollment routes, which need no key but one he just made.

- :func:`enroll_under_a_live_id`: enroll_begin under an enrolled card's id and under
  a made-up id, each with the prober's own fresh key, answer word for word alike
  (a card id is a hash of its device key, so only that key's holder can ever be told
  "in use"), and neither leaves a row.
- :func:`finish_probes`: enroll_finish with a bad device signature for an enrollment
  that is pending and for one that never began answer alike (``UnknownCard``); the
  server checks an unknown one against a dummy key, so both cost one Ed25519 check.

Both run against a remote deployment too (``--server``).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable

from .. import _errors
from .._protocol import SEALED_KEY_LEN, SEALED_SIG_LEN, EnrollBegin, EnrollFinish, card_id_for
from ..crypto import oprf
from ..crypto.signing import public_key, sign
from ._harness import AttackResult, Deployment, Lab, Options, guarded

__all__ = ["enroll_begin", "enroll_under_a_live_id", "finish_probes", "run"]

HAD = "the network and keys of his own; no device key of anyone else"


def enroll_begin(card_id: str | None, seed: bytes) -> EnrollBegin:
    """An enroll_begin signed with ``seed``, under ``card_id`` (default: the id the
    key names, as a device sends it)."""
    key = public_key(bytearray(seed))
    _, blinded = oprf.blind(b"123456")
    request = EnrollBegin(card_id_for(key) if card_id is None else card_id, key, blinded, b"")
    return dataclasses.replace(request, signature=sign(bytearray(seed),
                                                      request.signed_bytes()))


def _answer(call: Callable[[], object]) -> str:
    try:
        call()
    except _errors.VaultError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


def _pending(lab: Lab) -> int | None:
    return None if lab.server is None else lab.server.store.pending_enrollments()


def enroll_under_a_live_id(lab: Lab) -> AttackResult:
    name = "enroll under a live card id to confirm it exists"

    def attack() -> AttackResult:
        owner = lab.device("owner")
        real = lab.enroll(owner)
        wire = lab.device("prober").wire
        before = _pending(lab)
        seen = _answer(lambda: wire.enroll_begin(enroll_begin(real, secrets.token_bytes(32))))
        unseen = _answer(lambda: wire.enroll_begin(
            enroll_begin(secrets.token_hex(16), secrets.token_bytes(32))))
        rows = _pending(lab)
        same = seen == unseen and seen != "accepted"
        got = (f"the same answer for both ({seen})" if same
               else f"answers differ: {seen} / {unseen}")
        return AttackResult(name, HAD, f"{got}; pending rows made: "
                            f"{'?' if rows is None or before is None else rows - before}",
                            same and rows == before)

    return guarded(name, HAD, attack)


def finish_probes(lab: Lab) -> AttackResult:
    name = "tell a pending enrollment from none by enroll_finish"

    def attack() -> AttackResult:
        wire = lab.device("prober").wire
        seed = secrets.token_bytes(32)
        begin = enroll_begin(None, seed)
        wire.enroll_begin(begin)  # a pending enrollment of the prober's own

        def finish(card_id: str) -> str:
            request = EnrollFinish(card_id, secrets.token_bytes(SEALED_KEY_LEN),
                                   secrets.token_bytes(200), bytes(64),
                                   secrets.token_bytes(SEALED_SIG_LEN))
            return _answer(lambda: wire.enroll_finish(request))

        pending, unknown = finish(begin.card_id), finish(secrets.token_hex(16))
        same = pending == unknown and pending != "accepted"
        got = (f"the same answer for both ({pending})" if same
               else f"answers differ: {pending} / {unknown}")
        return AttackResult(name, HAD, got, same)

    return guarded(name, HAD, attack)


def run(deployment: Deployment, options: Options) -> list[AttackResult]:
    results = []
    for attack in (enroll_under_a_live_id, finish_probes):
        with deployment.lab() as lab:
            results.append(attack(lab))
    return results
