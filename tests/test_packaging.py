"""What users expect around the library: a light import, public names that read as
``splitvault.X``, missing extras named, ``--version``, every CLI option described."""

from __future__ import annotations

import argparse
import inspect
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import splitvault as sv
from splitvault import _extras, cli

# Never loaded by `import splitvault`: extras, and the command-line-only suites.
EXTRAS = ("textual", "starlette", "uvicorn", "httpx", "psycopg", "psycopg_pool", "pkcs11",
          "platformdirs")
HEAVY = (*EXTRAS, "anyio", "splitvault._attack", "splitvault._bench", "splitvault.tui",
         "splitvault.keypad", "splitvault.cli")


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_import_loads_no_extra_and_no_suite() -> None:
    """`import splitvault` (the library alone) loads none of the extras' packages, nor
    the attack suite, the benchmarks, the demo or the keypad."""
    done = _python("import json, sys, splitvault\n"
                   "print(json.dumps(sorted(sys.modules)))")
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    for name in HEAVY:
        assert not [m for m in loaded if m == name or m.startswith(f"{name}.")], name


def test_library_works_with_every_extra_missing() -> None:
    """With every extra's package made unimportable, the in-process library still
    enrolls and pays; a remote server says which extra to install."""
    code = f"""
import sys, tempfile, pathlib
for m in {EXTRAS!r}:
    sys.modules[m] = None
import splitvault as sv
root = pathlib.Path(tempfile.mkdtemp())
with sv.ShareServer.open(root / "s.db") as server, \\
        sv.Device.open(root / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY) as device, \\
        sv.Pin.from_digits("739184") as pin:
    card_id = device.enroll(sv.Card(pan="4111 1111 1111 1111", expiry="12/30",
                                    holder="KIM MINSU"), pin)
    auth = device.authorize(card_id, pin, amount=12000, currency="KRW", merchant="Shop",
                            idempotency_key="order-1")
    assert auth.approved
try:
    sv.Device.open(root / "r.db", server="https://127.0.0.1:1")
except sv.ConfigurationError as exc:
    print(exc)
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("a device talking to a remote share server needs the "
                                   "'client' extra: pip install 'splitvault[client]'")


def test_every_public_name_is_documented_and_reads_as_splitvault() -> None:
    """Every name in __all__ has its own docstring; classes and exceptions show as
    splitvault.<Name> (tracebacks, reprs) and are reachable there (pickle)."""
    for name in sv.__all__:
        obj = getattr(sv, name)
        assert inspect.getdoc(obj), name
        if isinstance(obj, type):
            assert obj.__module__ == "splitvault", name
            assert obj.__doc__, f"{name} inherits its docstring"


@pytest.mark.parametrize("error", [sv.WrongPin(3), sv.Declined("expired card"),
                                   sv.CardLocked(), sv.InvalidPayment("amount is too large"),
                                   sv.RateLimited("slow down"), sv.ConfigurationError("x")])
def test_exceptions_pickle_as_splitvault_names(error: sv.VaultError) -> None:
    """Exceptions round-trip through pickle (process pools, task queues) with their
    fields, and are pickled by their public name."""
    data = pickle.dumps(error)
    assert b"splitvault" in data and b"_errors" not in data
    back = pickle.loads(data)
    assert type(back) is type(error) and back.args == error.args
    assert vars(back) == vars(error)


def test_traceback_names_splitvault_wrongpin() -> None:
    """A traceback's last line reads `splitvault.WrongPin: ...`."""
    done = _python("import splitvault as sv\nraise sv.WrongPin(2)")
    assert done.stderr.strip().splitlines()[-1] == (
        "splitvault.WrongPin: wrong PIN: 2 attempt(s) left before the card locks")


# -- missing extras -------------------------------------------------------------------


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing module is a ConfigurationError naming the extra and its pip command."""
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(sv.ConfigurationError) as err:
        _extras.require("httpx", "client", "a device talking to a remote share server")
    assert str(err.value) == ("a device talking to a remote share server needs the 'client' "
                              "extra: pip install 'splitvault[client]'")
    assert err.value.__cause__ is None and err.value.__context__ is None  # one clean line


def test_require_all_names_every_missing_extra_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several missing extras are named together, each once, so one pip install fixes it."""
    for module in ("starlette", "uvicorn", "httpx"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(sv.ConfigurationError, match=r"^splitvault attack needs the 'server' "
                       r"and 'client' extras: pip install 'splitvault\[server,client\]'$"):
        _extras.require_all("splitvault attack", ("starlette", "server"),
                            ("uvicorn", "server"), ("httpx", "client"))


def test_require_returns_the_module() -> None:
    """An installed module is imported and returned."""
    assert _extras.require("json", "none", "a test") is json


def test_a_broken_install_is_not_called_a_missing_extra(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A module that is there but fails on its own import keeps its real error, rather
    than sending the user to install what is already installed."""
    (tmp_path / "sv_broken_dep.py").write_text("import sv_not_there_at_all\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="sv_not_there_at_all"):
        _extras.require("sv_broken_dep", "server", "a test")


def test_device_url_without_client_extra(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Device.open(server=URL) without httpx says which extra, and creates no file."""
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "splitvault.device._http", raising=False)
    with pytest.raises(sv.ConfigurationError, match=r"pip install 'splitvault\[client\]'"):
        sv.Device.open(tmp_path / "d.db", server="https://127.0.0.1:8700")
    assert not (tmp_path / "d.db").exists()


@pytest.mark.parametrize(("argv", "hidden", "message"), [
    (["serve", "--db", "s.db", "--kek-file", "k.key"], ("uvicorn",),
     "splitvault serve needs the 'server' extra: pip install 'splitvault[server]'"),
    (["demo"], ("textual",),
     "splitvault demo needs the 'demo' extra: pip install 'splitvault[demo]'"),
    (["demo", "--server", "https://127.0.0.1:8700"], ("httpx",),
     "splitvault demo needs the 'demo' extra: pip install 'splitvault[demo]'"),
    (["bench", "--quick"], ("textual", "httpx"),
     "splitvault bench needs the 'demo' and 'client' extras: "
     "pip install 'splitvault[demo,client]'"),
    (["attack"], ("starlette",),
     "splitvault attack needs the 'server' extra: pip install 'splitvault[server]'"),
])
def test_cli_names_the_missing_extra(argv: list[str], hidden: tuple[str, ...], message: str,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A subcommand whose extra is missing exits 2 with one line saying what to install."""
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "splitvault.server._serve", raising=False)
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"splitvault: error: {message}\n"


def test_other_subcommands_work_without_the_server_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without starlette and uvicorn the parser still builds: keys generate runs."""
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    monkeypatch.setitem(sys.modules, "starlette", None)
    monkeypatch.delitem(sys.modules, "splitvault.server._serve", raising=False)
    assert cli.main(["keys", "generate", "--out", str(tmp_path / "k.key")]) == 0
    assert "key-encryption key" in capsys.readouterr().out
    assert (tmp_path / "k.key").exists()


# -- the command line -----------------------------------------------------------------


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "splitvault", "--version"],
    [str(Path(sys.executable).with_name("splitvault")), "--version"],
])
def test_version(command: list[str]) -> None:
    """`python -m splitvault --version` and `splitvault --version` print the version."""
    if not Path(command[0]).exists():
        pytest.skip("the splitvault script is not installed beside this interpreter")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"splitvault {sv.__version__}\n"


def _subparsers(parser: argparse.ArgumentParser, prefix: str = ""
                ) -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found += _subparsers(sub, f"{prefix}{name} ")
    return found


def test_every_option_has_help() -> None:
    """`splitvault <command> --help` describes every option of every subcommand."""
    commands = _subparsers(cli.build_parser())
    assert {"audit", "keys generate", "keys rotate", "bench", "attack", "demo",
            "serve"} <= {name for name, _ in commands}
    for name, sub in commands:
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, \
                f"{name} {'/'.join(action.option_strings) or action.dest}"


@pytest.mark.parametrize(("argv", "env", "expected"), [
    (["audit"], {"DB": "a.db", "KEK_FILE": "a.key"}, {"db": "a.db", "kek_file": "a.key"}),
    (["keys", "rotate"], {"DB": "r.db", "KEK_FILE": "r.key"},
     {"db": "r.db", "kek_file": "r.key"}),
    (["keys", "generate"], {"KEK_FILE": "g.key"}, {"kek": "g.key"}),
    (["demo"], {"SERVER": "https://h:1", "PIN_SHA256": "ab", "DATA_DIR": "dd"},
     {"server": "https://h:1", "pin_sha256": "ab", "data_dir": "dd"}),
    (["attack"], {"SERVER": "https://h:1", "PIN_SHA256": "ab"},
     {"server": "https://h:1", "pin_sha256": "ab"}),
    (["serve"], {"DB": "s.db", "KEK_FILE": "s.key"}, {"db": "s.db", "kek_file": "s.key"}),
])
def test_options_read_the_same_environment_as_serve(
        argv: list[str], env: dict[str, str], expected: dict[str, object],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each subcommand's options default to the SPLITVAULT_* variables serve reads."""
    for key, value in env.items():
        monkeypatch.setenv(f"SPLITVAULT_{key}", value)
    args = cli.build_parser().parse_args(argv)
    # str() because some take a Path, others a str (a --db may be a postgresql:// URL)
    assert {key: str(getattr(args, key)) for key in expected} == expected


def test_a_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag given on the command line overrides its variable."""
    monkeypatch.setenv("SPLITVAULT_DB", "env.db")
    monkeypatch.setenv("SPLITVAULT_KEK_FILE", "env.key")
    args = cli.build_parser().parse_args(["audit", "--db", "flag.db"])
    assert str(args.db) == "flag.db" and str(args.kek_file) == "env.key"


def test_required_options_without_environment(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """With neither flag nor variable, audit refuses to guess a database."""
    monkeypatch.delenv("SPLITVAULT_DB", raising=False)
    monkeypatch.delenv("SPLITVAULT_KEK_FILE", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["audit"])
    assert exited.value.code == 2
    assert "--db" in capsys.readouterr().err
