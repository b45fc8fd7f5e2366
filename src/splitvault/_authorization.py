"""``Authorization``: the immutable result of one payment attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Authorization", "CardSummary"]


@dataclass(frozen=True)
class Authorization:
    """What happened to a payment. The same idempotency key always yields an equal value.

    ``approved`` is the only field to branch on: an approval code is present exactly when
    it is true, a decline reason exactly when it is false.
    """

    approved: bool
    approval_code: str | None
    decline_reason: str | None
    masked_pan: str
    amount: int
    currency: str
    merchant: str
    idempotency_key: str
    timestamp: datetime

    def __post_init__(self) -> None:
        if self.approved != (self.approval_code is not None) or self.approved == (
            self.decline_reason is not None
        ):
            raise ValueError("an authorization has an approval code or a decline reason")


@dataclass(frozen=True)
class CardSummary:
    """A card as a wallet lists it: never the PAN, never the holder's name.

    ``share_version`` counts the re-splits of the card's shares (one per approved
    payment, ``Device.authorize``) and ``refreshed_at`` is when this device last took
    one (Unix time; None if never)."""

    card_id: str
    brand: str
    last4: str
    expiry: str
    share_version: int = 0
    refreshed_at: float | None = None

    @property
    def masked_pan(self) -> str:
        return f"•••• {self.last4}"
