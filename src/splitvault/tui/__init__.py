"""The terminal demo: ``splitvault demo``.

A wallet of masked cards, a form with live checks, the SecureKeypad to set a PIN and
pay, the result of each payment, and a security lab that shows, side by side, what the
device and the server each hold: neither holds the card.
"""

from ._app import DemoApp, run_demo

__all__ = ["DemoApp", "run_demo"]
