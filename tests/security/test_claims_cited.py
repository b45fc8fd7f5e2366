"""Every test threat_model.md cites exists: a renamed or deleted test breaks this, not the
claim it used to prove."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.security

ROOT = Path(__file__).resolve().parents[2]
THREAT_MODEL = ROOT / "threat_model.md"
# `tests/...py` or `tests/...py::test_name` (a parametrized test is cited by its name,
# or by one exact case: `tests/...py::test_name[case]`).
_CITED = re.compile(r"`(tests/[\w/]+\.py(?:::[\w\[\]\-.]+)?)`")


def cited() -> list[str]:
    return sorted(set(_CITED.findall(THREAT_MODEL.read_text(encoding="utf-8"))))


def collected(files: list[str]) -> tuple[set[str], str]:
    """Node ids pytest collects from ``files``, and its output (for the failure message).

    tests/http is collected on its own: its conftest is a module named ``conftest`` as
    well, and collecting it in the same run as tests/conftest.py makes the two clash.
    """
    ids: set[str] = set()
    output = ""
    groups = [[f for f in files if f.startswith("tests/http/")],
              [f for f in files if not f.startswith("tests/http/")]]
    for group in filter(None, groups):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             *group], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        ids |= {line.strip() for line in done.stdout.splitlines() if "::" in line}
        output += done.stdout[-3000:] + done.stderr[-2000:]
    return ids, output


def test_threat_model_cites_tests() -> None:
    """The STRIDE table cites tests (the regex is not silently matching nothing)."""
    assert len(cited()) >= 40


def test_every_cited_test_is_collected() -> None:
    """Each cited node id (or file) is collected by pytest, parametrized cases included."""
    claims = cited()
    files = sorted({c.split("::", 1)[0] for c in claims})
    missing_files = [f for f in files if not (ROOT / f).is_file()]
    assert not missing_files, f"cited files that do not exist: {missing_files}"
    ids, output = collected(files)
    missing = [c for c in claims
               if not any(i == c or i.startswith(f"{c}[") or i.startswith(f"{c}::")
                          for i in ids)]
    assert not missing, f"cited but not collected: {missing}\n{output}"


def test_every_stride_row_names_a_test_and_a_residual_risk() -> None:
    """Each STRIDE row has six cells and cites at least one test id."""
    rows = [line for line in THREAT_MODEL.read_text(encoding="utf-8").splitlines()
            if re.match(r"\| [A-Z]\d+a? \|", line)]
    assert len(rows) >= 25
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 6, row[:60]
        assert _CITED.search(cells[4]), f"row {cells[0]} cites no test"
        assert cells[5], f"row {cells[0]} states no residual risk"
