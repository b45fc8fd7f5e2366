"""A t-of-n deployment in this process (3 realms, threshold 2, one gateway; each its own
SQLite store): payments, faulty and dead realms, guess limits and bad input. The
deployment and its misbehaving stand-ins are in ``realm_support.py``."""

from __future__ import annotations

import dataclasses
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realm_support import PIN, WRONG_PIN, Attacker, RealmLab, Site, realm_lab

import splitvault as sv
from splitvault._realm_api import REALM_REGISTER
from splitvault._realm_protocol import (
    REGISTER_PLAIN_LEN,
    GatewayAuthorize,
    RealmEvaluate,
    RealmEvaluateReply,
    RealmRelease,
    RealmReleaseReply,
    register_aad,
    share_aad,
)
from splitvault._wire import loads
from splitvault.crypto import _field, oprf
from splitvault.crypto.dleq import generate_proof
from splitvault.crypto.envelope import seal_envelope
from splitvault.crypto.signing import sign

N, T, G = 3, 2, sv.ServerProfile.REALM.guess_limit
MAX_PIN_TESTS = N * G // T
"""floor(n * G / t): the most PIN tests an attacker with the device gets (threat model)."""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[RealmLab]:
    with realm_lab(tmp_path) as lab:
        yield lab


def _enrolled(lab: RealmLab) -> tuple[sv.Device, str]:
    dev = lab.device()
    return dev, lab.enroll(dev)


def _resign(dev: sv.Device, card_id: str, request: GatewayAuthorize,
            gateway_key: bytes) -> GatewayAuthorize:
    """``request`` signed again with the device key (an attacker holding the device)."""
    seed = bytearray(dev._store.get(card_id).sign_seed)
    return dataclasses.replace(request, signature=sign(seed, request.signed_bytes(gateway_key)))


# -- 1. the happy path ----------------------------------------------------------------------


def test_pay_and_retry_charge_once(lab: RealmLab) -> None:
    """A payment and its retry with the same idempotency key give the same approval;
    the gateway's ledger holds one approved payment and the acquirer was asked once;
    the device's history records it once. The realms hold the card, the gateway not."""
    dev, card_id = _enrolled(lab)
    first = lab.pay(dev, card_id)
    again = lab.pay(dev, card_id)
    assert first.approved and again.approved
    assert again.approval_code == first.approval_code
    assert lab.gateway.payment_state(card_id, "order-1") == "approved"
    assert lab.charged() == 1
    history = dev.history(card_id)
    assert [(h.idempotency_key, h.outcome, h.detail) for h in history] == [
        ("order-1", "approved", first.approval_code)]
    assert all(r.store.card(card_id) is not None for r in lab.realms)
    assert lab.gateway.store.card(card_id) is None
    assert lab.unproven(card_id) == [0, 0, 0]  # a correct PIN gave the guesses back


# -- 2. faulty realms -----------------------------------------------------------------------


def _wrong_key(site: Site) -> None:
    """The realm evaluates (and counts) as usual, then answers under another key with a
    proof that is valid for that other key: well-formed, and wrong."""
    def evaluate(request: RealmEvaluate) -> RealmEvaluateReply:
        reply = site.server.realm_evaluate(request)
        other = oprf.generate_key()
        evaluated = oprf.blind_evaluate(other, request.blinded)
        proof = generate_proof(other, _field.base_mult(other), [request.blinded], [evaluated])
        return dataclasses.replace(reply, evaluated=evaluated, proof=proof)
    site.evaluate = evaluate


def _bad_proof(site: Site) -> None:
    """The right evaluation with one bit of the proof flipped."""
    def evaluate(request: RealmEvaluate) -> RealmEvaluateReply:
        reply = site.server.realm_evaluate(request)
        proof = bytearray(reply.proof)
        proof[5] ^= 1
        return dataclasses.replace(reply, proof=bytes(proof))
    site.evaluate = evaluate


FAULTS = {"wrong-key": _wrong_key, "bad-proof": _bad_proof}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("faulty", [0, 1, 2])
def test_faulty_realm_is_replaced_by_a_spare(lab: RealmLab, faulty: int, fault: str) -> None:
    """One realm returns a wrong evaluation, the other two are healthy: the payment is
    made with the spare, and the faulty realm was indeed asked (or it proves nothing)."""
    dev, card_id = _enrolled(lab)
    FAULTS[fault](lab.sites[faulty])
    assert lab.pay(dev, card_id).approved
    assert lab.sites[faulty].calls.get("evaluate", 0) >= 1 or faulty == 2
    assert lab.gateway.payment_state(card_id, "order-1") == "approved"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("faulty", "down"), [(0, 2), (1, 2), (2, 0), (0, 1)])
def test_faulty_realm_without_spare_is_named_never_wrong_pin(
        lab: RealmLab, faulty: int, down: int, fault: str) -> None:
    """Only t = 2 realms reachable and one of them faulty: ``RealmFaulty`` naming exactly
    that realm (not ``WrongPin``, not a generic outage), and nothing charged."""
    dev, card_id = _enrolled(lab)
    FAULTS[fault](lab.sites[faulty])
    lab.sites[down].down = True
    with pytest.raises(sv.VaultError) as caught:
        lab.pay(dev, card_id)
    assert type(caught.value) is sv.RealmFaulty, caught.value
    assert not isinstance(caught.value, sv.WrongPin)
    assert caught.value.realms == (lab.sites[faulty].name,)
    assert lab.gateway.payment_state(card_id, "order-1") is None
    assert [h.outcome for h in dev.history(card_id)] != ["wrong_pin"]


def test_realm_releasing_a_wrong_share_is_named_by_the_gateway(lab: RealmLab) -> None:
    """A realm whose PIN check passes but that releases a wrong share (sealed correctly
    to the gateway, bound to this payment: only its content is wrong, as a corrupted
    store would give): the gateway checks it against the device's commitment and names
    the realm; the ledger is untouched, and the next payment without the fault pays."""
    dev, card_id = _enrolled(lab)
    site = lab.sites[0]

    def release(request: RealmRelease) -> RealmReleaseReply:
        site.server.realm_release(request)  # the real check, which passes
        version = dev._store.get(card_id).share_version
        challenge = site.server.store.challenge(request.challenge_id)
        card = site.server.store.card(card_id)
        assert challenge is not None and card is not None
        aad = share_aad(request.card_id, site.key, request.gateway_key, version,
                        request.amount, request.currency, request.merchant,
                        request.idempotency_key, floor=card.share_floor,
                        expires=int(challenge.expires_at * 1000))
        return RealmReleaseReply(seal_envelope(request.gateway_key,
                                               bytearray(secrets.token_bytes(64)), aad))

    site.release = release
    with pytest.raises(sv.RealmFaulty) as caught:
        lab.pay(dev, card_id)
    assert caught.value.realms == ("realm-1",)
    assert lab.gateway.payment_state(card_id, "order-1") is None
    assert lab.charged() == 0
    site.release = None
    assert lab.pay(dev, card_id).approved


# -- 3. availability ------------------------------------------------------------------------


@pytest.mark.parametrize("down", [0, 1, 2])
def test_one_realm_down_enroll_and_pay(lab: RealmLab, down: int) -> None:
    """Any one realm down: enrollment and payments succeed; the realm that was down
    gets the card before the next payment once it is back."""
    lab.sites[down].down = True
    dev, card_id = _enrolled(lab)
    assert lab.pay(dev, card_id).approved
    assert lab.realms[down].store.card(card_id) is None
    lab.sites[down].down = False
    assert lab.pay(dev, card_id, key="order-2").approved
    assert lab.realms[down].store.card(card_id) is not None
    # And it now serves: with the two others down it is one of t again.
    lab.sites[(down + 1) % 3].down = True
    assert lab.pay(dev, card_id, key="order-3").approved


def test_realm_catches_up_when_the_device_opens(lab: RealmLab) -> None:
    """A realm down at enrollment is sent its registration when the device is next
    opened (no payment needed)."""
    lab.sites[2].down = True
    dev, card_id = _enrolled(lab)
    dev.close()
    lab.devices.remove(dev)
    lab.sites[2].down = False
    assert lab.realms[2].store.card(card_id) is None
    lab.device()
    assert lab.realms[2].store.card(card_id) is not None


@pytest.mark.parametrize("up", [0, 1, 2])
def test_two_realms_down_nothing_charged(lab: RealmLab, up: int) -> None:
    """Two realms down: ``ServerUnavailable`` naming both (and not the one that
    answered), nothing charged, and at most the one evaluation the threat model allows
    spent at the realm that answered."""
    dev, card_id = _enrolled(lab)
    for i, site in enumerate(lab.sites):
        site.down = i != up
    with pytest.raises(sv.ServerUnavailable) as caught:
        lab.pay(dev, card_id)
    missing = str(caught.value).split("no answer from", 1)[1]
    for i, site in enumerate(lab.sites):
        assert (site.name in missing) == (i != up), str(caught.value)
    assert not isinstance(caught.value, sv.RealmFaulty)
    assert lab.gateway.payment_state(card_id, "order-1") is None
    assert lab.charged() == 0
    assert lab.unproven(card_id)[up] <= 1
    for site in lab.sites:
        site.down = False
    assert lab.pay(dev, card_id).approved  # the outage cost no PIN attempt


def test_two_realms_down_at_enrollment_keeps_nothing(lab: RealmLab) -> None:
    """Fewer than t realms take a card: ``ServerUnavailable`` naming the missing ones,
    the realm that took it deletes it, and the device keeps no card."""
    lab.sites[0].down = lab.sites[1].down = True
    dev = lab.device()
    with pytest.raises(sv.ServerUnavailable, match="realm-1, realm-2"):
        lab.enroll(dev)
    assert dev.cards() == []
    assert [ref.table for ref in lab.realms[2].store.wrapped()
            if ref.table in ("cards", "pending_cards")] == []


# -- 4. guess limits ------------------------------------------------------------------------


def _wrong_pins_until_locked(lab: RealmLab, dev: sv.Device, card_id: str) -> int:
    tests = 0
    for attempt in range(3 * MAX_PIN_TESTS):
        try:
            lab.pay(dev, card_id, WRONG_PIN, key=f"wrong-{attempt}")
        except sv.WrongPin:
            tests += 1
        except sv.CardLocked:
            return tests
    raise AssertionError("never locked")


def test_device_gets_at_most_floor_n_g_over_t_pin_tests(lab: RealmLab) -> None:
    """Wrong PINs through the device: at most floor(n * G / t) ``WrongPin`` before
    ``CardLocked``; then the right PIN is refused too."""
    dev, card_id = _enrolled(lab)
    tests = _wrong_pins_until_locked(lab, dev, card_id)
    assert 1 <= tests <= MAX_PIN_TESTS
    with pytest.raises(sv.CardLocked):
        lab.pay(dev, card_id)
    assert lab.charged() == 0


def test_correct_pin_gives_the_guesses_back(lab: RealmLab) -> None:
    """Two wrong PINs, then the right one: the t realms that checked it forget the wrong
    ones (a realm gives back only its own count), and the device gets tests again."""
    dev, card_id = _enrolled(lab)
    for attempt in range(2):
        with pytest.raises(sv.WrongPin):
            lab.pay(dev, card_id, WRONG_PIN, key=f"wrong-{attempt}")
    assert sum(lab.unproven(card_id)) == 2 * T
    before = lab.unproven(card_id)
    assert lab.pay(dev, card_id).approved
    after = lab.unproven(card_id)
    assert after.count(0) >= T and sum(after) < sum(before)
    first = _wrong_pins_until_locked(lab, dev, card_id)
    assert 1 <= first <= MAX_PIN_TESTS


_REALM_ORDER = st.permutations([0, 1, 2]).map(tuple)
_STEP = st.tuples(
    st.integers(min_value=1, max_value=3).flatmap(
        lambda k: _REALM_ORDER.map(lambda order: order[:k])),   # realms asked, in order
    _REALM_ORDER.map(lambda order: order[:2]))                   # where to release
_WRONG = [f"{n:06d}" for n in (580247, 913374, 264051, 735128, 108693, 476902, 359817,
                               821046, 640395, 197528, 532719)]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(_STEP, min_size=6, max_size=10))
def test_attacker_choosing_realms_gets_at_most_floor_n_g_over_t_tests(
        steps: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
    """An attacker with the device's keys asks the realms directly, choosing for each
    candidate PIN which realms to ask (one, two or three, in any order) and where to
    release. However he spreads them, at most floor(n * G / t) distinct candidates
    get a verdict: a PIN test needs t evaluations and each realm counts G at most.
    Every verdict he gets is ``WrongPin``, never a share for a wrong PIN."""
    with tempfile.TemporaryDirectory() as root, realm_lab(Path(root)) as lab:
        dev, card_id = _enrolled(lab)
        attacker = Attacker(lab, dev, card_id)
        tested: set[str] = set()
        verdicts = 0
        for (ask, release_at), candidate in zip(steps, _WRONG, strict=False):
            outcomes = attacker.test_pin(candidate, [lab.sites[i] for i in ask],
                                         [lab.sites[i] for i in release_at])
            for outcome in outcomes:
                assert not isinstance(outcome, RealmReleaseReply), "share for a wrong PIN"
                if isinstance(outcome, sv.WrongPin):
                    tested.add(candidate)
                    verdicts += 1
                else:
                    assert isinstance(outcome, sv.CardLocked), outcome
        assert len(tested) <= MAX_PIN_TESTS, (steps, tested)
        # Per realm, never more verdicts than its limit.
        assert verdicts <= N * G
        assert all(u <= G for u in lab.unproven(card_id))


def test_attacker_best_spread_reaches_exactly_the_bound(lab: RealmLab) -> None:
    """The bound is tight and the harness sees a test: pairs (1,2), (1,3), (2,3),
    (1,2)... spread nine evaluations over four candidates, and a fifth gets nothing."""
    dev, card_id = _enrolled(lab)
    attacker = Attacker(lab, dev, card_id)
    pairs = [(0, 1), (2, 0), (1, 2), (0, 1), (2, 0), (1, 2)]
    tested = []
    for (a, b), candidate in zip(pairs, _WRONG, strict=False):
        outcomes = attacker.test_pin(candidate, [lab.sites[a], lab.sites[b]],
                                     [lab.sites[a]])
        if any(isinstance(o, sv.WrongPin) for o in outcomes):
            tested.append(candidate)
    assert len(tested) == MAX_PIN_TESTS
    # The right PIN, after the realms are spent, is refused as well.
    with pytest.raises(sv.CardLocked):
        lab.pay(dev, card_id)


# -- 5. bad input changes nothing -----------------------------------------------------------


def _pending_registration(lab: RealmLab) -> tuple[sv.Device, str, Site, bytes]:
    """A card enrolled while realm-3 was down: its registration, still on the device."""
    lab.sites[2].down = True
    dev, card_id = _enrolled(lab)
    part = next(p for p in dev._store.realm_parts(card_id) if p.realm_key == lab.sites[2].key)
    assert part.registration is not None
    return dev, card_id, lab.sites[2], part.registration


def test_bad_registrations_change_nothing(lab: RealmLab) -> None:
    """A registration with a flipped signature, an envelope swapped for one sealed to
    another realm's AAD (re-signed by the device key), or an envelope cut short: typed
    errors, and the realm holds no card. The genuine registration then works."""
    dev, card_id, site, raw = _pending_registration(lab)
    request = loads(REALM_REGISTER, raw)
    seed = bytearray(dev._store.get(card_id).sign_seed)
    bad_sig = bytearray(request.signature)
    bad_sig[0] ^= 1
    other_aad = seal_envelope(site.key, bytearray(secrets.token_bytes(REGISTER_PLAIN_LEN)),
                              register_aad(card_id, lab.sites[0].key))
    wrong_envelope = dataclasses.replace(request, envelope=other_aad)
    wrong_envelope = dataclasses.replace(
        wrong_envelope, signature=sign(seed, wrong_envelope.signed_bytes(site.key)))
    short = dataclasses.replace(request, envelope=request.envelope[:-1])
    for bad, error in [(dataclasses.replace(request, signature=bytes(bad_sig)),
                        sv.TamperedData), (wrong_envelope, sv.TamperedData),
                       (short, sv.MalformedRequest)]:
        with pytest.raises(error):
            site.server.realm_register(bad)
        assert site.server.store.card(card_id) is None
    site.server.realm_register(request)
    assert site.server.store.card(card_id) is not None


def test_release_to_a_gateway_outside_the_deployment_changes_nothing(lab: RealmLab) -> None:
    """A release naming a gateway key not in the realm's deployment (the thief's own):
    ``MalformedRequest`` before the challenge is touched, so the same evaluation then
    releases to the real gateway; the guess counts are unchanged by the refusal."""
    dev, card_id = _enrolled(lab)
    attacker = Attacker(lab, dev, card_id)
    sites = lab.sites[:2]
    with sv.Pin.from_digits(PIN) as p:
        from splitvault.hazmat import BlindedPin
        with BlindedPin(card_id, p) as blinded:
            replies = {s.key: attacker.evaluate(s, blinded.blinded) for s in sites}
            seed = attacker.pin_seed(PIN, replies, blinded)
    before = lab.unproven(card_id)
    thief = secrets.token_bytes(32)
    with pytest.raises(sv.MalformedRequest, match="gateway"):
        attacker.release(sites[0], replies[sites[0].key], seed, gateway_key=thief)
    assert lab.unproven(card_id) == before
    attacker.release(sites[0], replies[sites[0].key], seed)  # the challenge still stands
    assert lab.unproven(card_id)[0] == 0


def _drop_share(request: GatewayAuthorize) -> GatewayAuthorize:
    return dataclasses.replace(request, shares=request.shares[:1])


def _duplicate_share(request: GatewayAuthorize) -> GatewayAuthorize:
    return dataclasses.replace(request, shares=(request.shares[0], request.shares[0]))


def _swap_index(request: GatewayAuthorize) -> GatewayAuthorize:
    first, second = request.shares[:2]
    return dataclasses.replace(request, shares=(
        dataclasses.replace(first, index=second.index), second))


def _flip_envelope(request: GatewayAuthorize) -> GatewayAuthorize:
    envelope = bytearray(request.envelope)
    envelope[-1] ^= 1
    return dataclasses.replace(request, envelope=bytes(envelope))


def _flip_share(request: GatewayAuthorize) -> GatewayAuthorize:
    first = request.shares[0]
    sealed = bytearray(first.sealed)
    sealed[-1] ^= 1
    return dataclasses.replace(request, shares=(
        dataclasses.replace(first, sealed=bytes(sealed)), *request.shares[1:]))


REWRITES = {
    # (how the request is changed, whether the device key signs it again, the error)
    "one-realm-only": (_drop_share, True, sv.MalformedRequest),
    "duplicate-share": (_duplicate_share, True, sv.MalformedRequest),
    "envelope-flipped": (_flip_envelope, True, sv.TamperedData),
    "share-flipped": (_flip_share, True, sv.TamperedData),
    "envelope-flipped-unsigned": (_flip_envelope, False, sv.TamperedData),
    "index-swapped": (_swap_index, True, sv.MalformedRequest),
}


@pytest.mark.parametrize("rewrite", REWRITES)
def test_bad_gateway_requests_leave_the_ledger_untouched(lab: RealmLab, rewrite: str) -> None:
    """The gateway request changed on the way (and, for an attacker with the device,
    signed again): a typed error, no ledger row, the acquirer not called; the same
    payment sent intact afterwards is charged exactly once."""
    change, resign, error = REWRITES[rewrite]
    dev, card_id = _enrolled(lab)

    def tamper(request: GatewayAuthorize) -> GatewayAuthorize:
        changed = change(request)
        return _resign(dev, card_id, changed, lab.gateway_key) if resign else changed

    lab.gateway_site.rewrite = tamper
    with pytest.raises(error):
        lab.pay(dev, card_id)
    assert lab.gateway.payment_state(card_id, "order-1") is None
    assert lab.charged() == 0
    lab.gateway_site.rewrite = None
    assert lab.pay(dev, card_id).approved
    assert lab.charged() == 1
