"""The protocol benchmark behind ``splitvault bench`` and ``make bench``.

Not part of the public API: it lives in the package only so the installed command can
run it. See :mod:`splitvault._bench.core` and benchmarks/README.md.
"""

from .core import count_operations, render, run

__all__ = ["count_operations", "render", "run"]
