"""Every error of the public API: typed, exact, secret-free, and leaving state unchanged."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import pytest

import splitvault as sv
from support import PAN_DIGITS, PIN, pay, snapshot


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "server.db", tmp_path / "device.db"


def _unchanged(files: tuple[Path, Path], before: dict[str, list[tuple[object, ...]]]) -> None:
    assert snapshot(*files) == before


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"amount": 0}, sv.InvalidPayment, "^amount must be at least 1 minor unit; got 0$"),
        ({"amount": -5}, sv.InvalidPayment, "^amount must be at least 1 minor unit; got -5$"),
        ({"amount": 12.5}, sv.InvalidPayment, r"^amount must be an integer number of minor "
         r"units \(KRW has no minor unit: 12000 is 12,000 KRW\); got float 12\.5$"),
        ({"currency": "XYZ"}, sv.InvalidPayment, r"^unknown currency code 'XYZ' \(ISO 4217"),
        ({"currency": "krw"}, sv.InvalidPayment, "^unknown currency code: did you mean 'KRW'"),
        ({"merchant": ""}, sv.InvalidPayment, "merchant name must be"),
        ({"idempotency_key": "order 1"}, sv.InvalidPayment, "idempotency key must be"),
    ],
)
def test_bad_payment_changes_nothing(device: sv.Device, card_id: str, pin: sv.Pin,
                                     files: tuple[Path, Path], kwargs: dict[str, object],
                                     error: type[Exception], message: str) -> None:
    """Caller mistakes in a payment raise a ValueError subclass before anything is sent."""
    params: dict[str, object] = {"amount": 100, "currency": "KRW", "merchant": "Shop",
                                 "idempotency_key": "k1"}
    params.update(kwargs)
    before = snapshot(*files)
    with pytest.raises(error, match=message) as err:
        device.authorize(card_id, pin, **params)  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError) and isinstance(err.value, sv.VaultError)
    _unchanged(files, before)


@pytest.mark.parametrize("digits", ["123456", "111111", "121212", "123123", "654321",
                                    "112233", "159753", "987654", "000000"])
def test_weak_pin_refused_at_enrollment(device: sv.Device, card: sv.Card,
                                        files: tuple[Path, Path], digits: str) -> None:
    """Weak PINs are refused with WeakPin and nothing is enrolled on either side."""
    sv.ShareServer  # noqa: B018  (fixtures above created both databases)
    before = snapshot(*files)
    with sv.Pin.from_digits(digits) as weak, pytest.raises(sv.WeakPin):
        device.enroll(card, weak)
    _unchanged(files, before)


def test_weak_new_pin_refused_at_change(device: sv.Device, card_id: str, pin: sv.Pin,
                                        files: tuple[Path, Path]) -> None:
    """A weak new PIN is refused before the old one is even proven (no guess spent)."""
    before = snapshot(*files)
    with sv.Pin.from_digits("111111") as weak, pytest.raises(sv.WeakPin):
        device.change_pin(card_id, pin, weak)
    _unchanged(files, before)


@pytest.mark.parametrize("bad", ["97", "1234567890123", "12a456", "１２３４５６", "", " 739184"])
def test_malformed_pin_is_invalid_pin(bad: str) -> None:
    """A PIN that is not 4-12 ASCII digits raises InvalidPin (a ValueError), never echoing it."""
    with pytest.raises(sv.InvalidPin) as err:
        sv.Pin.from_digits(bad)
    assert isinstance(err.value, ValueError)
    assert not bad or bad.strip() not in str(err.value)


def test_unknown_card_changes_nothing(device: sv.Device, card_id: str, pin: sv.Pin,
                                      files: tuple[Path, Path]) -> None:
    """Paying with an id the device does not hold raises UnknownCard, nothing sent."""
    before = snapshot(*files)
    with pytest.raises(sv.UnknownCard):
        pay(device, "f" * 32, pin)
    with pytest.raises(sv.UnknownCard):
        device.delete("not-an-id")
    _unchanged(files, before)


def test_unknown_card_ids_leave_no_lock_behind(device: sv.Device, card_id: str,
                                               pin: sv.Pin) -> None:
    """Each payment takes its card's lock before it reads the card; an id that names
    no card (or is no string) does not leave a lock behind, however many are tried."""
    from splitvault.device import _device

    before = len(_device._CARD_LOCKS)
    for n in range(50):
        with pytest.raises(sv.UnknownCard):
            pay(device, f"{n:032x}", pin)
    with pytest.raises(sv.UnknownCard):
        pay(device, ["not", "hashable"], pin)  # type: ignore[arg-type]
    assert len(_device._CARD_LOCKS) == before
    assert pay(device, card_id, pin).approved


def test_non_pin_and_non_card_arguments(device: sv.Device, card_id: str, card: sv.Card,
                                        files: tuple[Path, Path]) -> None:
    """Passing a str where a Pin or Card belongs is a typed error, not a crash."""
    before = snapshot(*files)
    with pytest.raises(sv.InvalidPin, match=r"must be a splitvault\.Pin"):
        device.authorize(card_id, PIN, amount=1, currency="KRW", merchant="x",  # type: ignore[arg-type]
                         idempotency_key="k")
    with pytest.raises(sv.InvalidCard, match=r"must be a splitvault\.Card"):
        device.enroll(PAN_DIGITS, sv.Pin.from_digits(PIN))  # type: ignore[arg-type]
    _unchanged(files, before)


def test_wrong_pin_changes_only_the_guess_count(device: sv.Device, server: sv.ShareServer,
                                                card_id: str, files: tuple[Path, Path]) -> None:
    """A wrong PIN spends one guess (and logs it); no payment is recorded, the device
    store is untouched but for the refresh key drawn for the payment's re-split and
    how long it is kept (written before the request, as any payment's is), and the
    card itself is unchanged."""
    before = snapshot(*files)
    with sv.Pin.from_digits("580247") as wrong, pytest.raises(sv.WrongPin):
        pay(device, card_id, wrong)
    after = snapshot(*files)
    conn = sqlite3.connect(files[1])  # the device store
    try:
        names = [row[1] for row in conn.execute("PRAGMA table_info(cards)")]
    finally:
        conn.close()
    [device_before], [device_after] = before["device.db:cards"], after["device.db:cards"]
    was, now = dict(zip(names, device_before, strict=True)), dict(
        zip(names, device_after, strict=True))
    assert was["refresh_secret"] is None and len(now["refresh_secret"]) == 32
    assert was["refresh_until"] is None and now["refresh_until"] > 0
    drawn = {"refresh_secret", "refresh_until"}
    assert ({k: v for k, v in now.items() if k not in drawn}
            == {k: v for k, v in was.items() if k not in drawn})
    assert after["server.db:authorizations"] == [] == before["server.db:authorizations"]
    [(row_before), (row_after)] = before["server.db:cards"] + after["server.db:cards"]
    assert row_after[6] == row_before[6] + 1  # guesses_used
    assert row_after[:6] == row_before[:6]


def test_idempotency_conflict_records_nothing_new(device: sv.Device, card_id: str,
                                                  pin: sv.Pin, files: tuple[Path, Path]) -> None:
    """A conflicting retry leaves the recorded payment exactly as it was."""
    pay(device, card_id, pin)
    before = snapshot(*files)
    with pytest.raises(sv.IdempotencyConflict):
        pay(device, card_id, pin, amount=1)
    assert snapshot(*files)["server.db:authorizations"] == before["server.db:authorizations"]


def test_corrupted_device_record_is_tampered_data(device: sv.Device, server: sv.ShareServer,
                                                  card_id: str, pin: sv.Pin) -> None:
    """A sealed record altered on the device fails authentication at the server:
    TamperedData, no ledger row, acquirer never called."""
    conn = device._store._conn
    sealed = bytearray(conn.execute("SELECT sealed_record FROM cards").fetchone()[0])
    sealed[30] ^= 0x40
    conn.execute("UPDATE cards SET sealed_record = ?", (bytes(sealed),))
    with pytest.raises(sv.TamperedData) as err:
        pay(device, card_id, pin)
    assert str(err.value) == "data failed authentication"
    assert server.acquirer.calls == []  # type: ignore[attr-defined]
    assert server.inspector().rows("authorizations") == []


def test_errors_pickle_and_keep_their_fields() -> None:
    """Errors survive pickling (multiprocessing, task queues) with their fields."""
    wrong = pickle.loads(pickle.dumps(sv.WrongPin(3)))
    assert wrong.attempts_left == 3 and "3 attempt(s)" in str(wrong)
    assert pickle.loads(pickle.dumps(sv.Declined("card expired"))).reason == "card expired"


def test_error_codes_are_unique() -> None:
    """Every error has its own stable code (the HTTP layer sends it)."""
    errors = [getattr(sv, n) for n in sv.__all__ if isinstance(getattr(sv, n), type)
              and issubclass(getattr(sv, n), sv.VaultError)]
    codes = [e.code for e in errors]
    assert len(codes) == len(set(codes)) >= 16
