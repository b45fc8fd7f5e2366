"""The benchmarks behind ``splitvault bench`` and ``make bench``.

Not part of the public API: they live in the package only so the installed command can
run them. Every figure is reported next to a floor or a reference measured in the same
run, because absolute numbers on a shared 2-core machine mean little. See
benchmarks/README.md.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from .core import count_operations, render, run

__all__ = ["count_operations", "render", "render_all", "run", "run_all"]

#: name -> (module, seconds for a full run, seconds for --quick); in the order they run.
_PARTS = {"keypad": ("splitvault._bench.keypad", None, None),
          "http": ("splitvault._bench.http", 5.0, 1.0),
          "realms": ("splitvault._bench.realms", 5.0, 1.0),
          "postgres": ("splitvault._bench.postgres", 5.0, 1.0),
          "scale": ("splitvault._bench.scale", None, None)}


def run_all(*, quick: bool = False, http: bool = True, keypad: bool = True,
            postgres: bool = True, scale: bool = True, realms: bool = True,
            scale_10m: bool = False) -> dict[str, Any]:
    """Every benchmark in one run; the parts that compare against in-process figures get
    the in-process result measured here. A part left out, or one that cannot run here
    (no PostgreSQL), is ``{"skipped": reason}``."""
    # Other work on the machine moves every figure: say how busy it was.
    load_before = _load_average()
    result: dict[str, Any] = {"core": run(seconds=0.5 if quick else 3.0,
                                          interactive_runs=2 if quick else 5)}
    left_out = {"keypad": None if keypad else "--no-keypad",
                "http": None if http else "--no-http",
                "realms": None if realms and http else
                ("--no-realms" if http else "--no-http"),
                "postgres": None if postgres and http else
                ("--no-postgres" if http else "--no-http"),
                "scale": None if scale else "--no-scale"}
    for name, (module_name, full, short) in _PARTS.items():
        if left_out[name] is not None:
            result[name] = {"skipped": f"left out ({left_out[name]})"}
            continue
        module = importlib.import_module(module_name)
        kwargs: dict[str, Any] = {"quick": quick}
        if name == "http":
            kwargs["inprocess_auth_per_s"] = result["core"]["inprocess_auth_per_s"]
        if full is not None:
            kwargs["duration"] = short if quick else full
        if name == "scale" and scale_10m and not quick:
            kwargs["sizes"] = module.SIZES_10M
        result[name] = module.run(**kwargs)
    result["load_average"] = {"before": load_before, "after": _load_average()}
    return result


def _load_average() -> float | None:
    """The 1-minute load average (runnable processes, all users), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def render_all(result: dict[str, Any]) -> str:
    parts = [render(result["core"])]
    load = result.get("load_average")
    if load is not None:
        parts[0] += (f"\n  machine load (1-minute average, all users) before / after the run: "
                     f"{load['before']} / {load['after']}")
    for name, (module_name, _, _) in _PARTS.items():
        if name not in result:
            continue
        if "skipped" in result[name]:
            parts.append(f"{name}: skipped ({result[name]['skipped']})")
        else:
            parts.append(importlib.import_module(module_name).render(result[name]))
    return "\n\n".join(parts)
