"""splitvault: a split-key payment card vault.

The card is sealed under a data key that exists only as two full-length random
shares, one on the device and one on the share server. The PIN is hardened by an
RFC 9497 OPRF evaluated by the server and Argon2id on the device. See README.md
and threat_model.md.
"""

from ._authorization import Authorization, CardSummary
from ._card import Card
from ._deployment import Deployment
from ._errors import (
    AcquirerUnavailable,
    CardLocked,
    ConfigurationError,
    Declined,
    DeviceCloned,
    IdempotencyConflict,
    InvalidCard,
    InvalidChallenge,
    InvalidPayment,
    InvalidPhrase,
    InvalidPin,
    MalformedRequest,
    PaymentInDoubt,
    RateLimited,
    RealmFaulty,
    ServerRolledBack,
    ServerUnavailable,
    TamperedData,
    UnknownCard,
    VaultError,
    WeakPin,
    WrongPin,
)
from ._pin import Pin
from ._profiles import KdfProfile, PinPolicy, ServerProfile
from ._version import __version__ as __version__
from .device import Device
from .device._async import AsyncDevice
from .device._history import PaymentRecord
from .server import (
    Acquirer,
    AcquirerStatus,
    AuditReport,
    CardState,
    Receipt,
    ReceiptSink,
    RiskRules,
    ShareServer,
    SimulatedAcquirer,
)

__all__ = [
    "Acquirer",
    "AcquirerStatus",
    "AcquirerUnavailable",
    "AsyncDevice",
    "AuditReport",
    "Authorization",
    "Card",
    "CardLocked",
    "CardState",
    "CardSummary",
    "ConfigurationError",
    "Declined",
    "Deployment",
    "Device",
    "DeviceCloned",
    "IdempotencyConflict",
    "InvalidCard",
    "InvalidChallenge",
    "InvalidPayment",
    "InvalidPhrase",
    "InvalidPin",
    "KdfProfile",
    "MalformedRequest",
    "PaymentInDoubt",
    "PaymentRecord",
    "Pin",
    "PinPolicy",
    "RateLimited",
    "RealmFaulty",
    "Receipt",
    "ReceiptSink",
    "RiskRules",
    "ServerProfile",
    "ServerRolledBack",
    "ServerUnavailable",
    "ShareServer",
    "SimulatedAcquirer",
    "TamperedData",
    "UnknownCard",
    "VaultError",
    "WeakPin",
    "WrongPin",
]

# The public classes live in private modules; they are shown, documented and pickled
# as splitvault.<Name> (a traceback says splitvault.WrongPin, not
# splitvault._errors.WrongPin), which works because each one is an attribute here.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
