"""``splitvault serve`` startup: the key comes only from a file, errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from splitvault.server import Kek


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPLITVAULT_")}
    return subprocess.run(
        [sys.executable, "-m", "splitvault.server._serve", "--db", str(tmp_path / "s.db"),
         "--port", "0", *args],
        capture_output=True, text=True, timeout=30, env={**clean, **(env or {})})


def _one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("splitvault serve: error:")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_no_key_file_flag(tmp_path: Path) -> None:
    _one_line_error(serve(tmp_path), "--kek-file")
    assert not (tmp_path / "s.db").exists()  # nothing created, no default key
    assert not (tmp_path / "s.db.kek").exists()


def test_missing_key_file(tmp_path: Path) -> None:
    _one_line_error(serve(tmp_path, "--kek-file", str(tmp_path / "nope.key")), "not found")


def test_malformed_key_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("hello\n")
    bad.chmod(0o600)
    _one_line_error(serve(tmp_path, "--kek-file", str(bad)), "malformed")


def test_key_file_readable_by_others(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    Kek.generate().write(key)
    key.chmod(0o644)
    _one_line_error(serve(tmp_path, "--kek-file", str(key)), "chmod 600")


def test_wrong_key_for_the_database(tmp_path: Path) -> None:
    from splitvault import ShareServer

    first, second = tmp_path / "a.key", tmp_path / "b.key"
    Kek.generate().write(first)
    Kek.generate().write(second)
    ShareServer.open(tmp_path / "s.db", kek_file=first).close()
    _one_line_error(serve(tmp_path, "--kek-file", str(second)), "key")


@pytest.mark.parametrize("args,needle", [
    (["--port", "70000"], "--port"),
    (["--rate-limit", "lots"], "numbers"),
    (["--tls-cert", "c.pem"], "go together"),
    (["--dev-tls", "--tls-cert", "c.pem", "--tls-key", "k.pem"], "--dev-tls"),
])
def test_bad_flags(tmp_path: Path, args: list[str], needle: str) -> None:
    key = tmp_path / "k.key"
    Kek.generate().write(key)
    _one_line_error(serve(tmp_path, "--kek-file", str(key), *args), needle)


def test_key_file_from_the_environment(tmp_path: Path) -> None:
    """SPLITVAULT_KEK_FILE is read; here with a missing file, to stop at once."""
    result = serve(tmp_path, env={"SPLITVAULT_KEK_FILE": str(tmp_path / "env.key")})
    _one_line_error(result, "env.key")


@pytest.mark.parametrize(("flags", "needle"), [
    (["--simulated-faults", "7"], "SEED:RATE"),
    (["--simulated-faults", "7:2", "--workers", "2"], "SEED:RATE"),
    (["--simulated-books", "/nonexistent/dir/books.jsonl", "--workers", "2"],
     "cannot open the simulated books"),
])
def test_simulated_acquirer_options_are_checked(tmp_path: Path, flags: list[str],
                                                needle: str) -> None:
    key = tmp_path / "k.key"
    Kek.generate().write(key)
    _one_line_error(serve(tmp_path, "--kek-file", str(key), *flags), needle)
