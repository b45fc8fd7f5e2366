"""Export the README's screenshots of the demo as SVG (Textual's own export).

    .venv/bin/python docs/make_screenshots.py

Runs the demo headless at 80x24 through Textual's pilot, in a temporary folder, with a
seeded keypad and animations off, and writes docs/screenshots/*.svg. The cards are
enrolled with the real INTERACTIVE Argon2id profile, so the lab shows real parameters;
the bytes in it are real, and so differ on every run.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from pathlib import Path

from textual import constants
from textual.pilot import Pilot
from textual.widgets import Button

from splitvault import Card, Pin
from splitvault.keypad import KeypadKey
from splitvault.tui import DemoApp, _wallet

OUT = Path(__file__).resolve().parent / "screenshots"
SIZE = (80, 24)
PIN = "739184"
CARDS = (
    ("4111 1111 1111 1111", "12/30", "KIM MINSU", "blue otter by the lake"),
    ("5500 0000 0000 0004", "08/29", "LEE JIEUN", "seven red kites"),
)


async def press(app: DemoApp, label: str) -> None:
    """Press the one button on screen labelled ``label``, as a click does."""
    [button] = [b for b in app.screen.query(Button) if str(b.label) == label]
    button.press()


async def settle(pilot: Pilot[int]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def tap_pin(pilot: Pilot[int], digits: str, *, confirm: bool = True) -> None:
    app = pilot.app
    for digit in digits:
        [key] = [k for k in app.screen.query(KeypadKey) if str(k.label) == digit]
        key.press()
        await pilot.pause()
    if confirm:
        [ok] = [k for k in app.screen.query(KeypadKey) if str(k.label) == "OK"]
        ok.press()
        await settle(pilot)


async def shoot(folder: Path) -> None:
    # A seeded layout for repeatable pictures; the real demo uses the system CSPRNG.
    app = DemoApp(folder, rng=random.Random(2024))  # noqa: S311
    # The wallet names its data folder: show the default one, not this temporary one.
    _wallet.data_line = lambda vault: (  # type: ignore[attr-defined]
        "Data: ~/.local/share/splitvault/demo (device.db, server.db); w wipes it")
    for pan, expiry, holder, phrase in CARDS:
        with Pin.from_digits(PIN) as pin:
            app.vault.enroll(Card(pan, expiry, holder), pin, phrase)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.save_screenshot("wallet.svg", str(OUT))
        await press(app, "Pay")
        await settle(pilot)
        await press(app, "Pay with PIN")
        await settle(pilot)
        await tap_pin(pilot, PIN[:3], confirm=False)
        app.save_screenshot("keypad.svg", str(OUT))
        await tap_pin(pilot, PIN[3:])
        app.save_screenshot("result.svg", str(OUT))
        await press(app, "Done")
        await settle(pilot)
        await press(app, "Lab")
        await settle(pilot)
        app.save_screenshot("lab.svg", str(OUT))
        # The re-split pane: copy this device, pay with it, then with the copy.
        for label in ("Re-split & copy (s)", "Copy this device", "Pay with this device",
                      "Pay with PIN"):
            await press(app, label)
            await settle(pilot)
        await tap_pin(pilot, PIN)
        await press(app, "Done")
        await settle(pilot)
        await press(app, "Pay with the copy")
        await settle(pilot)
        await tap_pin(pilot, PIN)
        await press(app, "Done")
        await settle(pilot)
        app.save_screenshot("resplit.svg", str(OUT))
        app.exit()


def main() -> int:
    # As TEXTUAL_ANIMATIONS=none: the keypad's sirens stand still for the picture.
    constants.TEXTUAL_ANIMATIONS = "none"  # type: ignore[misc]
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(shoot(Path(tmp)))
    for name in ("wallet", "keypad", "result", "lab", "resplit"):
        print(OUT / f"{name}.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
