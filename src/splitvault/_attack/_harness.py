"""What every attack needs: a deployment to attack, a lab with devices, and a verdict.

An attack is a function ``attack(lab) -> AttackResult``. ``passed`` means the *defense
held*; a result is never decided by an ``assert`` (which ``python -O`` would strip).

A :class:`Deployment` is either a fresh :class:`~splitvault.ShareServer` in this
process (the default: fast, offline, every internal visible) or a running deployment
at a URL (``splitvault attack --server URL``), reached through the same
:class:`~splitvault._protocol.ShareService` interface the device uses. Between each
device and its server sits a :class:`Recorder`: the network attacker, who sees every
message, may rewrite one, and may stall before an authorization.

The sabotage hook: ``Deployment(server_factory=...)`` builds the in-process server,
so a test can hand the suite a deliberately weakened server and watch it FAIL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _errors
from .._authorization import Authorization
from .._card import Card
from .._pin import Pin
from .._profiles import KdfProfile, ServerProfile
from .._protocol import ShareService
from ..device import Device
from ..hazmat import DeviceStore
from ..server import ShareServer, SimulatedAcquirer
from ._recorder import Recorder

if TYPE_CHECKING:
    from ._asgi import AsgiBridge

__all__ = [
    "CLAIMED_GUESS_LIMIT",
    "HOLDER",
    "IN_PROCESS_ONLY",
    "OTHER_PIN",
    "PAN",
    "PIN",
    "SECOND_HOLDER",
    "SECOND_PAN",
    "AttackResult",
    "Cleanup",
    "Clock",
    "Deployment",
    "Lab",
    "Options",
    "Recorder",
    "ServerFactory",
    "Victim",
    "default_server",
    "guarded",
    "guesses_used",
    "pay",
    "refused",
    "sample_card",
    "skipped",
]

PAN = "4111111111111111"
"""The test card: a Visa test number that no issuer will ever honour."""
HOLDER = "KIM MINSU"
PIN = "739184"
"""The test card's PIN: six digits that pass the weak-PIN checks."""
OTHER_PIN = "580247"
"""A wrong PIN for the test card."""
SECOND_PAN = "5555555555554444"
SECOND_HOLDER = "LEE JIEUN"
CLAIMED_GUESS_LIMIT = ServerProfile.DEFAULT.guess_limit
"""The limit README.md and threat_model.md promise; a deployment allowing more FAILs."""


@dataclass(frozen=True)
class AttackResult:
    """One attack's outcome. ``passed`` is True when the defense held."""

    name: str
    attacker_had: str
    attacker_got: str
    passed: bool
    detail: str = ""
    skipped: bool = False
    scenario: str = ""

    @property
    def verdict(self) -> str:
        return "SKIP" if self.skipped else ("PASS" if self.passed else "FAIL")

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["verdict"] = self.verdict
        return out


@dataclass(frozen=True)
class Options:
    """Run options. ``slow`` allows attacks that must wait out a real timeout."""

    slow: bool = False
    fuzz_examples: int = 150


def guarded(name: str, had: str, attack: Callable[[], AttackResult]) -> AttackResult:
    """Run ``attack``; a harness error is a FAIL (never silently a PASS)."""
    try:
        return attack()
    except Exception as exc:  # the verdict must say the suite could not prove the claim
        return AttackResult(name, had, f"harness error: {type(exc).__name__}", False,
                            str(exc)[:200])


def skipped(name: str, had: str, why: str) -> AttackResult:
    """An attack that could not run here: reported as SKIP, never as PASS."""
    return AttackResult(name, had, f"not run: {why}", False, skipped=True)


IN_PROCESS_ONLY = "needs the server's files or internals; run without --server"


def refused(call: Callable[[], object],
            *expected: type[BaseException]) -> tuple[bool, str]:
    """(True, error name) if ``call`` raised one of ``expected``; otherwise (False, what
    happened instead)."""
    try:
        result = call()
    except expected as exc:
        return True, type(exc).__name__
    except _errors.VaultError as exc:
        return False, f"unexpected {type(exc).__name__}"
    return False, f"accepted: {type(result).__name__}"


class Clock:
    """The in-process server's clock: real time plus an offset an attack may advance."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Victim:
    """One device: the Device, the wire it talks over, and where its files are."""

    device: Device
    wire: Recorder
    path: Path
    cards: list[str] = field(default_factory=list)


ServerFactory = Callable[[Path, Clock], ShareServer]


def default_server(path: Path, clock: Clock) -> ShareServer:
    return ShareServer.open(path, clock=clock, acquirer=SimulatedAcquirer())


class Lab:
    """A temporary folder, the server under attack and the devices made for attacks."""

    def __init__(self, root: Path, *, url: str | None = None, pin_sha256: str | None = None,
                 server_factory: ServerFactory = default_server,
                 cleanup: Cleanup | None = None) -> None:
        self.root = root
        self.cleanup = Cleanup() if cleanup is None else cleanup
        """Where the test cards this lab enrolled are counted, and whether each is gone."""
        self.url = url
        self.pin_sha256 = pin_sha256
        self.clock = Clock()
        self._factory = server_factory
        self.server_path = root / "server.db"
        self.server: ShareServer | None = None
        if url is None:
            self.server = server_factory(self.server_path, self.clock)
        self.victims: list[Victim] = []
        self.bridges: list[AsgiBridge] = []
        """In-process HTTP apps the lab's devices talk to (their bodies are recorded)."""

    @property
    def remote(self) -> bool:
        return self.url is not None

    def _service(self, over_http: bool) -> ShareService:
        if self.url is not None:
            from ..hazmat import HttpShareService

            return HttpShareService(self.url, pin_sha256=self.pin_sha256)
        if self.server is None:
            raise RuntimeError("the lab's server is closed")
        if over_http:
            from ._asgi import http_service

            service, bridge = http_service(self.server)
            self.bridges.append(bridge)
            return service
        return self.server

    def device(self, name: str = "victim", *, over_http: bool = False) -> Victim:
        """A new device with its own store, talking through a :class:`Recorder`."""
        path = self.root / f"{name}-{len(self.victims)}.db"
        wire = Recorder(self._service(over_http))
        victim = Victim(Device(DeviceStore(path), wire, kdf=KdfProfile.TEST_ONLY), wire, path)
        self.victims.append(victim)
        return victim

    def steal(self, victim: Victim, name: str = "thief") -> Victim:
        """A thief's device: a byte copy of every file the victim's device wrote."""
        path = self.root / f"{name}-{len(self.victims)}.db"
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{victim.path}{suffix}")
            if source.exists():
                target = Path(f"{path}{suffix}")
                shutil.copyfile(source, target)
                target.chmod(0o600)  # the thief's own copy; the store refuses one others can read
        wire = Recorder(self._service(False))
        thief = Victim(Device(DeviceStore(path), wire, kdf=KdfProfile.TEST_ONLY), wire, path)
        self.victims.append(thief)
        return thief

    def enroll(self, victim: Victim, card: Card | None = None, pin: str = PIN) -> str:
        with Pin.from_digits(pin) as p:
            card_id = victim.device.enroll(card or sample_card(), p)
        victim.cards.append(card_id)
        self.cleanup.enrolled += 1
        return card_id

    def acquirer_calls(self) -> int | None:
        """How often money could have moved, if this deployment lets us see it."""
        if self.server is None:
            return None
        calls = getattr(self.server.acquirer, "calls", None)
        return len(calls) if isinstance(calls, list) else None

    def restart(self, *, while_stopped: Callable[[], None] | None = None) -> ShareServer:
        """Stop the in-process server and open it again on the same files (after
        ``while_stopped``, which may replace them: a restore from a backup); every
        device's wire now reaches the new process."""
        if self.server is None:
            raise RuntimeError("restart needs the in-process server")
        acquirer = self.server.acquirer
        self.server.close()
        if while_stopped is not None:
            while_stopped()
        self.server = self._factory(self.server_path, self.clock)
        self.server.acquirer = acquirer
        for victim in self.victims:
            if isinstance(victim.wire.inner, ShareServer):
                victim.wire.inner = self.server
        return self.server

    def close(self) -> None:
        for victim in self.victims:
            for card_id in victim.cards:
                # A remote deployment keeps nothing of ours: delete every test card.
                try:
                    victim.device.delete(card_id)
                except _errors.UnknownCard:
                    pass  # the attack deleted it already
                except Exception:  # reported by the runner, with the card id
                    self.cleanup.left.append(card_id)
                    continue
                self.cleanup.deleted += 1
            with contextlib.suppress(Exception):
                victim.device.close()
        for bridge in self.bridges:
            with contextlib.suppress(Exception):
                bridge.close()
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.close()


@dataclass
class Cleanup:
    """The test cards a run enrolled, how many it deleted again, and any it could not
    (their ids, for an operator to remove): against a deployment, nothing of the
    suite's should stay behind."""

    enrolled: int = 0
    deleted: int = 0
    left: list[str] = field(default_factory=list)


class Deployment:
    """What the suite attacks: in-process by default, or ``url`` (``--server``)."""

    def __init__(self, url: str | None = None, *, pin_sha256: str | None = None,
                 server_factory: ServerFactory = default_server,
                 workdir: Path | None = None) -> None:
        self.url = url
        self.pin_sha256 = pin_sha256
        self.server_factory = server_factory
        self.workdir = workdir
        self.cleanup = Cleanup()
        """Every lab's test cards, added up over the run."""

    @property
    def remote(self) -> bool:
        return self.url is not None

    @contextlib.contextmanager
    def lab(self) -> Iterator[Lab]:
        root = Path(tempfile.mkdtemp(prefix="splitvault-attack-", dir=self.workdir))
        lab = Lab(root, url=self.url, pin_sha256=self.pin_sha256,
                  server_factory=self.server_factory, cleanup=self.cleanup)
        try:
            yield lab
        finally:
            lab.close()
            shutil.rmtree(root, ignore_errors=True)


def sample_card(pan: str = PAN, holder: str = HOLDER) -> Card:
    """The test card (or another test number and holder), valid until 12/30."""
    return Card(pan, "12/30", holder)


def pay(victim: Victim, card_id: str, pin: str = PIN, *, key: str = "order-1",
        amount: int = 12000, merchant: str = "Gift Shop", currency: str = "KRW") -> Authorization:
    with Pin.from_digits(pin) as p:
        return victim.device.authorize(card_id, p, amount=amount, currency=currency,
                                       merchant=merchant, idempotency_key=key)


def guesses_used(lab: Lab, victim: Victim, card_id: str) -> int:
    """The card's spent guesses. In-process read from the server; against a deployment
    measured with one wrong PIN (which spends a guess: ``attempts_left`` is the limit
    minus guesses used before it, minus one)."""
    if lab.server is not None:
        return lab.server.card_state(card_id).guesses_used
    limit = victim.wire.info().guess_limit
    try:
        pay(victim, card_id, OTHER_PIN, key="probe")
    except _errors.WrongPin as exc:
        return limit - 1 - exc.attempts_left
    except _errors.CardLocked:
        return limit
    return -1  # the wrong PIN was accepted: callers treat this as a failure
