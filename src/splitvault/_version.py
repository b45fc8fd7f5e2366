"""The version, in a module of its own so that any part can read it without loading
the package root (which imports the device and the server)."""

__version__ = "0.1.0"
