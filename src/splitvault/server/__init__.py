"""The share server: ``ShareServer``, its store and keyring, its acquirer plug point."""

from ._acquirer import (
    Acquirer,
    AcquirerCall,
    AcquirerStatus,
    LegacyAcquirer,
    SimulatedAcquirer,
)
from ._audit import AuditReport
from ._inspect import ServerInspector
from ._kek import Kek
from ._keyring import Keyring
from ._outbox import DeliveryReport, Receipt, ReceiptSink
from ._risk import RiskRules
from ._server import CardState, ShareServer, open_store

__all__ = ["Acquirer", "AcquirerCall", "AcquirerStatus", "AuditReport", "CardState",
           "DeliveryReport", "Kek", "Keyring", "LegacyAcquirer", "Receipt", "ReceiptSink",
           "RiskRules", "ServerInspector", "ShareServer", "SimulatedAcquirer", "open_store"]
