"""The device: ``Device``, its store, and its transports to the share server."""

from ._device import Device

__all__ = ["Device"]
