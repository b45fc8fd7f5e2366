"""Pin: wipeable, never shown, never pickled; the weak-PIN policy."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

import splitvault as sv
from splitvault._pin import check_new_pin


def test_pin_never_shows_its_digits() -> None:
    """repr, str and f-strings show a mask, never the digits."""
    pin = sv.Pin.from_digits("739184")
    for text in (repr(pin), str(pin), f"{pin}", f"{pin!r}", "%s" % pin):  # noqa: UP031
        assert "739184" not in text and "******" in text


def test_pin_refuses_pickling_and_implicit_copies() -> None:
    """A Pin cannot be pickled (it would land in a file or queue) or copied by accident."""
    pin = sv.Pin.from_digits("739184")
    with pytest.raises(TypeError):
        pickle.dumps(pin)
    with pytest.raises(TypeError):
        copy.copy(pin)
    with pytest.raises(TypeError):
        copy.deepcopy(pin)


def test_context_manager_wipes() -> None:
    """Leaving the with-block zeroes the buffer; the wiped Pin refuses further use."""
    with sv.Pin.from_digits("739184") as pin:
        buffer = pin._digits()
        assert bytes(buffer) == b"739184"
    assert bytes(buffer) == b"\x00" * 6 and pin.wiped and repr(pin) == "<Pin wiped>"
    with pytest.raises(sv.InvalidPin, match="wiped"):
        len(pin)


def test_from_buffer_wipes_the_source_even_when_invalid() -> None:
    """The keypad's buffer is zeroed whether or not it held a valid PIN."""
    good = bytearray(b"739184")
    pin = sv.Pin.from_buffer(good)
    assert good == bytearray(6) and bytes(pin._digits()) == b"739184"
    bad = bytearray(b"73a1")
    with pytest.raises(sv.InvalidPin):
        sv.Pin.from_buffer(bad)
    assert bad == bytearray(4)


def test_copy_is_independent() -> None:
    """Pin.copy() gives a separate buffer: wiping one leaves the other intact."""
    pin = sv.Pin.from_digits("739184")
    twin = pin.copy()
    pin.wipe()
    assert bytes(twin._digits()) == b"739184"


@pytest.mark.parametrize("digits", ["123456", "111111", "121212", "123123", "654321",
                                    "112233", "159753", "147258", "000000", "987654",
                                    "121121", "565656", "1234", "9999", "2580"])
def test_weak_pins(digits: str) -> None:
    """Repeated digits, runs, repeats and the blocklist are refused as WeakPin."""
    with pytest.raises(sv.WeakPin):
        check_new_pin(sv.Pin.from_digits(digits), sv.PinPolicy.FLEXIBLE)


@pytest.mark.parametrize("digits", ["739184", "580247", "902417", "3817", "61803398"])
def test_ordinary_pins_pass(digits: str) -> None:
    """Ordinary PINs pass the FLEXIBLE policy."""
    check_new_pin(sv.Pin.from_digits(digits), sv.PinPolicy.FLEXIBLE)


def test_default_policy_wants_six_digits() -> None:
    """The default policy takes exactly six digits."""
    with pytest.raises(sv.InvalidPin, match="exactly 6"):
        check_new_pin(sv.Pin.from_digits("73918"))
    check_new_pin(sv.Pin.from_digits("739184"))


@given(st.text(max_size=20))
def test_from_digits_only_raises_invalid_pin(text: str) -> None:
    """Any text either makes a Pin of 4-12 ASCII digits or raises InvalidPin."""
    try:
        pin = sv.Pin.from_digits(text)
    except sv.InvalidPin:
        return
    assert 4 <= len(pin) <= 12 and bytes(pin._digits()).isdigit()


def test_device_checks_new_pins_against_its_policy(device: sv.Device) -> None:
    """Device.check_new_pin applies the device's policy, so a UI can refuse early."""
    with pytest.raises(sv.WeakPin):
        device.check_new_pin(sv.Pin.from_digits("123456"))
    with pytest.raises(sv.InvalidPin, match="exactly 6"):
        device.check_new_pin(sv.Pin.from_digits("7391"))
    device.check_new_pin(sv.Pin.from_digits("739184"))
