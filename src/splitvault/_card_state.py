"""``CardState``: a card's PIN state as the server knows it, shared by both roles."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CardState"]


@dataclass(frozen=True)
class CardState:
    """What the server knows about a card's PIN state: wrong PINs so far, the limit,
    whether the card is locked, whether a copy of its device was caught (``cloned``:
    refused until re-enrolled) and the version of its shares, re-split after every
    approved payment (for operators, the demo, and a device asking with
    :meth:`splitvault.Device.card_state`)."""

    guesses_used: int
    guess_limit: int
    locked: bool
    cloned: bool = False
    share_version: int = 0

    @property
    def attempts_left(self) -> int:
        """Wrong PINs still allowed before the card locks (0 once locked)."""
        return 0 if self.locked else max(self.guess_limit - self.guesses_used, 0)
