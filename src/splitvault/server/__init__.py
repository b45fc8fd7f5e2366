"""The share server: ``ShareServer``, its acquirer plug point, and its HTTP app."""

from ._acquirer import Acquirer, AcquirerCall, SimulatedAcquirer
from ._audit import AuditReport
from ._kek import Kek
from ._server import CardState, ShareServer

__all__ = ["Acquirer", "AcquirerCall", "AuditReport", "CardState", "Kek", "ShareServer",
           "SimulatedAcquirer"]
