"""Rotation between a key file and an HSM key (PKCS#11), and ``serve --kek pkcs11:``.

Against a SoftHSM2 token made for this module (the fixture of ``test_pkcs11``);
skipped when SoftHSM2 or python-pkcs11 is missing, unless SPLITVAULT_REQUIRE_HSM=1.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import test_pkcs11
from test_pkcs11 import PIN, Hsm

import splitvault as sv
from splitvault import cli
from splitvault.hazmat import Pkcs11Kek
from splitvault.server import Kek
from support import pay

pytestmark = pytest.mark.xdist_group("pkcs11")
hsm = test_pkcs11.hsm  # the module-scoped SoftHSM2 token: a fresh one for this module


def _label() -> str:
    return f"rot-{secrets.token_hex(4)}"


def _pin_file_uri(hsm: Hsm, label: str, tmp_path: Path) -> str:
    """The URI an operator would use: the PIN in a 0600 file, not on the command line."""
    pin_file = tmp_path / "hsm-pin.txt"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    return hsm.uri(label).replace(f"pin-value={PIN}", f"pin-source=file:{pin_file}")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _device(tmp_path: Path, server: sv.ShareServer) -> sv.Device:
    return sv.Device.open(tmp_path / "d.db", server=server, kdf=sv.KdfProfile.TEST_ONLY)


def _states(db: Path, **keys: Any) -> dict[str, str]:
    with sv.ShareServer.open(db, create=False, announce=False, **keys) as server:
        return {k.kid.hex(): k.state for k in server.store.key_records()}


def test_rotate_file_key_to_hsm_key_while_serving(
        hsm: Hsm, tmp_path: Path, card: sv.Card, pin: sv.Pin,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A vault made under a file key moves to an HSM key while a server runs: rotate
    --to stops before promoting while a server lacks the key; once the server holds
    both, --to-existing promotes and re-wraps; payments succeed before and after the
    server reopens; the file key is retired (its file deleted) and the vault then runs
    on the HSM key alone."""
    kek = tmp_path / "kek.key"
    Kek.generate().write(kek)
    file_kid = Kek.load(kek).kid_hex
    db = tmp_path / "s.db"
    uri = _pin_file_uri(hsm, _label(), tmp_path)
    keys = ("--db", db, "--kek-file", kek, "--kek", uri)

    server = sv.ShareServer.open(db, kek_file=kek)
    device = _device(tmp_path, server)
    card_id = device.enroll(card, pin)
    first = pay(device, card_id, pin)
    assert first.approved

    # The running server was not given the HSM key: the key is made, left pending.
    code, _, err = _cli(capsys, "keys", "rotate", "--db", db, "--kek-file", kek,
                        "--to", uri, "--wait", "0.2")
    assert code == 2 and "--to-existing" in err and "start every server with --kek" in err
    assert PIN not in err
    hsm_kid = next(k for k, s in _states(db, kek_file=kek).items() if s == "pending")
    assert pay(device, card_id, pin, key="order-2").approved  # nothing else changed
    device.close()
    server.close()

    # Started again with both sources, the server reports the HSM key; rotation resumes.
    server = sv.ShareServer.open(db, kek_file=kek, kek=[uri])
    device = _device(tmp_path, server)
    assert pay(device, card_id, pin, key="order-3").approved
    code, out, err = _cli(capsys, "keys", "rotate", *keys, "--to-existing", uri, "--wait", "10")
    assert code == 0, err
    assert f"from key {file_kid} to key {hsm_kid}" in out and PIN not in out
    assert _states(db, kek_file=kek, kek=[uri]) == {file_kid: "active", hsm_kid: "primary"}

    server.refresh()  # what the next request does once REFRESH_SECONDS passed
    assert server.keyring.primary.kid_hex == hsm_kid
    assert server.store.count_by_kid() == {bytes.fromhex(hsm_kid): sum(
        server.store.count_by_kid().values())}
    assert pay(device, card_id, pin) == first  # the replay, unwrapped under the HSM key
    assert pay(device, card_id, pin, key="order-4").approved
    second = device.enroll(card, pin)  # wrapped under the HSM key
    device.close()
    server.close()

    with sv.ShareServer.open(db, kek_file=kek, kek=[uri]) as server, \
            _device(tmp_path, server) as device:
        assert pay(device, card_id, pin, key="order-5").approved
        assert pay(device, second, pin, key="order-6").approved

    code, _, err = _cli(capsys, "keys", "retire", *keys, "--kid", hsm_kid)
    assert code == 2 and "primary" in err  # the key in use: refused
    code, out, err = _cli(capsys, "keys", "retire", *keys, "--kid", file_kid)
    assert code == 0, err
    assert "deleted" in out and not kek.exists()  # its last key: the file goes

    with sv.ShareServer.open(db, kek=[uri]) as server:
        assert server.verify_audit().entries > 0
        with _device(tmp_path, server) as device:
            assert pay(device, card_id, pin) == first
            assert pay(device, card_id, pin, key="order-7").approved
            assert pay(device, second, pin, key="order-8").approved
    assert _states(db, kek=[uri]) == {file_kid: "retired", hsm_kid: "primary"}


def test_rotate_hsm_key_to_file_key_and_destroy_it(
        hsm: Hsm, tmp_path: Path, card: sv.Card, pin: sv.Pin,
        capsys: pytest.CaptureFixture[str]) -> None:
    """From an HSM key back to a file key: retiring the HSM key without --destroy
    leaves it in the token and says how to delete it; --destroy deletes it, and is
    refused while anything is wrapped under it."""
    label = _label()
    uri = hsm.uri(label)
    db, kek = tmp_path / "s.db", tmp_path / "new.key"
    assert cli.main(["keys", "generate", "--kek", uri]) == 0
    with sv.ShareServer.open(db, kek=[uri]) as server:
        hsm_kid = server.keyring.primary.kid_hex
        with _device(tmp_path, server) as device:
            card_id = device.enroll(card, pin)
            first = pay(device, card_id, pin)
    capsys.readouterr()
    keys = ("--db", db, "--kek", uri, "--kek-file", kek)

    code, _, err = _cli(capsys, "keys", "retire", "--db", db, "--kek", uri, "--kid", hsm_kid,
                        "--destroy")
    assert code == 2 and "primary" in err
    Pkcs11Kek.open(uri).wipe()  # refused before anything happened: still in the token
    code, _, err = _cli(capsys, "keys", "rotate", *keys)  # creates the key file
    assert code == 0, err
    file_kid = Kek.load(kek).kid_hex

    code, out, err = _cli(capsys, "keys", "retire", *keys, "--kid", file_kid, "--destroy")
    assert code == 2 and "--destroy is for a key in an HSM" in err
    code, out, err = _cli(capsys, "keys", "retire", *keys, "--kid", hsm_kid)
    assert code == 0, err
    assert "still in its token" in out and "pkcs11-tool" in out and f"--id {hsm_kid}" in out
    assert PIN not in out
    Pkcs11Kek.open(uri).wipe()
    code, out, err = _cli(capsys, "keys", "retire", *keys, "--kid", hsm_kid, "--destroy")
    assert code == 0, err
    assert "destroyed" in out
    with pytest.raises(sv.ConfigurationError, match="no secret key labelled"):
        Pkcs11Kek.open(uri)

    with sv.ShareServer.open(db, kek_file=kek) as server, _device(tmp_path, server) as device:
        assert pay(device, card_id, pin) == first
        assert pay(device, card_id, pin, key="order-2").approved


def test_rotate_to_a_taken_label_changes_nothing(
        hsm: Hsm, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--to refuses a label the token already holds; --to-existing refuses a key the
    database used already; neither changes the store."""
    kek, db = tmp_path / "kek.key", tmp_path / "s.db"
    Kek.generate().write(kek)
    sv.ShareServer.open(db, kek_file=kek).close()
    uri = hsm.uri(_label())
    Pkcs11Kek.generate(uri).wipe()
    before = _states(db, kek_file=kek)
    code, _, err = _cli(capsys, "keys", "rotate", "--db", db, "--kek-file", kek, "--to", uri)
    assert code == 2 and "already has an object labelled" in err
    assert _states(db, kek_file=kek) == before
    file_kid = Kek.load(kek).kid_hex
    code, _, err = _cli(capsys, "keys", "rotate", "--db", db, "--kek-file", kek,
                        "--to-existing", str(kek))
    assert code == 2 and "must be a pkcs11: URI" in err
    assert _states(db, kek_file=kek) == before == {file_kid: "primary"}


# -- splitvault serve --kek ---------------------------------------------------------------


def _server_process(root: Path, uri: str) -> Any:
    """http_support's ServerProcess, started with --kek <uri> instead of a key file."""
    http_dir = str(Path(__file__).resolve().parents[1] / "http")
    if http_dir not in sys.path:
        sys.path.append(http_dir)
    from http_support import ServerProcess

    class HsmServerProcess(ServerProcess):
        def command(self) -> list[str]:
            return [sys.executable, "-m", "splitvault.server._serve", "--db", str(self.db),
                    "--kek", uri, "--port", str(self.port), "--host", "127.0.0.1"]

    return HsmServerProcess(root)


def test_serve_with_an_hsm_key(hsm: Hsm, tmp_path: Path, card: sv.Card, pin: sv.Pin) -> None:
    """splitvault serve --kek pkcs11:... serves a payment over plain HTTP on loopback,
    and the audit log verifies with the same URI."""
    uri = _pin_file_uri(hsm, _label(), tmp_path)
    Pkcs11Kek.generate(uri).wipe()
    proc = _server_process(tmp_path / "srv", uri).start()
    try:
        with sv.Device.open(tmp_path / "d.db", server=proc.url,
                            kdf=sv.KdfProfile.TEST_ONLY) as device:
            card_id = device.enroll(card, pin)
            assert pay(device, card_id, pin).approved
    finally:
        assert proc.stop() == 0
    assert PIN not in proc.log.read_text()
    with sv.ShareServer.open(proc.db, kek=[uri], create=False) as server:
        assert server.verify_audit().entries > 0


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPLITVAULT_")}
    return subprocess.run(
        [sys.executable, "-m", "splitvault.server._serve", "--db", str(tmp_path / "s.db"),
         "--port", "0", *args], capture_output=True, text=True, timeout=60,
        env={**clean, **(env or {})})


@pytest.mark.parametrize("case", ["wrong pin", "missing key", "no scheme", "env"])
def test_serve_refuses_a_bad_key_spec_in_one_line(hsm: Hsm, tmp_path: Path, case: str) -> None:
    """A spec that fails to load stops serve with one line on stderr that never holds
    the PIN."""
    secret_pin = "8642097531"
    label = _label()
    Pkcs11Kek.generate(hsm.uri(label)).wipe()
    args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    if case == "wrong pin":
        args, needle = ("--kek", hsm.uri(label, pin=secret_pin)), "wrong PIN"
    elif case == "missing key":
        args = ("--kek", _pin_file_uri(hsm, "absent", tmp_path))
        needle = "no secret key labelled"
    elif case == "no scheme":  # a mistyped scheme must not be echoed as a file path
        args = ("--kek", hsm.uri(label, pin=secret_pin).replace("pkcs11:", "pkcs11;"))
        needle = "must start with 'pkcs11:'"
    else:  # several specs in SPLITVAULT_KEK, one of them bad
        key = tmp_path / "k.key"
        Kek.generate().write(key)
        env = {"SPLITVAULT_KEK": f"{key}\n  {hsm.uri(label, pin=secret_pin)}"}
        needle = "wrong PIN"
    done = _serve(tmp_path, *args, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("splitvault serve: error:"), done.stderr
    assert needle in lines[0] and secret_pin not in done.stderr
    assert "listening" not in done.stdout
