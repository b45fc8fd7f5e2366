"""Optional dependencies: import one, or say exactly which extra installs it.

``pip install splitvault`` is the library alone. The HTTP client, the share server,
the demo and the rest come with extras (``splitvault[client]``, ``[server]``,
``[demo]``, ...); code that needs one imports it through :func:`require`, so a missing
extra is one line naming the ``pip install`` that fixes it, not a ``ModuleNotFoundError``
from deep inside a call.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._errors import ConfigurationError

__all__ = ["missing_extras", "require", "require_all"]


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise ``ConfigurationError`` saying that ``what`` needs
    ``extra`` and how to install it."""
    return require_all(what, (module, extra))[0]


def require_all(what: str, *needs: tuple[str, str]) -> list[ModuleType]:
    """Import every ``(module, extra)`` of ``needs``; if any is missing, one
    ``ConfigurationError`` names all the extras ``what`` still needs."""
    modules: list[ModuleType] = []
    absent: list[str] = []
    for module, extra in needs:
        found = _import(module)
        if found is None:
            if extra not in absent:
                absent.append(extra)
        else:
            modules.append(found)
    if absent:
        raise ConfigurationError(_message(what, absent))
    return modules


def missing_extras(*needs: tuple[str, str]) -> list[str]:
    """The extras among ``needs`` whose module cannot be imported, in order, once each."""
    absent: list[str] = []
    for module, extra in needs:
        if _import(module) is None and extra not in absent:
            absent.append(extra)
    return absent


def _import(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only the module itself (or its package) being absent means a missing extra;
        # an installed module that fails on one of *its* imports is a broken install,
        # and hiding that behind "install the extra" would send the user in circles.
        if exc.name is not None and (module == exc.name or module.startswith(f"{exc.name}.")):
            return None
        raise


def _message(what: str, extras: list[str]) -> str:
    if len(extras) == 1:
        named = f"the '{extras[0]}' extra"
    else:
        named = "the " + " and ".join(f"'{e}'" for e in extras) + " extras"
    return f"{what} needs {named}: pip install 'splitvault[{','.join(extras)}]'"
