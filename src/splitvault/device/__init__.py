"""The device: ``Device``, its store, and its transports to the share server."""

from ._device import Device
from ._history import PaymentRecord, last_known_state
from ._realms import RealmClient

__all__ = ["Device", "PaymentRecord", "RealmClient", "last_known_state"]
