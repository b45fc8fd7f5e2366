"""``splitvault risk check`` (the dry run) and ``serve --risk-rules`` at startup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import splitvault as sv
from splitvault.server import Kek
from support import pay


def _run(*args: str | Path, module: str = "splitvault") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPLITVAULT_")}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False, env=clean)


def test_risk_check_prints_what_the_rules_would_have_declined(
        tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    kek = tmp_path / "kek.key"
    Kek.generate().write(kek)
    db = tmp_path / "s.db"
    server = sv.ShareServer.open(db, kek_file=kek, risk=sv.RiskRules.DEFAULT)
    device = sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)
    card_id = device.enroll(card, pin)
    for i in range(3):
        assert pay(device, card_id, pin, key=f"k{i}", amount=40_000).approved
    device.close()
    server.close()
    rules = tmp_path / "strict.toml"
    rules.write_text('[amount]\nmax_per_day_per_card = { KRW = 100000 }\n')
    done = _run("risk", "check", "--db", db, "--kek-file", kek, "--risk-rules", rules)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and "40000 KRW  risk: over the daily amount limit" in lines[0]
    assert "would have declined 1 payment(s) of 1 card(s)" in lines[1]
    as_json = _run("risk", "check", "--db", db, "--kek-file", kek, "--risk-rules", rules,
                   "--json")
    assert json.loads(as_json.stdout)["reason"] == "risk: over the daily amount limit"
    # Nothing changed: the same payments pay on, under the rules they were made with.
    with sv.ShareServer.open(db, kek_file=kek) as reopened:
        assert reopened.payment_state(card_id, "k2") == "approved"
    rules.write_text("[amount]\nmax_per_day_per_card = { KRW = 'lots' }\n")
    bad = _run("risk", "check", "--db", db, "--kek-file", kek, "--risk-rules", rules)
    assert bad.returncode == 2 and "max_per_day_per_card KRW" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_serve_refuses_a_malformed_rules_file(tmp_path: Path) -> None:
    """One line naming the file and the problem, exit 2, no database created."""
    kek = tmp_path / "kek.key"
    Kek.generate().write(kek)
    rules = tmp_path / "rules.toml"
    rules.write_text('[velocity]\nper_card = [{ window = "one minute", max = 5 }]\n')
    done = _run("--db", tmp_path / "s.db", "--port", "0", "--kek-file", kek,
                "--risk-rules", rules, module="splitvault.server._serve")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("splitvault serve: error: risk rules")
    assert str(rules) in lines[0] and "per_card[0]: window must be like" in lines[0]
    assert not (tmp_path / "s.db").exists()
