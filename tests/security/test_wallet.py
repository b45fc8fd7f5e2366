"""Issue 9, item 6: the PIN-guess limit is per device (wallet) as well as per card.

A device holding several cards under one PIN gave a thief the limit once per card; the
wallet key every card of a device is enrolled under (``EnrollBegin.wallet_key``) gives
the server one budget across them (``_sql_cards.settle_proof``)."""

from __future__ import annotations

import base64
import json

import pytest

from splitvault import CardLocked, MalformedRequest, WrongPin
from splitvault._attack import device_theft
from splitvault._attack._harness import CLAIMED_GUESS_LIMIT, OTHER_PIN, Lab, pay
from splitvault._protocol import EnrollBegin
from splitvault._wire import ENROLL_BEGIN, loads
from splitvault.crypto.signing import public_key
from support import held

pytestmark = pytest.mark.security


def test_one_pin_for_three_cards_gets_one_limit(lab: Lab) -> None:
    """A thief with a device holding 3 cards under one PIN gets at most the wallet
    limit (5) of PIN tests between them: the owner's PIN, his sixth guess, is never
    tried, and every card ends locked (with 5 per card he would have paid)."""
    held(device_theft.one_pin_for_three_cards(lab))


def test_cards_share_a_wallet_no_dump_can_see(lab: Lab) -> None:
    """The server keeps no wallet key and no wallet id in clear: each card's wallet
    reference is wrapped under the KEK (two cards of one wallet hold unrelated
    blobs), and the wallet row's key is a keyed MAC of the wallet public key."""
    owner = lab.device("owner")
    first, second = lab.enroll(owner), lab.enroll(owner)
    assert lab.server is not None
    store = lab.server.store
    refs = {c: store.card(c).wallet for c in (first, second)}  # type: ignore[union-attr]
    assert all(ref is not None for ref in refs.values()) and refs[first] != refs[second]
    public = public_key(owner.device._store.wallet_seed(0.0))
    dump = b"".join(bytes(v) for row in store.query("SELECT * FROM wallets") for v in row
                    if isinstance(v, bytes | memoryview))
    cards = b"".join(bytes(v) for row in store.query("SELECT * FROM cards") for v in row
                     if isinstance(v, bytes | memoryview))
    assert public not in dump and public not in cards
    assert len(store.query("SELECT wallet FROM wallets")) <= 1


def test_a_card_enrolled_without_a_wallet_keeps_its_own_limit(lab: Lab) -> None:
    """A card enrolled before wallets (no wallet reference on the server) has its own
    limit only: its wrong PINs take nothing from the device's wallet cards."""
    owner = lab.device("owner")
    old, new = lab.enroll(owner), lab.enroll(owner)
    assert lab.server is not None
    lab.server.store.tamper("UPDATE cards SET wallet = NULL WHERE card_id = ?", old)
    left = []
    for n in range(CLAIMED_GUESS_LIMIT - 1):
        with pytest.raises(WrongPin) as caught:
            pay(owner, old, OTHER_PIN, key=f"typo-{n}")
        left.append(caught.value.attempts_left)
    assert left == [CLAIMED_GUESS_LIMIT - 1 - n for n in range(CLAIMED_GUESS_LIMIT - 1)]
    assert pay(owner, new, key="new").approved
    with pytest.raises(WrongPin) as caught:
        pay(owner, new, OTHER_PIN, key="typo-new")
    assert caught.value.attempts_left == CLAIMED_GUESS_LIMIT - 1


def test_enroll_begin_wire_takes_both_wallet_fields_or_neither() -> None:
    """Old clients send neither field (accepted: no wallet); one without the other is
    refused as inconsistent."""
    body = {"card_id": "0" * 32, "device_key": _b64(32), "blinded": _b64(32),
            "signature": _b64(64)}
    assert loads(ENROLL_BEGIN, json.dumps(body).encode()).wallet_key is None
    both = loads(ENROLL_BEGIN, json.dumps(
        {**body, "wallet_key": _b64(32), "wallet_signature": _b64(64)}).encode())
    assert both.wallet_key == bytes(32) and both.wallet_signature == bytes(64)
    # The wallet key is signed with the rest, under its own domain tag.
    assert both.signed_bytes() != EnrollBegin(both.card_id, both.device_key, both.blinded,
                                              both.signature).signed_bytes()
    with pytest.raises(MalformedRequest):
        loads(ENROLL_BEGIN, json.dumps({**body, "wallet_key": _b64(32)}).encode())


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(bytes(n)).decode().rstrip("=")


def test_a_card_added_to_a_wallet_at_its_limit_is_not_locked_by_it(lab: Lab) -> None:
    """Once the wallet's budget is spent (every card locked), a card the owner adds
    afterwards gets its own limit instead of being locked at its first payment."""
    owner = lab.device("owner")
    first = lab.enroll(owner)
    for n in range(CLAIMED_GUESS_LIMIT - 1):
        with pytest.raises(WrongPin):
            pay(owner, first, OTHER_PIN, key=f"typo-{n}")
    with pytest.raises(CardLocked):
        pay(owner, first, OTHER_PIN, key="last")
    added = lab.enroll(owner)
    assert lab.server is not None and lab.server.store.card(added).wallet is None
    assert pay(owner, added, key="added").approved


def test_card_state_shows_the_wallet_budget(lab: Lab) -> None:
    """Wrong PINs on one card show on the other cards of the device too: what
    ``Device.card_state`` reports left is the smaller of card and wallet budgets,
    and a right PIN of the first card gives its own back."""
    owner = lab.device("owner")
    a, b = lab.enroll(owner), lab.enroll(owner)
    for n in range(2):
        with pytest.raises(WrongPin):
            pay(owner, a, OTHER_PIN, key=f"typo-{n}")
    assert owner.device.card_state(b).attempts_left == CLAIMED_GUESS_LIMIT - 2
    with pytest.raises(WrongPin) as caught:
        pay(owner, b, OTHER_PIN, key="typo-b")
    assert caught.value.attempts_left == CLAIMED_GUESS_LIMIT - 3
    assert pay(owner, a, key="right-a").approved
    assert owner.device.card_state(b).attempts_left == CLAIMED_GUESS_LIMIT - 1
