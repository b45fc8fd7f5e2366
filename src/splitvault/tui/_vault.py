"""``DemoVault``: the device (and, embedded, the share server) behind the demo's screens.

The screens never touch ``Device`` or ``ShareServer`` directly: they call this small
facade, from a thread worker for anything slow. It also remembers, per card, the
result of the leak scan run right after enrollment (counts only: the PAN and the
holder's name are never kept).
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from .._attack.scan import encodings, scan_files, sqlite_files
from .._authorization import Authorization, CardSummary
from .._card import Card
from .._errors import UnknownCard, VaultError
from .._pin import Pin
from .._profiles import KdfProfile, ServerProfile
from ..device import Device, PaymentRecord, last_known_state
from ..server import Acquirer, CardState, ShareServer
from ._copy import DeviceCopy
from ._receipts import Delivered, DemoReceipts
from ._shares import ShareView, device_shares, server_shares

if TYPE_CHECKING:
    from ._realms import RealmDemo

__all__ = ["DemoVault", "ScanReport", "SideScan", "default_data_dir", "scan_sides"]

DEVICE_DB = "device.db"
SERVER_DB = "server.db"
CURRENCY = "KRW"
"""The demo pays in Korean won: no minor unit, so an amount is typed as it is shown."""


def default_data_dir() -> Path:
    """Where the demo keeps its two databases unless ``--data-dir`` says otherwise."""
    return Path(platformdirs.user_data_dir("splitvault")) / "demo"


@dataclass(frozen=True)
class SideScan:
    """One side's files searched for the card's secrets: what was looked at, and how
    often each secret turned up (the secrets themselves are not kept)."""

    files: tuple[str, ...]
    encodings: int
    found: dict[str, int]

    @property
    def clean(self) -> bool:
        return not any(self.found.values())


@dataclass(frozen=True)
class ScanReport:
    """The leak scan of both sides; ``server`` is ``None`` when the server is remote."""

    device: SideScan
    server: SideScan | None


def scan_sides(device_db: Path, server_db: Path | None, needles: dict[str, str]) -> ScanReport:
    """Search each side's database, WAL, journal and key files for ``needles`` in every
    encoding ``scan_files`` knows. Only counts leave this function."""
    patterns = sum(len(encodings(secret)) for secret in needles.values())

    def side(db: Path) -> SideScan:
        files = sqlite_files(db)
        found = dict.fromkeys(needles, 0)
        for finding in scan_files(files, needles):
            found[finding.label] += 1
        return SideScan(tuple(path.name for path in files), patterns, found)

    return ScanReport(side(device_db), None if server_db is None else side(server_db))


class DemoVault:
    """A device with its share server: embedded in this process, or remote by URL."""

    def __init__(self, data_dir: Path, device: Device, server: ShareServer | None,
                 server_url: str | None, receipts: DemoReceipts | None = None, *,
                 pin_sha256: str | None = None) -> None:
        self.data_dir = data_dir
        self.device = device
        self.server = server
        self.server_url = server_url
        self.receipts = receipts
        """Embedded: the server's receipt sink (the customer's inbox); remote: None, the
        remote server's outbox delivers to its own sink."""
        self._scans: dict[str, ScanReport] = {}
        self._reenrolled: dict[str, int] = {}
        self._asked: dict[str, CardState] = {}
        """Remote mode: each card's state as the server last answered ``fetch_states``."""
        """Per re-enrolled card, how many history rows came before: the lock they end
        in is over. Kept in memory only, so a remote demo started again reads the
        old lock until the next answer (the device keeps no row for a re-enrollment)."""
        self._before: dict[str, ShareView] = {}
        """Per card, its shares just before its last approved payment (the lab's "before")."""
        self._copy: DeviceCopy | None = None
        self._realm_demo: RealmDemo | None = None
        self._pin_sha256 = pin_sha256
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path | None = None, *, server_url: str | None = None,
             pin_sha256: str | None = None, kdf: KdfProfile = KdfProfile.INTERACTIVE,
             acquirer: Acquirer | None = None,
             receipts: DemoReceipts | None = None) -> DemoVault:
        folder = default_data_dir() if data_dir is None else Path(data_dir)
        if not folder.exists():
            # It will hold a device share and, embedded, the server's key file: private.
            # A folder the user named and that already exists keeps its permissions.
            folder.mkdir(parents=True, mode=0o700)
        if server_url is not None:
            device = Device.open(folder / DEVICE_DB, server=server_url, kdf=kdf,
                                 pin_sha256=pin_sha256)
            try:
                # Now, not after the visitor typed a card and a PIN twice.
                device.check_server()
            except BaseException:
                device.close()
                raise
            return cls(folder, device, None, server_url, pin_sha256=pin_sha256)
        inbox = DemoReceipts() if receipts is None else receipts
        server = ShareServer.open(folder / SERVER_DB, acquirer=acquirer, receipts=inbox)
        try:
            device = Device.open(folder / DEVICE_DB, server=server, kdf=kdf)
        except BaseException:
            server.close()
            raise
        return cls(folder, device, server, None, inbox)

    def close(self) -> None:
        if self._closed:
            return  # wipe() closed it; the app closes it again when it quits
        self._closed = True
        self.discard_copy()
        if self._realm_demo is not None:
            self._realm_demo.close()
        self.device.close()
        if self.server is not None:
            self.server.close()

    # -- where things are --------------------------------------------------------------

    @property
    def remote(self) -> bool:
        return self.server is None

    @property
    def device_db(self) -> Path:
        return self.data_dir / DEVICE_DB

    @property
    def server_db(self) -> Path | None:
        return None if self.server is None else self.data_dir / SERVER_DB

    # -- fast reads (UI thread) ----------------------------------------------------------

    def cards(self) -> list[CardSummary]:
        return self.device.cards()

    def card_state(self, card_id: str) -> CardState | None:
        """The guess counter: read from the server's file when it is embedded; when it
        is remote, as this device last heard it (``last_seen``), or ``None`` when this
        device has heard nothing that changed it since the card was enrolled."""
        if self.server is not None:
            return self.server.card_state(card_id)
        with self._lock:
            asked = self._asked.get(card_id)
        return asked if asked is not None else self.last_seen(card_id)

    def asked(self, card_id: str) -> bool:
        """True if the state shown is the server's own answer (remote mode)."""
        with self._lock:
            return card_id in self._asked

    def fetch_states(self) -> int:
        """Remote mode, in a worker thread: ask the server for every card's state
        (``Device.card_state``, signed by the card's device key; spends no guess). A
        card the server cannot answer for keeps what this device last heard. Returns
        how many answered."""
        answered = 0
        for card in self.device.cards():
            try:
                state = self.device.card_state(card.card_id)
            except VaultError:
                continue
            with self._lock:
                self._asked[card.card_id] = state
            answered += 1
        return answered

    def last_seen(self, card_id: str) -> CardState | None:
        """The card's state at this device's latest answer from the server (its
        payment history): a wrong PIN's guesses left, or the lock. A right PIN reset
        the count. Not the server's own count, which a copy of this device can spend
        without this one knowing; no device API asks the server for it yet."""
        try:
            records = self.device.history(card_id)
        except UnknownCard:  # deleted meanwhile
            return None
        with self._lock:
            records = records[self._reenrolled.get(card_id, 0):]
        left, locked = last_known_state(records)
        if locked:
            return CardState(self.guess_limit, self.guess_limit, True)
        if left is None:
            return None
        return CardState(self.guess_limit - left, self.guess_limit, False)

    @property
    def guess_limit(self) -> int:
        return ServerProfile.DEFAULT.guess_limit if self.server is None else \
            self.server.profile.guess_limit

    def history(self, card_id: str) -> list[PaymentRecord]:
        return self.device.history(card_id)

    def receipt(self, idempotency_key: str) -> Delivered | None:
        """The receipt the outbox delivered for a payment, or None (not yet, or remote)."""
        return None if self.receipts is None else self.receipts.get(idempotency_key)

    def security_phrase(self, card_id: str) -> str | None:
        """The card's phrase, or this device's (the latest one chosen) for a card
        enrolled without one: the keypad shows the same words for every card."""
        return self.device.security_phrase(card_id) or self.device_phrase()

    def device_phrase(self) -> str | None:
        """The phrase of the newest card that has one: the device's phrase."""
        for card in reversed(self.device.cards()):
            phrase = self.device.security_phrase(card.card_id)
            if phrase:
                return phrase
        return None

    def check_new_pin(self, pin: Pin) -> None:
        """``WeakPin``/``InvalidPin`` now, before the user types the PIN a second time."""
        self.device.check_new_pin(pin)

    @property
    def pin_length(self) -> tuple[int, int]:
        policy = self.device.pin_policy
        return policy.min_length, policy.max_length

    def scan_report(self, card_id: str) -> ScanReport | None:
        with self._lock:
            return self._scans.get(card_id)

    # -- slow work (thread workers only) -------------------------------------------------

    def enroll(self, card: Card, pin: Pin, phrase: str | None) -> str:
        """Enroll, then scan both sides for the card while it is still in hand."""
        card_id = self.device.enroll(card, pin, security_phrase=phrase)
        report = scan_sides(self.device_db, self.server_db,
                            {"card number": card.pan, "holder name": card.holder})
        with self._lock:
            self._scans[card_id] = report
        return card_id

    def reenroll(self, card_id: str, card: Card, new_pin: Pin) -> str:
        """Bring a locked card back with the card itself and a new PIN (its id, phrase
        and device key stay), then scan both sides for it as after an enrollment."""
        before = len(self.device.history(card_id))
        self.device.reenroll(card_id, card, new_pin)
        with self._lock:
            self._reenrolled[card_id] = before
            self._before.pop(card_id, None)  # sealed anew: "before a payment" is over
        report = scan_sides(self.device_db, self.server_db,
                            {"card number": card.pan, "holder name": card.holder})
        with self._lock:
            self._scans[card_id] = report
        return card_id

    def authorize(self, card_id: str, pin: Pin, *, amount: int, merchant: str,
                  idempotency_key: str) -> Authorization:
        """Pay with this device; the shares as they were before an approval are kept
        for the lab, which shows them beside the re-split ones."""
        before = self.share_view(card_id)
        auth = self.device.authorize(card_id, pin, amount=amount, currency=CURRENCY,
                                     merchant=merchant, idempotency_key=idempotency_key)
        if auth.approved and before is not None:
            with self._lock:
                self._before[card_id] = before
        return auth

    def deliver_receipts(self) -> int:
        """Embedded: deliver the receipts due from the server's outbox (what ``splitvault
        serve`` does every few seconds); the number delivered."""
        return 0 if self.server is None else self.server.deliver_outbox().delivered

    def change_pin(self, card_id: str, old_pin: Pin, new_pin: Pin) -> None:
        self.device.change_pin(card_id, old_pin, new_pin)

    def delete(self, card_id: str) -> None:
        self.device.delete(card_id)
        with self._lock:
            self._scans.pop(card_id, None)
            self._before.pop(card_id, None)

    def data_files(self) -> list[Path]:
        """The demo's files in its folder: the two databases (with their WAL, shared
        memory and journal) and, embedded, the server's key file."""
        names = [DEVICE_DB] if self.server is None else [DEVICE_DB, SERVER_DB]
        return sorted(path for name in names for path in self.data_dir.glob(f"{name}*")
                      if path.is_file())

    def wipe(self) -> int:
        """Delete every card (both shares, the server's first), close, then remove the
        demo's files, and its folder if nothing else is in it. Returns the number of
        cards deleted. The vault is closed afterwards: the app quits."""
        cards = self.device.cards()
        for card in cards:
            self.delete(card.card_id)
        self.close()
        for path in self.data_files():
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.data_dir.rmdir()  # only if empty: a folder the user named may hold more
        return len(cards)

    # -- the re-split and a copy of this device (the security lab) --------------------

    def share_view(self, card_id: str) -> ShareView | None:
        """Both sides' share versions and fingerprints now (the server's only when it
        is embedded); None if the card is gone. Fast enough for the UI thread."""
        try:
            device = device_shares(self.device_db, card_id)
            server = None if self.server is None else server_shares(
                self.server.inspector(), card_id)
        except (sqlite3.Error, VaultError):
            return None
        if device is None:
            return None
        return ShareView(device[0], server, device[1])

    def shares_before(self, card_id: str) -> ShareView | None:
        """The card's shares just before its last approved payment, if one was made
        since the demo started."""
        with self._lock:
            return self._before.get(card_id)

    def ledger_size(self) -> int | None:
        """How many payments the embedded server's ledger holds (every card, every
        outcome): a refused copy adds none. None when the server is remote."""
        if self.server is None:
            return None
        [(count,)] = self.server.inspector().query("SELECT count(*) FROM authorizations")
        return int(count)

    @property
    def copy(self) -> DeviceCopy | None:
        """The copy of this device the lab made, if any."""
        return self._copy

    def take_copy(self) -> DeviceCopy:
        """In a worker: copy this device's files to a private temporary folder and open
        them as a second device against the same server (replacing an earlier copy)."""
        self.discard_copy()
        service: ShareServer | str = self.server if self.server is not None else \
            str(self.server_url)
        kdf = self.device.kdf
        pin_sha256 = self._pin_sha256
        copy = DeviceCopy.take(self.device_db, lambda path: Device.open(
            path, server=service, kdf=kdf, pin_sha256=pin_sha256))
        self._copy = copy
        return copy

    def discard_copy(self) -> None:
        copy, self._copy = self._copy, None
        if copy is not None:
            copy.close()

    def authorize_with_copy(self, card_id: str, pin: Pin, *, amount: int, merchant: str,
                            idempotency_key: str) -> Authorization:
        """In a worker: pay with the copy, as a thief holding it would."""
        if self._copy is None:
            raise UnknownCard("no copy of this device was made")
        return self._copy.device.authorize(card_id, pin, amount=amount, currency=CURRENCY,
                                           merchant=merchant,
                                           idempotency_key=idempotency_key)

    # -- the realms (the security lab) ------------------------------------------------

    @property
    def realm_demo(self) -> RealmDemo | None:
        """The lab's t-of-n deployment with its own device and demo card, once built."""
        return self._realm_demo

    def open_realm_demo(self, today: datetime.date) -> CardState | str:
        """In a worker: build the lab's deployment in a private temporary folder (once)
        and enroll its demo card (once); the card's state across the realms."""
        from ._realms import RealmDemo  # only when the lab's realms are opened

        if self._realm_demo is None:
            self._realm_demo = RealmDemo.build(self.device.kdf, today=today)
        if self._realm_demo.card_id is None:
            self._realm_demo.enroll(today)
        return self._realm_demo.card_state()

    def scan_for_pan(self, digits: str) -> ScanReport:
        """Search both sides for a card number the visitor typed in the lab."""
        return scan_sides(self.device_db, self.server_db, {"card number": digits})
