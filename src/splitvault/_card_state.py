"""``CardState``: a card's PIN state as the server knows it, shared by both roles."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CardState"]


@dataclass(frozen=True)
class CardState:
    """What the server knows about a card's PIN state: wrong PINs so far, the limit,
    and whether the card is locked (for operators, the demo, and a device asking with
    :meth:`splitvault.Device.card_state`)."""

    guesses_used: int
    guess_limit: int
    locked: bool

    @property
    def attempts_left(self) -> int:
        """Wrong PINs still allowed before the card locks (0 once locked)."""
        return 0 if self.locked else max(self.guess_limit - self.guesses_used, 0)
