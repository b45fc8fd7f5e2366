"""The security lab: both sides' rows as stored, and what the leak scans found."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from splitvault import Card, CardSummary, Pin
from splitvault.tui import DemoApp
from splitvault.tui._atrest import preview, read_device_row, read_server_row
from splitvault.tui._lab import LabScreen
from splitvault.tui._vault import scan_sides

from .helpers import (
    HOLDER,
    PAN,
    PAN_DIGITS,
    PIN,
    SIZE,
    TODAY,
    click_button,
    enroll_directly,
    screen_text,
    type_into,
)

Demo = Callable[..., DemoApp]


def test_preview_never_shows_a_whole_key() -> None:
    """32 key bytes become 5 + 2 bytes of hex; short values are shown whole."""
    key = bytes(range(32))
    assert preview(key) == "0001020304…1e1f"
    assert preview(b"\x01\x02") == "0102"


def test_rows_are_read_from_the_files(demo: Demo) -> None:
    """The rows come from the SQLite files: the server's share is wrapped (longer than
    32 bytes), the device's share is 32 bytes, and neither row holds the PAN."""
    app = demo()
    card_id = enroll_directly(app)
    assert app.vault.server_db is not None
    server = {f.name: f for f in read_server_row(app.vault.server_db, card_id)}
    device = {f.name: f for f in read_device_row(app.vault.device_db, card_id)}
    assert server["share"].size != "32 B" and device["device_share"].size == "32 B"
    assert server["locked"].value == "no" and server["guesses_used"].value == "0"
    assert device["in clear"].value == "visa 1111 12/30"
    for field in [*server.values(), *device.values()]:
        assert PAN_DIGITS not in field.value and HOLDER not in field.value
    app.vault.close()


def test_scan_finds_a_planted_secret(tmp_path: Path) -> None:
    """The scan is not vacuous: a file that does hold the PAN (as UTF-16) is flagged."""
    db = tmp_path / "leaky.db"
    db.write_bytes(b"junk" + PAN_DIGITS.encode("utf-16-le") + b"junk")
    report = scan_sides(db, None, {"card number": PAN_DIGITS})
    assert not report.device.clean and report.device.found["card number"] == 1
    assert report.server is None


async def test_lab_shows_both_sides_and_the_scan(demo: Demo) -> None:
    """Side by side: the server's row, the device's row, the scan per side, and the
    guess counter a thief runs into."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Lab")
        assert isinstance(app.screen, LabScreen)
        text = screen_text(app)
        for name in ("device_key", "verifier", "oprf_key", "share", "guesses_used",
                     "sealed_record", "device_share", "salt", "device_secret"):
            assert name in text
        assert "Server · server.db" in text and "Device · device.db" in text
        assert text.count("✓ card number: not in its") == 2
        assert text.count("✓ holder name: not in its") == 2
        assert "every PIN guess: 0 of 5 used" in text
        assert PAN_DIGITS not in text and "KIM MINSU" not in text


async def test_typed_number_is_searched_then_dropped(demo: Demo) -> None:
    """A visitor types the PAN in the lab: the field is cleared at once, both sides are
    searched, and the answer is 'in neither'."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Lab")
        await type_into(pilot, "#pan", PAN)
        await click_button(pilot, "Search")
        assert app.screen.query_one("#pan", Input).value == ""
        assert "in neither side's files" in screen_text(app)


async def test_typed_number_must_be_a_whole_card_number(demo: Demo) -> None:
    """Searching for '1111' (the stored last four) is refused: only whole PANs."""
    app = demo()
    enroll_directly(app)
    async with app.run_test(size=SIZE) as pilot:
        await click_button(pilot, "Lab")
        await type_into(pilot, "#pan", "1111")
        await click_button(pilot, "Search")
        assert "✗ card number must be" in screen_text(app)


async def test_remote_server_shows_the_device_side_only(tmp_path: Path, demo: Demo,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With --server the lab says the server's row lives on the other machine. (Nothing
    listens there: the start-up check is skipped.)"""
    monkeypatch.setattr("splitvault.device.Device.check_server", lambda self: None)
    app = demo(server_url="https://127.0.0.1:9")
    async with app.run_test(size=SIZE) as pilot:
        assert "server https://127.0.0.1:9" in screen_text(app)
        app.push_screen(LabScreen(CardSummary("ab" * 16, "visa", "1111", "12/30")))
        await pilot.pause()
        text = screen_text(app)
        assert "Server · remote" in text and "No card data" in text


async def test_mouse_picks_which_card_the_lab_shows(demo: Demo) -> None:
    """Click a card's row, then the lab button: the lab is about that card."""
    app = demo()
    enroll_directly(app)
    with Pin.from_digits(PIN) as pin:
        app.vault.enroll(Card.parse("5500 0000 0000 0004", "08/29", "LEE JIEUN", today=TODAY),
                         pin, None)
    async with app.run_test(size=SIZE) as pilot:
        # Inside the table's border: the header is row 1, the cards rows 2 and 3.
        assert await pilot.click(DataTable, offset=(6, 3))
        await click_button(pilot, "Lab")
        text = screen_text(app)
        assert "What each side stores for Mastercard •••• 0004" in text
        assert "mastercard 0004 08/29" in text and "(none)" in text  # no phrase chosen
