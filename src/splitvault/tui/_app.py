"""``DemoApp`` and ``run_demo``: the terminal demo of splitvault.

Embedded (the default): a ``ShareServer`` and a ``Device`` in this process, each with
its own SQLite file under the data folder. With ``server``: only the device is here and
the share server is reached over HTTP; the lab then shows the device side only.
"""

from __future__ import annotations

import datetime
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.binding import Binding, BindingType

from .._errors import ServerUnavailable
from .._profiles import KdfProfile
from ..keypad import KeypadSafeApp, SecureKeypad
from ..server import Acquirer
from ._receipts import DemoReceipts
from ._vault import DemoVault
from ._wallet import WalletScreen
from ._work import GROUP

__all__ = ["DemoApp", "run_demo"]


class DemoApp(KeypadSafeApp[int]):
    """The demo. Everything slow runs in thread workers; see ``_work.py``."""

    TITLE = "splitvault"
    SUB_TITLE = "the card is never whole anywhere"

    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    # Form fields get a visible frame even when not focused, red when wrong.
    CSS = """
    Input.field { border: tall $panel-lighten-2; }
    Input.field:focus { border: tall $accent; }
    Input.field.-invalid { border: tall $error 60%; }
    Input.field.-invalid:focus { border: tall $error; }
    """

    def __init__(self, data_dir: Path | None = None, *, server_url: str | None = None,
                 pin_sha256: str | None = None, kdf: KdfProfile = KdfProfile.INTERACTIVE,
                 rng: random.Random | None = None,
                 today: Callable[[], datetime.date] = datetime.date.today,
                 acquirer: Acquirer | None = None,
                 receipts: DemoReceipts | None = None) -> None:
        """The demo over the files in ``data_dir`` (default: the user data directory).

        Args:
            data_dir: Folder for ``device.db`` and, embedded, ``server.db``.
            server_url: A running share server; ``None`` runs one in this process.
            pin_sha256: The server certificate's SHA-256 fingerprint, with ``server_url``.
            kdf: Argon2id cost for new cards; ``TEST_ONLY`` is for tests only.
            rng: Randomness for the keypad layouts; ``None`` is the system's CSPRNG.
                Tests pass a seeded ``random.Random`` for repeatable snapshots.
            today: The date that card expiry is checked against.
            acquirer: The embedded server's acquirer (default: the simulated one).
            receipts: The embedded server's receipt sink (default: a new in-memory
                ``DemoReceipts``, which the result screen reads).
        """
        super().__init__()
        self.vault = DemoVault.open(data_dir, server_url=server_url, pin_sha256=pin_sha256,
                                    kdf=kdf, acquirer=acquirer, receipts=receipts)
        self.keypad_rng = rng
        self.today = today

    def on_mount(self) -> None:
        self.push_screen(WalletScreen())

    def on_unmount(self) -> None:
        self.vault.close()

    @property
    def busy(self) -> bool:
        """True while a vault call runs in a worker: the screens must stay put for it."""
        return any(worker.group == GROUP and worker.is_running for worker in self.workers)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "quit":
            # Letters are the keypad's blind-entry keys, and a half-finished vault call
            # must not have its databases closed under it.
            return not (isinstance(self.focused, SecureKeypad) or self.busy)
        return True


def run_demo(data_dir: Path | None = None, server: str | None = None,
             pin_sha256: str | None = None) -> int:
    """Run the demo in this terminal; returns the process exit code."""
    try:
        app = DemoApp(data_dir, server_url=server, pin_sha256=pin_sha256)
    except ServerUnavailable as exc:
        # Before the screen is taken over: the message stays readable in the terminal.
        print(f"splitvault demo: cannot use the share server at {server}: {exc}",
              file=sys.stderr)
        return 2
    app.run()
    return app.return_code or 0
