"""The benchmarks behind ``splitvault bench`` and ``make bench``.

Not part of the public API: they live in the package only so the installed command can
run them. Every figure is reported next to a floor measured in the same run, because
absolute numbers on a shared 2-core machine mean little. See benchmarks/README.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from .core import count_operations, render, run

__all__ = ["count_operations", "render", "render_all", "run", "run_all"]

# name -> (module, seconds for a full run, seconds for --quick)
_PARTS = {"keypad": ("splitvault._bench.keypad", None, None),
          "http": ("splitvault._bench.http", 5.0, 1.0)}


def run_all(*, quick: bool = False, http: bool = True, keypad: bool = True) -> dict[str, Any]:
    """Every benchmark in one run; the parts that compare against in-process figures get
    the in-process result measured here."""
    result: dict[str, Any] = {"core": run(seconds=0.5 if quick else 3.0,
                                          interactive_runs=2 if quick else 5)}
    wanted = {"keypad": keypad, "http": http}
    for name, (module_name, full, short) in _PARTS.items():
        if not wanted[name]:
            continue
        module = importlib.import_module(module_name)
        kwargs: dict[str, Any] = {"quick": quick}
        if name == "http":
            kwargs["inprocess_auth_per_s"] = result["core"]["inprocess_auth_per_s"]
            kwargs["duration"] = short if quick else full
        result[name] = module.run(**kwargs)
    return result


def render_all(result: dict[str, Any]) -> str:
    parts = [render(result["core"])]
    for name, (module_name, _, _) in _PARTS.items():
        if name in result:
            parts.append(importlib.import_module(module_name).render(result[name]))
    return "\n\n".join(parts)
