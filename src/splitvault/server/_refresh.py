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

Claims are *proven*: ``current``, ``commit`` and ``resend`` count only with the
evaluation's possession MAC under the presented version's token (and the refresh
key's X25519 secret), checked before the store's transaction (:func:`proven`); a
copy lying about its version gets nothing and changes nothing (audited). A ``stale``
version marks the card only with the epoch MAC (a device of the card's current
enrollment: a copy that re-enrollment cut off cannot mark it again). And a
``stale`` request is marked as a copy only if it was sent (by its signed clock) after
the server moved past that version: an owner's
request held back by the network, or queued, and delivered after the owner's next
payment, is refused as late, not taken for a copy.

Everything here is pure: the store applies the verdict inside the transaction that
spends the evaluation, so it holds however many workers run.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Literal

from .._resplit import POSSESSION_LEN, TOKEN_LEN, epoch_mac, possession_mac, seal_refresh
from ..crypto.envelope import x25519
from ..crypto.errors import AuthenticationFailed
from ..crypto.memory import wipe
from ..crypto.shares import KEY_LEN, combine
from ._keyring import Keyring
from ._store import CardRecord

__all__ = ["REENROLL_STEP", "Proof", "Resplit", "Verdict", "draw", "is_late", "judge",
           "new_share", "proven", "resealed"]

REENROLL_STEP = 2
"""How far a re-enrollment moves a card's share version: past the current version and
the one a waiting re-split would have made, so every copy of the device is below the
new floor."""

Verdict = Literal["current", "commit", "resend", "stale", "cut_off", "ahead"]


def is_late(sent_at: float | None, moved_at: float | None) -> bool:
    """Whether a stale request may be the owner's, held back: sent (by its signed
    clock) before the server moved past its version. Such a request is refused, not
    taken for a copy; a copy that backdates its clock gets the same refusal and
    nothing else. (An owner whose clock runs ahead by more than the time between the
    held request and the next payment could still be taken for a copy: see
    threat_model.md C4.)"""
    if sent_at is None or moved_at is None:
        return False
    return sent_at < moved_at


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
    """A re-split drawn for one payment: the next server share and the next version's
    token, wrapped for the store, and R, the token and the current version's token
    (the tag's key; None for a card enrolled before tokens), kept in memory only until
    they are sealed to the device."""

    wrapped_next: bytes = field(repr=False)
    wrapped_token: bytes = field(repr=False)
    r: bytearray = field(repr=False)
    token: bytearray = field(repr=False)
    tag_key: bytearray | None = field(repr=False)

    def seal(self, refresh_key: bytes, card_id: str, version: int) -> bytes:
        return seal_refresh(refresh_key, self.r, self.token, self.tag_key, card_id,
                            version + 1)

    def wipe(self) -> None:
        _wipe(self.r, self.token, self.tag_key)


def draw(keyring: Keyring, card_id: str, server_share: bytes | bytearray,
         wrapped_token: bytes | None) -> Resplit:
    """The re-split of ``server_share`` (the card's current share, unwrapped by the
    caller): a fresh share and token, wrapped, and R."""
    fresh, r = new_share(server_share)
    token = bytearray(secrets.token_bytes(TOKEN_LEN))
    tag_key = None if wrapped_token is None else keyring.unwrap("share-token", card_id,
                                                                wrapped_token)
    try:
        return Resplit(keyring.wrap("share", card_id, fresh),
                       keyring.wrap("share-token", card_id, token), r, token, tag_key)
    except BaseException:
        _wipe(r, token, tag_key)
        raise
    finally:
        wipe(fresh)


def new_share(server_share: bytes | bytearray) -> tuple[bytearray, bytearray]:
    """A fresh server share and the R that turns ``server_share`` into it; both are
    the caller's to wipe. The new share is uniform whatever the old one was."""
    if len(server_share) != KEY_LEN:
        raise ValueError("a share is 32 bytes")
    fresh = bytearray(secrets.token_bytes(KEY_LEN))
    return fresh, combine(server_share, fresh)


def resealed(keyring: Keyring, card: CardRecord, refresh_key: bytes) -> bytes:
    """R recomputed from the two wrapped versions a waiting re-split keeps (for a
    retry whose reply was lost), sealed afresh to ``refresh_key`` with the waiting
    version's token, tagged under the current one's."""
    if card.share_next is None or card.share_next_token is None:
        raise ValueError("no re-split waits")
    old = keyring.unwrap("share", card.card_id, card.share)
    new = keyring.unwrap("share", card.card_id, card.share_next)
    token = keyring.unwrap("share-token", card.card_id, card.share_next_token)
    tag_key = (None if card.share_token is None
               else keyring.unwrap("share-token", card.card_id, card.share_token))
    r = bytearray()
    try:
        r = combine(old, new)
        return seal_refresh(refresh_key, r, token, tag_key, card.card_id,
                            card.share_version + 1)
    finally:
        _wipe(old, new, r, token, tag_key)


@dataclass(frozen=True)
class Proof:
    """What an evaluation's possession proof showed: ``epoch``, that it comes from a
    device of the card's current enrollment; ``version``, that it holds the version it
    presents (and the refresh key's secret, when it presents one)."""

    epoch: bool
    version: bool


def proven(keyring: Keyring, server_secret: bytes | bytearray, card: CardRecord,
           presented: int, refresh_key: bytes, possession: bytes, message: bytes) -> Proof:
    """Check the evaluation's possession proof (``_resplit``). For a version the server
    holds a token for (the current one, or the waiting one for ``presented`` one above)
    the version MAC, under that token and, with a refresh key, its X25519 secret: a
    token of this enrollment's also shows the device is of it, so the epoch MAC is not
    checked (one KEK unwrap fewer on every payment). For any other version (stale,
    ahead) there is no version proof, only the epoch MAC under the token the card was
    (re-)enrolled with; the verdict decides those. A card enrolled before tokens needs
    none (threat_model.md)."""
    if card.epoch_token is None:
        return Proof(True, True)
    if len(possession) != POSSESSION_LEN:
        return Proof(False, False)
    if presented == card.share_version:
        wrapped = card.share_token
    elif presented == card.share_version + 1 and card.share_next is not None:
        wrapped = card.share_next_token
    else:
        wrapped = None
    if wrapped is None:
        epoch = keyring.unwrap("share-token", card.card_id, card.epoch_token)
        try:
            return Proof(hmac.compare_digest(epoch_mac(epoch, message), possession[:32]),
                         False)
        finally:
            wipe(epoch)
    token = keyring.unwrap("share-token", card.card_id, wrapped)
    dh = bytearray()
    try:
        if refresh_key:
            try:
                dh = x25519(server_secret, refresh_key)
            except AuthenticationFailed:
                return Proof(False, False)
        held = hmac.compare_digest(
            possession_mac(token, dh if refresh_key else None, message), possession[32:])
        return Proof(held, held)
    finally:
        wipe(token, dh)


def _wipe(*buffers: bytearray | None) -> None:
    """``wipe`` what is there (a card enrolled before tokens has no tag key)."""
    wipe(*(buffer for buffer in buffers if buffer is not None))
