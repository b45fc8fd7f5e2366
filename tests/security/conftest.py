"""The attack lab every security test runs in: a deployment in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from splitvault._attack._harness import Deployment, Lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Deployment(workdir=tmp_path).lab() as lab:
        yield lab
