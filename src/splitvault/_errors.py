"""The error tree: one base, a few domain errors, caller mistakes also ``ValueError``.

Messages are fixed strings or carry only non-secret values (counts, lengths, ids).
No message ever contains a PAN, a PIN, a share or key bytes: callers log these
messages and show them on screens.
"""

from __future__ import annotations

__all__ = [
    "AcquirerUnavailable",
    "CardLocked",
    "ConfigurationError",
    "Declined",
    "DeviceCloned",
    "IdempotencyConflict",
    "InvalidCard",
    "InvalidChallenge",
    "InvalidPayment",
    "InvalidPhrase",
    "InvalidPin",
    "MalformedRequest",
    "PaymentInDoubt",
    "RateLimited",
    "RealmFaulty",
    "ServerRolledBack",
    "ServerUnavailable",
    "TamperedData",
    "UnknownCard",
    "VaultError",
    "WeakPin",
    "WrongPin",
]


class VaultError(Exception):
    """Base of every error splitvault raises on purpose."""

    #: A stable, machine-readable code; the HTTP layer sends it as ``error``.
    code = "vault_error"


# -- caller mistakes: also ValueError ------------------------------------------------


class InvalidCard(VaultError, ValueError):
    """The card data is malformed: PAN, expiry or holder name."""

    code = "invalid_card"


class InvalidPin(VaultError, ValueError):
    """The PIN is not 4 to 12 ASCII digits, or breaks the PIN policy's length."""

    code = "invalid_pin"


class WeakPin(InvalidPin):
    """The PIN is too easy to guess: repeated digit, a run, or a common PIN."""

    code = "weak_pin"


class InvalidPayment(VaultError, ValueError):
    """Amount, currency, merchant or idempotency key is malformed."""

    code = "invalid_payment"


class InvalidPhrase(VaultError, ValueError):
    """The keypad security phrase is empty, too long or not printable."""

    code = "invalid_phrase"


class MalformedRequest(VaultError, ValueError):
    """A protocol message is malformed: wrong lengths, bad encodings, bad ids."""

    code = "malformed_request"


# -- outcomes of the protocol ----------------------------------------------------------


class WrongPin(VaultError):
    """The PIN did not verify. ``attempts_left`` counts down to the lock."""

    code = "wrong_pin"

    def __init__(self, attempts_left: int) -> None:
        self.attempts_left = attempts_left
        super().__init__(f"wrong PIN: {attempts_left} attempt(s) left before the card locks")

    def __reduce__(self) -> tuple[type[WrongPin], tuple[int]]:
        return (type(self), (self.attempts_left,))


class CardLocked(VaultError):
    """The card used all its PIN guesses. It stays locked, across restarts."""

    code = "card_locked"

    def __init__(self, message: str = "card locked: too many wrong PIN attempts") -> None:
        super().__init__(message)


class DeviceCloned(VaultError):
    """This card was used from another copy of this device (its shares were re-split
    by a payment this device never saw), or this is such a copy. The card is refused
    everywhere until its owner re-enrolls it (``Device.reenroll``, with the card),
    which also cuts every copy off. Recorded in the server's audit log."""

    code = "device_cloned"

    def __init__(self, message: str = "this card was used from another copy of this device; "
                 "re-enroll it with the card to use it again") -> None:
        super().__init__(message)


class ServerRolledBack(VaultError):
    """The share server's copy of this card is older than this device's: its data was
    restored from a backup taken before the card's last payment, so its share no
    longer combines with this device's. Nothing was spent or charged; the card needs
    re-enrolling (``Device.reenroll``)."""

    code = "server_rolled_back"

    def __init__(self, message: str = "the share server's copy of this card is older than "
                 "this device's (restored from an old backup?); re-enroll the card") -> None:
        super().__init__(message)


class UnknownCard(VaultError):
    """No such card, or the request was not signed by the card's device.

    Both cases give the same error so a stranger cannot tell which card ids exist.
    """

    code = "unknown_card"

    def __init__(self, message: str = "unknown card") -> None:
        super().__init__(message)


class Declined(VaultError):
    """The acquirer declined the payment. Acquirers raise this; ``reason`` is shown to users."""

    code = "declined"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"declined: {reason}")

    def __reduce__(self) -> tuple[type[Declined], tuple[str]]:
        return (type(self), (self.reason,))


class IdempotencyConflict(VaultError):
    """The idempotency key was already used for a payment with other parameters."""

    code = "idempotency_conflict"

    def __init__(
        self, message: str = "idempotency key already used for a different payment"
    ) -> None:
        super().__init__(message)


class TamperedData(VaultError):
    """A protected value failed authentication: ciphertext, signature, record or log.

    Deliberately opaque (as Fernet's ``InvalidToken``): it never says which check failed.
    """

    code = "tampered_data"

    def __init__(self, message: str = "data failed authentication") -> None:
        super().__init__(message)


class InvalidChallenge(VaultError):
    """The authorization challenge is unknown, expired, or was already used."""

    code = "invalid_challenge"

    def __init__(self, message: str = "challenge is unknown, expired or already used") -> None:
        super().__init__(message)


class AcquirerUnavailable(VaultError):
    """The acquirer failed without an answer. Nothing was recorded as charged."""

    code = "acquirer_unavailable"

    def __init__(self, message: str = "acquirer unavailable: nothing was charged") -> None:
        super().__init__(message)


class PaymentInDoubt(VaultError):
    """A previous attempt with this idempotency key reached the acquirer but its answer
    is unknown (a timeout, a lost reply, a crash). It is not sent again: reconciliation
    (``ShareServer.reconcile()``) settles it with the acquirer, and a retry then gets
    the settled result. The first answer names the acquirer's exception *type* (never
    its text, which could hold anything)."""

    code = "payment_in_doubt"

    def __init__(
        self,
        message: str = "an earlier attempt with this idempotency key has no recorded outcome; "
        "it was not retried (reconcile with the acquirer)",
    ) -> None:
        super().__init__(message)


class ServerUnavailable(VaultError):
    """The share server could not be reached, or answered with something unexpected."""

    code = "server_unavailable"


class RealmFaulty(VaultError):
    """A realm (or the gateway, about a realm) answered with something provably wrong:
    an evaluation whose DLEQ proof fails, or a share that does not match the device's
    commitment. ``realms`` names them. Never a wrong PIN: nothing was counted against
    the user for it, and an operator should look at those realms."""

    code = "realm_faulty"

    def __init__(self, realms: tuple[str, ...] = (), message: str | None = None) -> None:
        self.realms = tuple(realms)
        names = ", ".join(self.realms) or "a realm"
        super().__init__(message or f"realm(s) {names} answered wrongly (failed proof or "
                         "share); nothing was charged")


class RateLimited(ServerUnavailable):
    """The share server is refusing this client's requests for a while."""

    code = "rate_limited"


class ConfigurationError(VaultError):
    """A key file, database or setting is missing or malformed."""

    code = "configuration_error"
