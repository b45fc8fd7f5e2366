"""``PinEntry``: the digits entered so far, in one fixed ``bytearray``, never a ``str``."""

from __future__ import annotations

from typing import Final

from .._pin import MAX_LENGTH, MIN_LENGTH, Pin
from ..crypto.memory import wipe

__all__ = ["PinEntry"]

_ASCII_ZERO: Final = 0x30


class PinEntry:
    """A partial PIN as ASCII digits in a buffer allocated once at ``max_length``.

    The buffer never grows, so it is never reallocated and no stale copy is left behind
    in freed memory; removed digits are overwritten with zeros in place.
    """

    __slots__ = ("_buffer", "_count", "length", "max_length")

    def __init__(self, length: int, max_length: int) -> None:
        """An empty entry.

        Raises:
            ValueError: ``length`` is not 4 to 12, or ``max_length`` not ``length`` to 12.
        """
        if not MIN_LENGTH <= length <= MAX_LENGTH:
            raise ValueError(f"length must be {MIN_LENGTH} to {MAX_LENGTH}, not {length}")
        if not length <= max_length <= MAX_LENGTH:
            raise ValueError(f"max_length must be {length} to {MAX_LENGTH}, not {max_length}")
        self.length: Final = length
        """Digits needed before the PIN can be confirmed."""
        self.max_length: Final = max_length
        """Most digits accepted."""
        self._buffer = bytearray(max_length)
        self._count = 0

    def __repr__(self) -> str:
        return f"<PinEntry {self._count} of {self.max_length} digits>"

    @property
    def count(self) -> int:
        """How many digits are entered."""
        return self._count

    @property
    def ready(self) -> bool:
        """Enough digits to confirm."""
        return self.length <= self._count

    def append(self, digit: int) -> bool:
        """Add a digit 0-9; False (and nothing added) when the entry is full."""
        if self._count >= self.max_length or not 0 <= digit <= 9:
            return False
        self._buffer[self._count] = _ASCII_ZERO + digit
        self._count += 1
        return True

    def backspace(self) -> bool:
        """Zero the last digit; False when there was none."""
        if not self._count:
            return False
        self._count -= 1
        self._buffer[self._count] = 0
        return True

    def clear(self) -> None:
        """Zero every digit, in place."""
        wipe(self._buffer)
        self._count = 0

    def take_pin(self) -> Pin:
        """The entered digits as a :class:`Pin`. Either way the entry is wiped and empty
        afterwards, as ``Pin.from_buffer`` wipes its input whether or not it was valid.

        Raises:
            ValueError: Fewer than ``length`` digits are entered.
        """
        try:
            if not self.ready:
                raise ValueError(f"the PIN needs at least {self.length} digits")
            # bytearray(memoryview slice) copies straight from the buffer, where a plain
            # slice would leave an unwiped temporary. Pin.from_buffer copies, then wipes it.
            with memoryview(self._buffer) as view, view[: self._count] as digits:
                scratch = bytearray(digits)
            return Pin.from_buffer(scratch)
        finally:
            self.clear()
