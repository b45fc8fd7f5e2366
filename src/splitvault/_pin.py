"""``Pin``: PIN digits in a wipeable buffer that never shows itself.

Python cannot promise that no copy of a secret survives (the interpreter may have
copied a ``str`` it was built from); see threat_model.md. What we can do: keep the
digits in one ``bytearray``, hand out only short-lived copies inside the library,
zero it as soon as it is no longer needed, and never put it in ``repr``, ``str``,
pickles or messages.
"""

from __future__ import annotations

from itertools import pairwise
from types import TracebackType
from typing import NoReturn

from ._errors import InvalidPin, WeakPin
from ._profiles import PinPolicy
from .crypto.memory import wipe

__all__ = ["Pin", "check_new_pin"]

MIN_LENGTH = 4
"""ISO 9564-1 allows PINs of 4 to 12 digits."""
MAX_LENGTH = 12

_DIGITS = frozenset(b"0123456789")

#: The most common PINs in published leak studies (DataGenetics 4-digit analysis; the
#: Korean and Chinese 6-digit studies) that the structural checks below do not already
#: catch. Checked as exact strings, in constant time with respect to which one matched.
_BLOCKLIST = frozenset(
    pin.encode("ascii")
    for pin in {
        # 4 digits
        "1212", "1004", "2000", "6969", "1122", "1313", "4321", "2001", "1010", "2580",
        "0852", "1998", "1999", "1984", "1985", "1986", "1987", "1988", "1989", "1990",
        "5683", "7777",
        # 6 digits
        "121212", "123123", "112233", "159753", "131313", "123321", "520520", "123654",
        "147258", "258369", "159357", "147852", "789456", "456123", "102030", "111222",
        "101010", "010203", "252525", "232323", "696969", "000111", "121314", "123456",
        "654321", "202020", "100200", "110110", "520131", "147369", "741852", "963852",
        "135790", "246810", "098765", "012345", "112211", "199001", "778899",
        "142536", "123789", "987654",
        # longer
        "12341234", "11223344", "12121212", "88888888", "12344321", "1234567890",
    }
)


class Pin:
    """A PIN of 4 to 12 ASCII digits held in a ``bytearray``.

    Use it as a context manager, or call :meth:`wipe`, so the digits are zeroed
    the moment you are done. It cannot be pickled, copied into a ``str`` by
    ``repr``/``str``/f-strings, or compared with ``==`` (which would tempt
    non-constant-time code).
    """

    __slots__ = ("__weakref__", "_buffer", "_wiped")

    def __init__(self, _buffer: bytearray, /) -> None:
        # Private: use from_digits() or from_buffer(). Takes ownership of _buffer.
        self._buffer = _buffer
        self._wiped = False

    @classmethod
    def from_digits(cls, digits: str) -> Pin:
        """A PIN from a string of 4 to 12 ASCII digits.

        Prefer :meth:`from_buffer` where the digits never need to exist as ``str``
        (the SecureKeypad does so).
        """
        if not isinstance(digits, str):
            raise InvalidPin("PIN must be given as a string of digits")
        try:
            raw = bytearray(digits, "ascii")
        except UnicodeEncodeError:
            raise InvalidPin("PIN must contain only the ASCII digits 0-9") from None
        return cls.from_buffer(raw)

    @classmethod
    def from_buffer(cls, buffer: bytearray) -> Pin:
        """A PIN from a ``bytearray`` of ASCII digits. The buffer is copied, then wiped,
        whether or not it was valid, so the caller holds no copy either way."""
        if not isinstance(buffer, bytearray):
            raise InvalidPin("PIN buffer must be a bytearray")
        try:
            _check_format(buffer)
            return cls(bytearray(buffer))
        finally:
            wipe(buffer)

    # -- use ---------------------------------------------------------------------------

    def __len__(self) -> int:
        self._check_alive()
        return len(self._buffer)

    def _digits(self) -> bytearray:
        """The buffer itself (not a copy), for the library's KDF input. Internal."""
        self._check_alive()
        return self._buffer

    def copy(self) -> Pin:
        """An independent Pin with the same digits (each must be wiped on its own)."""
        self._check_alive()
        return Pin(bytearray(self._buffer))

    @property
    def wiped(self) -> bool:
        """True once :meth:`wipe` ran; the Pin is then unusable."""
        return self._wiped

    def wipe(self) -> None:
        """Zero the digits. Idempotent."""
        wipe(self._buffer)
        self._buffer = bytearray()
        self._wiped = True

    def __enter__(self) -> Pin:
        self._check_alive()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wipe()

    def __del__(self) -> None:
        # Best effort: a forgotten Pin is wiped when collected.
        buffer = getattr(self, "_buffer", None)
        if buffer is not None:
            wipe(buffer)

    # -- never show, never serialize ---------------------------------------------------

    def __repr__(self) -> str:
        return "<Pin wiped>" if self._wiped else "<Pin ******>"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Pin cannot be pickled")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("Pin cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError("Pin cannot be copied implicitly; use Pin.copy()")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("Pin cannot be copied implicitly; use Pin.copy()")

    def __eq__(self, other: object) -> bool:
        # Comparing PINs is the server's job, by proof; equality here would invite
        # timing leaks and accidental logging in assertion messages.
        return self is other

    __hash__ = object.__hash__

    def _check_alive(self) -> None:
        if self._wiped:
            raise InvalidPin("this PIN was wiped and can no longer be used")


def _check_format(raw: bytearray) -> None:
    if not MIN_LENGTH <= len(raw) <= MAX_LENGTH:
        raise InvalidPin(f"PIN must have {MIN_LENGTH} to {MAX_LENGTH} digits")
    if not all(b in _DIGITS for b in raw):
        raise InvalidPin("PIN must contain only the ASCII digits 0-9")


def check_new_pin(pin: Pin, policy: PinPolicy = PinPolicy.DEFAULT) -> None:
    """Raise ``InvalidPin`` or ``WeakPin`` unless ``pin`` may be chosen as a new PIN."""
    digits = pin._digits()
    if not policy.min_length <= len(digits) <= policy.max_length:
        if policy.min_length == policy.max_length:
            raise InvalidPin(f"PIN must have exactly {policy.min_length} digits")
        raise InvalidPin(f"PIN must have {policy.min_length} to {policy.max_length} digits")
    if _is_weak(digits):
        raise WeakPin("PIN is too easy to guess: avoid repeated digits, runs and common PINs")


def _is_weak(digits: bytearray) -> bool:
    steps = {b - a for a, b in pairwise(digits)}
    if steps in ({0}, {1}, {-1}):  # 111111, 123456, 987654
        return True
    if len(set(digits)) <= 2 and len(digits) >= 6:  # 112112, 121121, 221122
        return True
    half = len(digits) // 2
    if len(digits) % 2 == 0 and digits[:half] == digits[half:]:  # 123123, 5454
        return True
    # bytes(...) is an immutable copy that cannot be wiped: a known Python limit, kept
    # to the one membership test (threat_model.md, residual risks).
    return bytes(digits) in _BLOCKLIST
