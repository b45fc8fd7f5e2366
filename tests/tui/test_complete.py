"""The demo, complete (issue 10): change PIN, history, a locked card, the amount as a
person types it, the phrase kept per device, the data folder and its wipe, the lab's
key id and search, remote mode at 80x24 and the start-up check of its server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable

from splitvault import Card, CardLocked, Pin, ServerUnavailable, WrongPin
from splitvault.tui import DemoApp, run_demo
from splitvault.tui._amount import check_amount
from splitvault.tui._atrest import KEY_ID_LEN, read_server_row
from splitvault.tui._history import HistoryScreen
from splitvault.tui._locked import LOCKED_NEXT, LockedScreen
from splitvault.tui._pay import PayScreen
from splitvault.tui._wipe import data_line

from .helpers import (
    PAN_DIGITS,
    PIN,
    SIZE,
    TODAY,
    WRONG_PIN,
    click_button,
    enroll_directly,
    make_app,
    screen_text,
    settle,
    tap_pin,
    type_into,
)

Demo = Callable[..., DemoApp]
NEW_PIN = "280416"


@pytest.mark.parametrize("typed,amount", [("12000", 12000), ("12,000", 12000),
                                          (" 1,234,567 ", 1234567), ("007", 7)])
def test_amounts_as_people_type_them(typed: str, amount: int) -> None:
    assert check_amount(typed).amount == amount


@pytest.mark.parametrize("typed,words", [
    ("12000.50", "won have no decimals"),
    ("12.000", "won have no decimals"),
    ("12k", "only digits and commas, not “k”"),
    ("12 000", "not a space"),
    ("1,20,00", "groups of three"),
    ("0", "at least 1 won"),
    ("9" * 30, "at most"),
])
def test_amount_mistakes_in_plain_words(typed: str, words: str) -> None:
    check = check_amount(typed)
    assert check.amount is None and words in check.message
    assert "minor unit" not in check.message


async def test_the_amount_field_keeps_every_character_and_says_what_is_wrong(
        demo: Demo) -> None:
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Pay")
        await type_into(pilot, "#amount", "12000.5", keys=True)
        assert app.screen.query_one("#amount").value == "12000.5"  # type: ignore[attr-defined]
        await click_button(pilot, "Pay with PIN")
        assert isinstance(app.screen, PayScreen)  # no keypad for an amount that is wrong
        assert "won have no decimals" in screen_text(app)


async def test_history_lists_each_payment_with_code_or_reason(demo: Demo) -> None:
    app = demo()
    card_id = enroll_directly(app)
    with Pin.from_digits(PIN) as right, Pin.from_digits(WRONG_PIN) as wrong:
        app.vault.authorize(card_id, right, amount=12000, merchant="Seongsu Coffee Lab",
                            idempotency_key="one")
        with pytest.raises(WrongPin):
            app.vault.authorize(card_id, wrong, amount=12000, merchant="Seongsu Coffee Lab",
                                idempotency_key="two")
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "History")
        assert isinstance(app.screen, HistoryScreen)
        text = screen_text(app)
        assert "✓ approved K7Q2ZP" in text and "✗ wrong PIN (4 left)" in text
        assert "12,000 KRW" in text and "Seongsu Coffee Lab" in text
        assert app.screen.query_one(DataTable).row_count == 2


async def test_change_pin_old_then_new_twice(demo: Demo) -> None:
    app = demo()
    card_id = enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Change PIN")
        await tap_pin(pilot, PIN)
        await tap_pin(pilot, NEW_PIN)
        assert "again" in screen_text(app)
        await tap_pin(pilot, NEW_PIN)
        await settle(pilot)
        assert "Wallet" in screen_text(app)
        with Pin.from_digits(NEW_PIN) as pin:
            assert app.vault.authorize(card_id, pin, amount=100, merchant="Shop",
                                       idempotency_key="after-change").approved


async def test_change_pin_with_a_wrong_current_pin_says_how_many_are_left(
        demo: Demo) -> None:
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Change PIN")
        await tap_pin(pilot, WRONG_PIN)
        await tap_pin(pilot, NEW_PIN)
        await tap_pin(pilot, NEW_PIN)
        await settle(pilot)
        assert "Wrong current PIN" in screen_text(app) and "4 attempts left" in screen_text(app)


async def test_a_locked_card_cannot_start_a_payment_and_says_what_to_do(
        demo: Demo) -> None:
    app = demo()
    card_id = enroll_directly(app)
    with Pin.from_digits(WRONG_PIN) as wrong:
        for n in range(5):
            with contextlib.suppress(WrongPin, CardLocked):
                app.vault.authorize(card_id, wrong, amount=100, merchant="Shop",
                                    idempotency_key=f"k{n}")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "locked" in screen_text(app)
        await click_button(pilot, "Pay")
        assert isinstance(app.screen, LockedScreen)
        assert "re-enroll it on this device" in LOCKED_NEXT
        assert "re-enroll it on this" in screen_text(app)
        await pilot.press("escape")
        await click_button(pilot, "Change PIN")
        assert isinstance(app.screen, LockedScreen)


async def test_the_phrase_is_encouraged_then_kept_for_the_next_card(demo: Demo) -> None:
    app = demo()
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Add card")
        for field, value in (("#pan", "4111 1111 1111 1111"), ("#expiry", "12/30"),
                             ("#holder", "KIM MINSU")):
            await type_into(pilot, field, value)
        await click_button(pilot, "Continue")
        await click_button(pilot, "Continue to PIN")  # empty: asked once more
        assert "Continue again to skip" in screen_text(app)
        first = enroll_directly(app, phrase="blue otter")
        with Pin.from_digits(PIN) as pin:
            second = app.vault.enroll(
                Card.parse("5555 5555 5555 4444", "12/30", "LEE", today=TODAY), pin, None)
        assert app.vault.security_phrase(first) == app.vault.security_phrase(second) == \
            "blue otter"
        await pilot.press("escape", "escape")
        await click_button(pilot, "Add card")
        for field, value in (("#pan", "5555 5555 5555 4444"), ("#expiry", "12/30"),
                             ("#holder", "LEE")):
            await type_into(pilot, field, value)
        await click_button(pilot, "Continue")
        assert app.screen.query_one("#phrase").value == "blue otter"  # type: ignore[attr-defined]


async def test_the_wallet_shows_the_data_folder_and_wipes_it(demo: Demo,
                                                             tmp_path: Path) -> None:
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        assert data_line(app.vault).startswith(f"Data: {tmp_path} (device.db, server.db)")
        assert "Data: /tmp/" in screen_text(app)
        await pilot.press("w")
        await pilot.press("n")  # kept
        assert (tmp_path / "device.db").exists()
        await pilot.press("w")
        await pilot.press("y")
        await settle(pilot)
    assert not list(tmp_path.glob("*.db*"))


async def test_the_lab_shows_the_key_id_apart_and_keeps_both_scan_lines(
        demo: Demo) -> None:
    app = demo()
    card_id = enroll_directly(app)
    server_db = app.vault.server_db
    assert server_db is not None
    fields = {f.name: f.value for f in read_server_row(server_db, card_id)}
    kid = fields["wrapped by"].removeprefix("key ")
    assert len(kid) == 2 * KEY_ID_LEN
    assert not fields["oprf_key"].startswith(kid[:10])  # the nonce, not the key id
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Lab")
        assert "8-byte id" in screen_text(app)
        await type_into(pilot, "#pan", PAN_DIGITS)
        await click_button(pilot, "Search")
        text = screen_text(app)
        assert "card number: not in" in text and "holder name: not in" in text


def test_demo_checks_a_remote_server_at_start(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening: refused before the screen is taken, not after a card and a PIN."""
    with pytest.raises(ServerUnavailable, match="cannot connect"):
        make_app(tmp_path, server_url="http://127.0.0.1:9")
    assert run_demo(tmp_path, server="http://127.0.0.1:9") == 2
    assert "cannot use the share server at http://127.0.0.1:9" in capsys.readouterr().err
