"""Where the in-process authorization spends the time its floor does not.

Runs N in-process authorizations and N floor iterations (``splitvault._bench.core``)
under cProfile and prints, per authorization, the own time of each bucket (SQLite
statements, the crypto libraries, our crypto wrappers, the device, each server module,
JSON, ...) for both, largest gap first. cProfile inflates pure-Python call costs (a
few times over), so read the buckets as shares, not as times; ``make bench`` gives the
real totals. Usage: ``.venv/bin/python benchmarks/profile_inprocess.py [N]``.
"""

from __future__ import annotations

import collections
import cProfile
import pstats
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from splitvault import KdfProfile
from splitvault._bench import core

_LIBS = ("site-packages/nacl", "pysodium", "site-packages/argon2", "site-packages/cryptography",
         "_cffi_backend", "_sodium")


def _bucket(file: str, function: str) -> str:
    if function.startswith("<method 'execute' of 'sqlite3"):
        return "SQLite statements (COMMIT's fsync included)"
    for marker, name in (("splitvault/crypto/", "splitvault.crypto wrappers"),
                         ("splitvault/device/", "device"),
                         ("splitvault/_bench/", "the floor's own code")):
        if marker in file:
            return name
    if "splitvault/server/" in file:
        return "server " + file.rsplit("/", 1)[1]
    if "splitvault/" in file:
        return "splitvault " + file.rsplit("/", 1)[1]
    if any(lib in file or lib in function for lib in _LIBS):
        return "crypto libraries (their Python and cffi glue included)"
    if "/json/" in file:
        return "json"
    if "dataclasses" in file:
        return "dataclasses"
    return "builtins and stdlib (str, bytes, hashlib, secrets, ...)"


def _profile(step: Callable[[int, str], object], count: int) -> collections.Counter[str]:
    profile = cProfile.Profile()
    profile.enable()
    for n in range(count):
        step(n, f"profile-{n}")
    profile.disable()
    own: collections.Counter[str] = collections.Counter()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (file, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        own[_bucket(file, function)] += tottime * 1e3 / count
    return own


def main(count: int = 300) -> None:
    directory = Path(tempfile.mkdtemp(prefix="splitvault-profile-"))
    try:
        with (core._vault(directory / "inprocess", KdfProfile.TEST_ONLY, core.CARDS) as vault,
              core._floor(directory, core.CARDS) as floor):
            for n in range(core.CARDS):
                vault.authorize(n, f"warm-{n}")
                floor.authorize(n, f"warm-{n}")
            real, bare = _profile(vault.authorize, count), _profile(floor.authorize, count)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"ms per authorization under cProfile, {count} of each")
    print(f"  {'bucket':<58} {'in-process':>10} {'floor':>8} {'gap':>8}")
    for name in sorted(set(real) | set(bare), key=lambda k: bare[k] - real[k]):
        if max(real[name], bare[name]) >= 0.01:
            print(f"  {name:<58} {real[name]:10.2f} {bare[name]:8.2f} "
                  f"{real[name] - bare[name]:8.2f}")
    print(f"  {'total':<58} {sum(real.values()):10.2f} {sum(bare.values()):8.2f} "
          f"{sum(real.values()) - sum(bare.values()):8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
