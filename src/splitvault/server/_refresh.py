"""The re-split after every approved payment ("like an OTP"), and what it says about copies.

The card's data key K is ``D_v xor S_v`` (device share, server share, version ``v``).
An approved payment re-randomizes both halves together: the server draws a fresh
``S_v+1`` and sends ``R = S_v xor S_v+1`` to the device, sealed to a fresh X25519 key
the device put in the signed request; the device makes ``D_v+1 = D_v xor R``. K, and
so the sealed card record, never change, yet no earlier share combines with a later
one: ``D_v xor S_v+1 = K xor R`` with R uniform and unknown to whoever holds only one
side's old half.

Two versions are kept until both sides hold the new one (as SVR's RotateStart /
RotateCommit): the server keeps ``S_v`` and ``S_v+1`` (``share`` and ``share_next``,
both wrapped under the KEK) until the device presents version ``v+1``, signed with its
device key; the device keeps ``D_v`` until the server's reply confirms ``v+1``. R is
never stored: while both server versions are there it is their XOR, recomputed to
answer a retry, sealed afresh each time; once the device commits, ``S_v`` is gone.

What a presented version means (:func:`judge`):

- ``current``: the version the server holds (no re-split waiting);
- ``commit``: the device shows ``v+1`` while the server waits for it: ``S_v+1``
  becomes the share, ``S_v`` is dropped (one compare-and-set);
- ``resend``: the device shows ``v`` *and* the very key the waiting re-split was
  sealed to: the owner, whose reply was lost; it gets R again (sealed afresh);
- ``stale``: a version the server has moved past, or ``v`` without that key while a
  re-split waits: a copy of the device from before a payment. The card is marked
  cloned (audited) and refused to every copy until its owner re-enrolls it;
- ``cut_off``: below the version a re-enrollment started at: a copy that re-enrollment
  already cut off; refused, nothing changes;
- ``ahead``: a version the server never made: its data was restored from a backup
  older than the card's last payment (``ServerRolledBack``).

Everything here is pure: the store applies the verdict inside the transaction that
spends the evaluation, so it holds however many workers run.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Literal

from .._resplit import seal_refresh
from ..crypto.memory import wipe
from ..crypto.shares import KEY_LEN, combine
from ._keyring import Keyring

__all__ = ["REENROLL_STEP", "Resplit", "Verdict", "judge", "new_share", "resealed"]

REENROLL_STEP = 2
"""How far a re-enrollment moves a card's share version: past the current version and
the one a waiting re-split would have made, so every copy of the device is below the
new floor."""

Verdict = Literal["current", "commit", "resend", "stale", "cut_off", "ahead"]


def judge(version: int, floor: int, next_key: bytes | None, presented: int,
          presented_key: bytes) -> Verdict:
    """What the device's ``presented`` version (and refresh key) means for a card at
    ``version`` whose re-enrollment started at ``floor``; ``next_key`` is the key a
    waiting re-split was sealed to (None if none waits)."""
    if presented < floor:
        return "cut_off"
    if next_key is None:
        if presented == version:
            return "current"
        return "stale" if presented < version else "ahead"
    if presented == version + 1:
        return "commit"
    if presented == version:
        # Only the owner holds the key the re-split was sealed to: a copy taken before
        # the payment that made it never saw that key.
        if len(presented_key) == len(next_key) and hmac.compare_digest(presented_key,
                                                                       next_key):
            return "resend"
        return "stale"
    return "stale" if presented < version else "ahead"


@dataclass
class Resplit:
    """A re-split drawn for one payment: the next server share, wrapped for the store,
    and R, kept in memory only until it is sealed to the device."""

    wrapped_next: bytes = field(repr=False)
    r: bytearray = field(repr=False)

    def wipe(self) -> None:
        wipe(self.r)


def new_share(server_share: bytes | bytearray) -> tuple[bytearray, bytearray]:
    """A fresh server share and the R that turns ``server_share`` into it; both are
    the caller's to wipe. The new share is uniform whatever the old one was."""
    if len(server_share) != KEY_LEN:
        raise ValueError("a share is 32 bytes")
    fresh = bytearray(secrets.token_bytes(KEY_LEN))
    return fresh, combine(server_share, fresh)


def resealed(keyring: Keyring, card_id: str, share: bytes, share_next: bytes,
             refresh_key: bytes, version: int) -> bytes:
    """R recomputed from the two wrapped versions a waiting re-split keeps (for a
    retry whose reply was lost), sealed afresh to ``refresh_key``."""
    old = keyring.unwrap("share", card_id, share)
    new = keyring.unwrap("share", card_id, share_next)
    r = bytearray()
    try:
        r = combine(old, new)
        return seal_refresh(refresh_key, r, card_id, version + 1)
    finally:
        wipe(old, new, r)
