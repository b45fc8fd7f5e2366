import pytest
from splitvault.keypad import KeypadKey, SecureKeypad
from splitvault.keypad._display import QuietLabel, PinDisplay
from splitvault.keypad._siren import Siren
from .test_keypad_leaks import test_copy_and_cut_do_nothing, test_nothing_in_the_keypad_can_be_selected

@pytest.fixture
def mutate(monkeypatch):
    for cls in (KeypadKey, SecureKeypad, QuietLabel, PinDisplay, Siren):
        monkeypatch.setattr(cls, "ALLOW_SELECT", True)
    monkeypatch.setattr(KeypadKey, "get_selection", KeypadKey.__mro__[1].get_selection)
    monkeypatch.setattr(QuietLabel, "get_selection", QuietLabel.__mro__[1].get_selection)

async def test_m1(mutate):
    await test_copy_and_cut_do_nothing()
async def test_m2(mutate):
    await test_nothing_in_the_keypad_can_be_selected()
