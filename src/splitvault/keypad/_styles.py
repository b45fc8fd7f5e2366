"""How the keypad looks: its default CSS (the keys' own CSS is in ``_keys``).

About 39 x 17 cells, so it fits an 80 x 24 terminal with room for a header and footer:
a border with the title, the sirens around the security phrase, the PIN masks, a 4 x 4
grid of 8-cell keys with 1-cell gaps, and one status line.
"""

from __future__ import annotations

from typing import Final

__all__ = ["KEYPAD_CSS"]

KEYPAD_CSS: Final = """
SecureKeypad {
    width: 39;
    height: auto;
    padding: 0 1;
    border: round $primary;
    border-title-align: center;
    border-title-color: $text-primary;
    border-title-style: bold;
    background: $surface;

    &:focus {
        border: round $accent;
    }
    #header {
        width: 100%;
        height: 1;
    }
    #phrase {
        width: 1fr;
        height: 1;
        text-align: center;
        text-overflow: ellipsis;
        text-wrap: nowrap;
        color: $text-secondary;
        text-style: italic;
    }
    #display {
        margin-bottom: 1;
    }
    #keys {
        width: 35;
        height: 11;
        grid-size: 4 4;
        grid-columns: 8;
        grid-rows: 2;
        grid-gutter: 1 1;
    }
    #status {
        width: 100%;
        height: 1;
        text-align: center;
        color: $text-warning;
    }
    KeypadKey#key-confirm.-ready:enabled {
        color: $text-success !important;
        background: $success-muted !important;
    }
    &:focus KeypadKey.-cursor {
        background: $accent-muted !important;
        border-subtitle-color: $foreground;
    }
}
"""
"""``SecureKeypad.DEFAULT_CSS``. The cursor and the ready OK key use ``!important`` and a
more specific selector to win over the pinned look of ``KeypadKey``."""
