"""A card's PIN state, for its own device (``Device.card_state``).

The request is signed by the card's device key over a fresh nonce and time, exactly
like a delete: an unknown card and a bad signature are refused alike after the same
verification (``_signatures.py``), and the nonce is taken once, so a captured query
cannot be replayed to watch the card. It changes nothing else and spends no guess.
"""

from __future__ import annotations

from collections.abc import Callable

from .._errors import InvalidChallenge
from .._profiles import ServerProfile
from .._protocol import CardStatusReply, CardStatusRequest
from ._checks import check_id
from ._guesses import check_fresh
from ._signatures import check_device_signature
from ._store import CardRecord, Store

__all__ = ["CardStatus"]


class CardStatus:
    def __init__(self, store: Store, profile: ServerProfile, clock: Callable[[], float],
                 wallet_guesses: Callable[[CardRecord], int] = lambda card: 0) -> None:
        self._store = store
        self._profile = profile
        self._clock = clock
        self._wallet_guesses = wallet_guesses

    def query(self, request: CardStatusRequest) -> CardStatusReply:
        card_id = check_id(request.card_id, "card id")
        now = self._clock()
        nonce, nonce_expires = check_fresh(request.nonce, request.timestamp, now)
        card = check_device_signature(self._store.card(card_id), request.signed_bytes(),
                                      request.signature)
        if not self._store.use_nonce(nonce, nonce_expires):
            raise InvalidChallenge("request already used (replayed nonce)")
        # The card's own wrong PINs, or its wallet's where those are more: what is
        # left before a lock is the smaller of the two budgets (``_sql_cards.settle_proof``).
        used = max(card.guesses_used, self._wallet_guesses(card))
        return CardStatusReply(used, self._profile.guess_limit, card.locked,
                               card.cloned, card.share_version)
