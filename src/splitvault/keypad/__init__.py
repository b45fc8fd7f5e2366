"""The SecureKeypad widget: PIN entry on a shuffled keypad, for Textual apps.

::

    from splitvault.keypad import KeypadSafeApp, SecureKeypad

    class PayApp(KeypadSafeApp[None]):
        def compose(self):
            yield SecureKeypad(security_phrase="blue otter")

        def on_secure_keypad_submitted(self, event: SecureKeypad.Submitted) -> None:
            with event.pin:
                ...  # authorize with the PIN; it is wiped on leaving the block
"""

from ._keymap import POSITION_HINTS, POSITION_KEYS
from ._keypad import INACTIVITY_TIMEOUT, SecureKeypad
from ._keys import KeypadKey
from ._layout import POSITIONS, Layout, new_layout
from ._screenshot import KeypadSafeApp, keypad_is_open, without_screenshot

__all__ = [
    "INACTIVITY_TIMEOUT",
    "POSITIONS",
    "POSITION_HINTS",
    "POSITION_KEYS",
    "KeypadKey",
    "KeypadSafeApp",
    "Layout",
    "SecureKeypad",
    "keypad_is_open",
    "new_layout",
    "without_screenshot",
]
