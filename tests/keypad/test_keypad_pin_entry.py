"""PinEntry, the keypad's digit buffer: fixed size, zeroed in place, handed out as a Pin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from splitvault import Pin
from splitvault.keypad._entry import PinEntry


def test_digits_are_stored_as_ascii_in_a_fixed_bytearray() -> None:
    """Digits go in as ASCII bytes; the buffer is one bytearray that never reallocates."""
    entry = PinEntry(4, 6)
    buffer, allocated = entry._buffer, entry._buffer.__alloc__()
    for digit in (1, 2, 3, 4, 5, 6, 7):
        entry.append(digit)
    assert entry._buffer is buffer and buffer.__alloc__() == allocated
    assert bytes(buffer) == b"123456"
    assert entry.count == 6


def test_backspace_zeroes_the_freed_slot() -> None:
    """Backspace overwrites the removed digit with zero, it does not just move a counter."""
    entry = PinEntry(4, 4)
    for digit in (9, 8, 7):
        entry.append(digit)
    assert entry.backspace()
    assert bytes(entry._buffer) == b"98\0\0"
    assert entry.backspace() and entry.backspace()
    assert not entry.backspace()
    assert bytes(entry._buffer) == bytes(4)


def test_take_pin_returns_a_pin_and_wipes_the_entry() -> None:
    """take_pin hands out a Pin of exactly the digits entered and leaves zeros behind."""
    entry = PinEntry(4, 8)
    for digit in (5, 0, 5, 0, 1):
        entry.append(digit)
    pin = entry.take_pin()
    assert isinstance(pin, Pin)
    assert pin._digits() == bytearray(b"50501")
    assert pin._digits() is not entry._buffer
    assert bytes(entry._buffer) == bytes(8) and entry.count == 0


def test_take_pin_refuses_a_short_entry_and_still_wipes() -> None:
    """A PIN shorter than `length` cannot be taken; the attempt leaves the entry wiped."""
    entry = PinEntry(4, 4)
    entry.append(1)
    with pytest.raises(ValueError, match="at least 4 digits"):
        entry.take_pin()
    assert bytes(entry._buffer) == bytes(4)


def test_non_digits_are_refused() -> None:
    """Only the integers 0-9 can be appended."""
    entry = PinEntry(4, 4)
    assert not entry.append(10) and not entry.append(-1)
    assert entry.count == 0


def test_repr_shows_the_count_only() -> None:
    """repr gives how many digits, never which."""
    entry = PinEntry(4, 6)
    for digit in (4, 2):
        entry.append(digit)
    assert repr(entry) == "<PinEntry 2 of 6 digits>"


@given(st.lists(st.integers(min_value=0, max_value=9), min_size=4, max_size=12))
def test_any_digits_round_trip_into_a_pin(digits: list[int]) -> None:
    """Whatever 4-12 digits go in come out, in order, as the Pin's digits."""
    entry = PinEntry(4, 12)
    for digit in digits:
        entry.append(digit)
    with entry.take_pin() as pin:
        assert pin._digits().decode() == "".join(map(str, digits))
