"""Every flow of the public API end to end, in one process."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

import splitvault as sv
from splitvault.hazmat import DeviceStore
from support import HOLDER, OTHER_PIN, PAN_DIGITS, pay, snapshot


def test_enroll_lists_card_without_pan(device: sv.Device, card_id: str) -> None:
    """Enrollment returns an id; the wallet lists brand, last 4 and expiry, never the PAN."""
    [summary] = device.cards()
    assert summary == sv.CardSummary(card_id, "visa", "1111", "12/30")
    assert PAN_DIGITS not in repr(summary)


def test_authorize_approves_and_acquirer_sees_whole_card_once(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """A right PIN recombines the card for the acquirer, once, and the result is masked."""
    seen: list[tuple[str, str, str]] = []
    real = server.acquirer

    class Spy:
        def authorize(self, c: sv.Card, amount: int, currency: str, merchant: str) -> str:
            seen.append((c.pan, c.holder, c.expiry))
            return real.authorize(c, amount, currency, merchant)

    server.acquirer = Spy()
    auth = pay(device, card_id, pin)
    assert auth.approved and auth.approval_code and auth.decline_reason is None
    assert (auth.amount, auth.currency, auth.merchant) == (12000, "KRW", "Gift Shop")
    assert auth.masked_pan == "•••• 1111" and auth.idempotency_key == "order-1"
    assert auth.timestamp.tzinfo is not None
    assert seen == [(PAN_DIGITS, HOLDER, "12/30")]


def test_same_key_same_payment_returns_recorded_result(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """Exactly-once: a retry returns the recorded result without calling the acquirer."""
    first = pay(device, card_id, pin)
    again = pay(device, card_id, pin)
    assert again == first
    assert len(server.acquirer.calls) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "change", [{"amount": 12001}, {"merchant": "Other Shop"}, {"currency": "USD"}]
)
def test_same_key_other_payment_conflicts(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin,
    change: dict[str, object],
) -> None:
    """The same idempotency key with any other parameter is refused, nothing charged."""
    pay(device, card_id, pin)
    params: dict[str, object] = {"amount": 12000, "currency": "KRW", "merchant": "Gift Shop"}
    params.update(change)
    with pytest.raises(sv.IdempotencyConflict):
        device.authorize(card_id, pin, idempotency_key="order-1", **params)  # type: ignore[arg-type]
    assert len(server.acquirer.calls) == 1  # type: ignore[attr-defined]


def test_idempotency_keys_are_per_card(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """Two cards may use the same order number without colliding."""
    other = device.enroll(sv.Card("5555 5555 5555 4444", "01/31", "LEE JIEUN"), pin)
    a = pay(device, card_id, pin)
    b = pay(device, other, pin, amount=500)
    assert a.approved and b.approved and b.masked_pan == "•••• 4444"
    assert len(server.acquirer.calls) == 2  # type: ignore[attr-defined]


def test_wrong_pin_counts_down_then_locks(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """attempts_left counts down honestly; the fifth wrong PIN locks; the right PIN is
    then refused too, and the acquirer was never called."""
    with sv.Pin.from_digits(OTHER_PIN) as wrong:
        for left in (4, 3, 2, 1):
            with pytest.raises(sv.WrongPin) as err:
                pay(device, card_id, wrong, key=f"w{left}")
            assert err.value.attempts_left == left
            assert server.card_state(card_id).attempts_left == left
        with pytest.raises(sv.CardLocked):
            pay(device, card_id, wrong, key="w0")
    with pytest.raises(sv.CardLocked):
        pay(device, card_id, pin)
    assert server.acquirer.calls == []  # type: ignore[attr-defined]
    assert server.card_state(card_id).locked


def test_lock_survives_restart(tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """A locked card stays locked when the server process is restarted."""
    server = sv.ShareServer.open(tmp_path / "s.db")
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    with sv.Pin.from_digits(OTHER_PIN) as wrong:
        for i in range(5):
            with pytest.raises((sv.WrongPin, sv.CardLocked)):
                pay(device, card_id, wrong, key=f"k{i}")
    device.close()
    server.close()
    server = sv.ShareServer.open(tmp_path / "s.db")
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    with pytest.raises(sv.CardLocked):
        pay(device, card_id, pin)
    assert server.card_state(card_id).locked


def test_right_pin_resets_guess_count(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """A verified authorization resets the count, so old mistakes do not add up."""
    with sv.Pin.from_digits(OTHER_PIN) as wrong:
        for i in range(4):
            with pytest.raises(sv.WrongPin):
                pay(device, card_id, wrong, key=f"w{i}")
    pay(device, card_id, pin)
    assert server.card_state(card_id).guesses_used == 0
    with sv.Pin.from_digits(OTHER_PIN) as wrong, pytest.raises(sv.WrongPin) as err:
        pay(device, card_id, wrong, key="w9")
    assert err.value.attempts_left == 4


def test_decline_is_a_recorded_result(tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """Declines (over limit, expired) come back as results and are replayed, not re-sent."""
    acquirer = sv.SimulatedAcquirer(limit=10_000, today=datetime.date(2031, 1, 1))
    server = sv.ShareServer.open(tmp_path / "s.db", acquirer=acquirer)
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    auth = pay(device, card_id, pin)
    assert not auth.approved and auth.decline_reason == "card expired"
    assert auth.approval_code is None
    assert pay(device, card_id, pin) == auth
    assert len(acquirer.calls) == 1
    acquirer._today = None
    over = pay(device, card_id, pin, key="big", amount=10_001)
    assert over.decline_reason == "amount over limit"


def test_acquirer_failure_records_nothing(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """If the acquirer says it took nothing, nothing is recorded and a retry may succeed."""
    real = server.acquirer

    class Down:
        def authorize(self, c: sv.Card, amount: int, currency: str, merchant: str) -> str:
            raise sv.AcquirerUnavailable(f"gateway refused the connection for {c.pan}")

    server.acquirer = Down()
    with pytest.raises(sv.AcquirerUnavailable) as err:
        pay(device, card_id, pin)
    assert PAN_DIGITS not in str(err.value) and err.value.__cause__ is None
    assert _ledger_rows(server) == []
    server.acquirer = real
    assert pay(device, card_id, pin).approved


def test_acquirer_error_after_charging_is_in_doubt_not_failed(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """An acquirer that takes the money and then times out is never reported as a
    failure (the incident behind this project) and never charged again on retry."""
    charged: list[int] = []

    class TimesOutAfterCharging:
        def authorize(self, c: sv.Card, amount: int, currency: str, merchant: str) -> str:
            charged.append(amount)
            raise TimeoutError(f"read timeout for {c.pan}")

    server.acquirer = TimesOutAfterCharging()
    for _ in range(2):
        with pytest.raises(sv.PaymentInDoubt) as err:
            pay(device, card_id, pin)
        assert PAN_DIGITS not in str(err.value) and err.value.__cause__ is None
    assert charged == [12000]


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


def test_crash_after_acquirer_answer_never_charges_twice(
    tmp_path: Path, card: sv.Card, pin: sv.Pin
) -> None:
    """A crash between the acquirer's approval and its recording leaves the payment in
    doubt; the retry after restart is refused instead of charging again."""
    calls: list[int] = []

    class ApprovesThenDies:
        def authorize(self, c: sv.Card, amount: int, currency: str, merchant: str) -> str:
            calls.append(amount)
            raise Crash

    server = sv.ShareServer.open(tmp_path / "s.db", acquirer=ApprovesThenDies())
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    with pytest.raises(Crash):
        pay(device, card_id, pin)
    server.close()
    restarted = sv.ShareServer.open(tmp_path / "s.db", acquirer=ApprovesThenDies())
    device = sv.Device.open(tmp_path / "d.db", server=restarted, kdf=sv.KdfProfile.TEST_ONLY)
    with pytest.raises(sv.PaymentInDoubt):
        pay(device, card_id, pin)
    assert calls == [12000]


def test_change_pin(device: sv.Device, server: sv.ShareServer, card_id: str,
                   pin: sv.Pin) -> None:
    """After a PIN change the old PIN is wrong and the new one pays."""
    with sv.Pin.from_digits(OTHER_PIN) as new:
        device.change_pin(card_id, pin, new)
        with pytest.raises(sv.WrongPin):
            pay(device, card_id, pin)
        assert pay(device, card_id, new, key="after").approved
    assert server.card_state(card_id).guesses_used == 0


def test_change_pin_rotates_oprf_key(device: sv.Device, server: sv.ShareServer,
                                     card_id: str, pin: sv.Pin) -> None:
    """The server's OPRF key is replaced on a PIN change (old transcripts are worthless)."""
    inspector = server.inspector()
    (before,) = inspector.query("SELECT oprf_key FROM cards")[0]
    with sv.Pin.from_digits(OTHER_PIN) as new:
        device.change_pin(card_id, pin, new)
    (after,) = inspector.query("SELECT oprf_key FROM cards")[0]
    old_key = inspector.unwrap("oprf-key", card_id, before)
    new_key = inspector.unwrap("oprf-key", card_id, after)
    assert len(old_key) == len(new_key) == 32 and old_key != new_key


def test_change_pin_with_wrong_old_pin_spends_a_guess(
    device: sv.Device, server: sv.ShareServer, card_id: str, pin: sv.Pin
) -> None:
    """The old PIN is proven like a payment: wrong means WrongPin and one guess gone."""
    with sv.Pin.from_digits(OTHER_PIN) as wrong, sv.Pin.from_digits("902417") as new:
        with pytest.raises(sv.WrongPin) as err:
            device.change_pin(card_id, wrong, new)
        assert err.value.attempts_left == 4
        with pytest.raises(sv.WrongPin):
            pay(device, card_id, new)
    assert pay(device, card_id, pin, key="still-old").approved


def test_delete_destroys_both_shares(tmp_path: Path, device: sv.Device, server: sv.ShareServer,
                                     card_id: str, pin: sv.Pin) -> None:
    """After delete neither side has a row for the card: it is gone for good."""
    device.delete(card_id)
    assert device.cards() == []
    with pytest.raises(sv.UnknownCard):
        pay(device, card_id, pin)
    with pytest.raises(sv.UnknownCard):
        server.card_state(card_id)
    rows = snapshot(tmp_path / "server.db", tmp_path / "device.db")
    assert rows["server.db:cards"] == [] and rows["device.db:cards"] == []


def test_security_phrase_stays_on_device(tmp_path: Path, device: sv.Device, card: sv.Card,
                                         pin: sv.Pin) -> None:
    """The keypad's security phrase is stored on the device only."""
    card_id = device.enroll(card, pin, security_phrase="blue heron")
    assert device.security_phrase(card_id) == "blue heron"
    assert b"blue heron" not in (tmp_path / "server.db").read_bytes()
    with pytest.raises(sv.InvalidPhrase):
        device.enroll(card, pin, security_phrase="x" * 41)


def test_flexible_policy_allows_four_digits(tmp_path: Path, server: sv.ShareServer,
                                            card: sv.Card) -> None:
    """PinPolicy.FLEXIBLE accepts a 4-digit PIN that DEFAULT refuses."""
    strict = sv.Device.open(tmp_path / "a.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    loose = sv.Device.open(tmp_path / "b.db", server=server, kdf=sv.KdfProfile.TEST_ONLY,
                           pin_policy=sv.PinPolicy.FLEXIBLE)
    with sv.Pin.from_digits("7391") as four:
        with pytest.raises(sv.InvalidPin, match="exactly 6 digits"):
            strict.enroll(card, four)
        card_id = loose.enroll(card, four)
        assert pay(loose, card_id, four).approved


def test_kdf_profile_is_stored_per_card(tmp_path: Path, server: sv.ShareServer,
                                        card: sv.Card, pin: sv.Pin) -> None:
    """A card enrolled under one KDF profile still works when the device is reopened
    with another: the cost parameters travel with the card."""
    dev = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = dev.enroll(card, pin)
    dev.close()
    reopened = sv.Device.open(tmp_path / "d.db", server=server)  # INTERACTIVE default
    assert reopened._store.get(card_id).kdf == sv.KdfProfile.TEST_ONLY.value
    assert pay(reopened, card_id, pin).approved


def _ledger_rows(server: sv.ShareServer) -> list[tuple[object, ...]]:
    return server.inspector().query("SELECT * FROM authorizations")


def test_lost_reply_is_retried_without_a_second_charge(tmp_path: Path, server: sv.ShareServer,
                                                       card: sv.Card, pin: sv.Pin) -> None:
    """If the authorization's reply is lost (the server charged, the device never heard),
    Device.authorize retries with the same idempotency key and gets the recorded result;
    the acquirer is called once."""

    class LosesFirstReply:
        def __init__(self) -> None:
            self.lost = False

        def __getattr__(self, name: str) -> object:
            return getattr(server, name)

        def authorize(self, request: object) -> sv.Authorization:
            result = server.authorize(request)  # type: ignore[arg-type]
            if not self.lost:
                self.lost = True
                raise sv.ServerUnavailable("connection reset after the request was sent")
            return result

    device = sv.Device(DeviceStore(tmp_path / "lossy.db"), LosesFirstReply(),
                       kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    auth = pay(device, card_id, pin)
    assert auth.approved
    assert len(server.acquirer.calls) == 1  # type: ignore[attr-defined]
    assert server.card_state(card_id).guesses_used == 0
