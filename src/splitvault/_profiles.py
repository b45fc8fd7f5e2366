"""Named profiles instead of knobs: KDF cost, PIN policy, server limits.

Every value carries the reason it was chosen. Build your own with
``dataclasses.replace(profile, ...)`` only if you know why the named one does not fit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["KdfProfile", "PinPolicy", "ServerProfile"]


class KdfProfile(enum.Enum):
    """Argon2id cost for stretching the OPRF output on the device.

    The profile used at enrollment is stored with the card, so a device opened later
    with another profile still derives the same key for that card.
    """

    #: RFC 9106 section 4, second recommended option: t=3, m=64 MiB, p=4. Made for
    #: memory-constrained interactive use, i.e. a phone; about 0.1-0.3 s.
    INTERACTIVE = (3, 64 * 1024, 4)
    #: The cheapest Argon2id that argon2-cffi accepts (t=1, m=8 KiB, p=1). It gives no
    #: protection at all: only for tests and protocol benchmarks.
    TEST_ONLY = (1, 8, 1)

    @property
    def time_cost(self) -> int:
        return int(self.value[0])

    @property
    def memory_cost_kib(self) -> int:
        return int(self.value[1])

    @property
    def parallelism(self) -> int:
        return int(self.value[2])

    @classmethod
    def from_parameters(cls, time_cost: int, memory_cost_kib: int, parallelism: int) -> KdfProfile:
        """The profile with these exact parameters (as stored with a card)."""
        return cls((time_cost, memory_cost_kib, parallelism))


@dataclass(frozen=True)
class PinPolicy:
    """Which new PINs a device accepts at enrollment and PIN change.

    Any PIN of 4 to 12 digits can be *entered*; the policy only governs new PINs.
    """

    min_length: int
    max_length: int

    #: Six digits exactly: the Korean payment-app convention, 10^6 PINs against a limit
    #: of 5 guesses gives an online guessing chance of 1 in 200,000 (less the weak-PIN list).
    DEFAULT: ClassVar[PinPolicy]  # set below
    #: 4 to 12 digits, for issuers whose cards already carry a 4-digit PIN.
    FLEXIBLE: ClassVar[PinPolicy]  # set below


PinPolicy.DEFAULT = PinPolicy(min_length=6, max_length=6)
PinPolicy.FLEXIBLE = PinPolicy(min_length=4, max_length=12)


@dataclass(frozen=True)
class ServerProfile:
    """Limits the share server enforces."""

    #: Wrong-PIN guesses before the card locks. 5 is the common payment-app limit; with a
    #: 6-digit PIN it caps an attacker with the device at 5 in 10^6.
    guess_limit: int
    #: Seconds an authorization challenge stays valid: long enough for a slow phone with
    #: the INTERACTIVE KDF, short enough that a captured challenge is soon worthless.
    challenge_ttl: float
    #: Seconds an unfinished enrollment keeps its OPRF key before it is swept away.
    enrollment_ttl: float
    #: Seconds a worker's claim on a payment lasts while it calls the acquirer: longer
    #: than any sane acquirer timeout, so a live attempt is never taken for a dead one;
    #: a retry waits at most this long before answering ``PaymentInDoubt``.
    lease_seconds: float = 30.0
    #: Unfinished enrollments one client address may hold at once (counted in the
    #: store, so across every worker): a stranger needs only a key he just made to
    #: start one, and each is a row for ``enrollment_ttl``. A phone enrolls one card.
    pending_per_origin: int = 20
    #: Unfinished enrollments in all: bounds what strangers from many addresses can
    #: make the server store (and the sweep's work) whatever the address mix.
    pending_total: int = 10_000

    DEFAULT: ClassVar[ServerProfile]  # set below
    #: Short leases (3 s) so crash tests settle quickly. Only for testing: a real
    #: acquirer may take longer than that, and its payment would be called in doubt.
    TEST_ONLY: ClassVar[ServerProfile]  # set below
    #: A realm of a t-of-n deployment (``serve --role realm``): 2 evaluations without a
    #: correct PIN, each counted as a guess. Every PIN test needs ``t`` realms'
    #: evaluations, so an attacker with the device gets at most floor(n * 2 / t) tests
    #: across all realms: 3 for 2 of 3; one who also breached t - 1 realms (their keys
    #: let him check a guess himself) needs one honest evaluation per test, so at most
    #: (n - t + 1) * 2 = 4 (threat_model.md, RL3). Both within the single server's 5.
    REALM: ClassVar[ServerProfile]  # set below


ServerProfile.DEFAULT = ServerProfile(guess_limit=5, challenge_ttl=60.0, enrollment_ttl=600.0)
ServerProfile.TEST_ONLY = ServerProfile(guess_limit=5, challenge_ttl=60.0, enrollment_ttl=600.0,
                                        lease_seconds=3.0)
ServerProfile.REALM = ServerProfile(guess_limit=2, challenge_ttl=60.0, enrollment_ttl=600.0)
