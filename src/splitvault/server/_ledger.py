"""The exactly-once ledger's codec: its keys, digests, payment references and results.

One ledger row per (card, idempotency key), written as ``pending`` with a lease
*before* the acquirer is called and completed after (the store does the writing; see
``_payments.py`` for the flow). Everything here is a pure function of the server's
ledger MAC key:

- the row key is a MAC of (card id, idempotency key), so a dump shows no order numbers;
- the parameter digest is a MAC of (card id, idempotency key, amount, currency,
  merchant), so a retry with other parameters is told apart without storing them, and
  two identical purchases (same card, amount, merchant) still get unrelated digests;
- the payment reference the acquirer receives is a MAC of (card id, idempotency key,
  attempt): stable across retries of one attempt, so a real gateway can deduplicate,
  and it names neither the card nor the person;
- the result (amount, merchant, last 4, approval code) is wrapped under the KEK, padded
  to :data:`RESULT_SIZE`, so its length says nothing about the merchant's name.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from .._authorization import Authorization
from .._errors import TamperedData
from ..crypto.encoding import encode, u64
from ..crypto.memory import wipe
from ._keyring import Keyring
from ._store import LedgerEntry

__all__ = ["Ledger"]

_D_KEY = b"splitvault/v1/ledger-key"
_D_PARAMS = b"splitvault/v2/ledger-params"  # v2: the idempotency key is MAC'd too
_D_REFERENCE = b"splitvault/v1/payment-reference"

RESULT_SIZE = 1024
"""Bytes of every result before it is wrapped: above the longest one (a merchant of at
most 256 bytes, 512 if every character needed a JSON escape; an idempotency key of 128;
codes and reasons of 64; masked PAN 32; field names about 150)."""


class Ledger:
    def __init__(self, mac_key: bytes | bytearray, keyring: Keyring) -> None:
        self._mac_key = mac_key
        self._keyring = keyring

    def _mac(self, msg: bytes) -> bytes:
        return bytes(blake2b(msg, digest_size=32, key=bytes(self._mac_key), encoder=RawEncoder))

    def key_digest(self, card_id: str, idempotency_key: str) -> bytes:
        return self._mac(encode(_D_KEY, card_id.encode(), idempotency_key.encode()))

    def params_digest(self, card_id: str, idempotency_key: str, amount: int, currency: str,
                      merchant: str) -> bytes:
        return self._mac(encode(_D_PARAMS, card_id.encode(), idempotency_key.encode(),
                                u64(amount), currency.encode(), merchant.encode()))

    def reference(self, card_id: str, idempotency_key: str, attempt: int = 0) -> str:
        """``sv-`` and 32 hex digits: the acquirer's name for this payment attempt."""
        digest = self._mac(encode(_D_REFERENCE, card_id.encode(), idempotency_key.encode(),
                                  u64(attempt)))
        return "sv-" + digest[:16].hex()

    @staticmethod
    def same_params(entry: LedgerEntry, digest: bytes) -> bool:
        return hmac.compare_digest(entry.params_digest, digest)

    def seal_result(self, key: bytes, auth: Authorization) -> bytes:
        return self._keyring.wrap("ledger", key.hex(), _dump(auth))

    def open_result(self, entry: LedgerEntry) -> Authorization:
        if entry.result is None:
            raise TamperedData()
        raw = self._keyring.unwrap("ledger", entry.key.hex(), entry.result)
        try:
            return _load(raw)
        finally:
            wipe(raw)


def _dump(auth: Authorization) -> bytes:
    raw = _json(auth)
    if len(raw) > RESULT_SIZE:  # only a longer field than the wire allows gets here
        raise TamperedData()
    return raw + b" " * (RESULT_SIZE - len(raw))  # JSON ignores trailing whitespace


def _json(auth: Authorization) -> bytes:
    return json.dumps(
        {
            "approved": auth.approved,
            "approval_code": auth.approval_code,
            "decline_reason": auth.decline_reason,
            "masked_pan": auth.masked_pan,
            "amount": auth.amount,
            "currency": auth.currency,
            "merchant": auth.merchant,
            "idempotency_key": auth.idempotency_key,
            "timestamp": auth.timestamp.timestamp(),
        },
        sort_keys=True, ensure_ascii=False,
    ).encode()


def _load(raw: bytes | bytearray) -> Authorization:
    try:
        d = json.loads(bytes(raw))
        return Authorization(
            approved=d["approved"],
            approval_code=d["approval_code"],
            decline_reason=d["decline_reason"],
            masked_pan=d["masked_pan"],
            amount=d["amount"],
            currency=d["currency"],
            merchant=d["merchant"],
            idempotency_key=d["idempotency_key"],
            timestamp=datetime.fromtimestamp(d["timestamp"], UTC),
        )
    except (ValueError, KeyError, TypeError):
        raise TamperedData() from None
