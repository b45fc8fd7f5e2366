"""``splitvault deployment init`` and ``show`` against real ``serve --role realm`` and
``serve --role gateway`` processes on 127.0.0.1, and which routes each role answers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import splitvault as sv
from splitvault.cli import main
from splitvault.device._http import HttpGateway, HttpRealm

sys.path.append(str(Path(__file__).resolve().parents[1] / "http"))
from http_support import ServerProcess  # tests/http is not a package: on the path above


@dataclass(frozen=True)
class Servers:
    realms: tuple[ServerProcess, ...]
    gateway: ServerProcess


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Three realms and one gateway, each its own process, SQLite database and key."""
    root = tmp_path_factory.mktemp("deployment")
    started: list[ServerProcess] = []
    try:
        for i in range(1, 4):
            started.append(ServerProcess(root / f"realm-{i}", "--role", "realm").start())
        started.append(ServerProcess(root / "gateway", "--role", "gateway").start())
        yield Servers(tuple(started[:3]), started[3])
    finally:
        for proc in started:
            proc.stop()


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _init_args(servers: Servers, out: Path, *extra: str) -> list[str | Path]:
    args: list[str | Path] = ["deployment", "init"]
    for realm in servers.realms:
        args += ["--realm", realm.url]
    return [*args, "--gateway", servers.gateway.url, "--out", out, *extra]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_init_writes_each_servers_own_key(servers: Servers, tmp_path: Path) -> None:
    """Through the real entry point: the file holds, for each realm and the gateway, the
    key that server reports, named realm-1..3 and gateway-1 in order, threshold 2 by
    default; it loads, and 'deployment show' prints it."""
    out = tmp_path / "deployment.json"
    done = subprocess.run([sys.executable, "-m", "splitvault",
                           *map(str, _init_args(servers, out))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "2 of 3 realms" in done.stdout
    deployment = sv.Deployment.load(out)
    assert deployment.threshold == 2
    for i, (endpoint, proc) in enumerate(zip(deployment.realms, servers.realms, strict=True)):
        realm = HttpRealm(proc.url)
        try:
            info = realm.realm_info()
        finally:
            realm.close_transport()
        assert endpoint == sv.Deployment.load(out).realms[i]
        assert (endpoint.name, endpoint.url, endpoint.key, endpoint.tls_pin) == (
            f"realm-{i + 1}", proc.url, info.realm_key, None)
        assert f"guess limit {info.guess_limit}" in done.stdout
    gateway = HttpGateway(servers.gateway.url)
    try:
        gateway_key = gateway.gateway_info().gateway_key
    finally:
        gateway.close_transport()
    assert [(g.name, g.url, g.key) for g in deployment.gateways] == [
        ("gateway-1", servers.gateway.url, gateway_key)]
    assert len({e.key for e in (*deployment.realms, *deployment.gateways)}) == 4
    shown = subprocess.run([sys.executable, "-m", "splitvault", "deployment", "show", str(out)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "2 of 3 realms, 1 gateway(s)" in shown.stdout
    assert gateway_key.hex() in shown.stdout and servers.realms[2].url in shown.stdout


def test_names_threshold_and_force(servers: Servers, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """NAME=URL names a server; --threshold 3 is kept; an existing file is kept unless
    --force, and --force replaces it (by a rename: no temporary file is left)."""
    out = tmp_path / "deployment.json"
    args = ["deployment", "init", "--realm", f"seoul={servers.realms[0].url}",
            "--realm", servers.realms[1].url, "--realm", f"busan={servers.realms[2].url}/",
            "--gateway", f"pay-gw={servers.gateway.url}", "--out", str(out)]
    code, _, err = _cli(capsys, *args, "--threshold", "3")
    assert code == 0, err
    deployment = sv.Deployment.load(out)
    assert [r.name for r in deployment.realms] == ["seoul", "realm-2", "busan"]
    assert deployment.realms[2].url == servers.realms[2].url  # the trailing / dropped
    assert [g.name for g in deployment.gateways] == ["pay-gw"]
    assert deployment.threshold == 3
    before = out.read_bytes()
    code, _, err = _cli(capsys, *args)
    assert code == 2 and "exists; pass --force" in err and len(err.splitlines()) == 1
    assert out.read_bytes() == before
    code, _, err = _cli(capsys, *args, "--force")
    assert code == 0, err
    assert sv.Deployment.load(out).threshold == 2
    assert [p.name for p in tmp_path.iterdir()] == ["deployment.json"]  # renamed over


def test_unreachable_server_exits_2_and_writes_nothing(
        servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A realm nobody listens for: one line naming it, exit 2, no file (the others
    answered)."""
    out = tmp_path / "deployment.json"
    dead = f"http://127.0.0.1:{_closed_port()}"
    args = _init_args(servers, out, "--timeout", "3")
    args[args.index(servers.realms[1].url)] = dead
    code, _, err = _cli(capsys, *args)
    assert code == 2
    assert err.startswith("splitvault: error: ") and len(err.splitlines()) == 1
    assert f"--realm {dead}" in err and "cannot connect" in err
    assert not out.exists()


def test_a_gateway_given_as_a_realm_is_named(servers: Servers, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The gateway's URL as a --realm: its /v1/realm/info is a 404, and the message says
    what the server is; and a realm given as the --gateway likewise."""
    out = tmp_path / "deployment.json"
    code, _, err = _cli(capsys, "deployment", "init", "--realm", servers.realms[0].url,
                        "--realm", servers.gateway.url, "--gateway", servers.realms[1].url,
                        "--threshold", "2", "--out", out)
    assert code == 2 and len(err.splitlines()) == 1
    assert f"--realm {servers.gateway.url} is not a realm" in err
    assert "is it a gateway" in err
    assert not out.exists()
    code, _, err = _cli(capsys, "deployment", "init", "--realm", servers.realms[0].url,
                        "--realm", servers.realms[1].url, "--gateway", servers.realms[2].url,
                        "--out", out)
    assert code == 2 and f"--gateway {servers.realms[2].url} is not a gateway" in err
    assert "is it a realm" in err
    assert not out.exists()


@pytest.mark.parametrize(("change", "needle"), [
    (["--threshold", "4"], "--threshold must be between 1 and 3"),
    (["--threshold", "0"], "--threshold must be between 1 and 3"),
    (["--threshold", "1"], "threshold 1 with several realms"),
    (["--realm", "{r0}"], "two servers share the url"),
    (["--gateway", "{r0}"], "two servers share the url"),
    (["--realm", "realm-1=http://127.0.0.1:1"], "two servers share the name realm-1"),
    (["--realm", "http://example.com:8700"], "plain http:// is allowed only to a loopback"),
    (["--realm", "{r0}/v1"], "url must be http(s)://host:port"),
    (["--realm", "https://r.example:8443#zz"], "tls_pin must be null or 64"),
    (["--realm", "http://127.0.0.1:1#" + "ab" * 32], "a tls_pin needs an https:// url"),
    (["--realm", "bad name={r0}"], "expected [NAME=]URL[#PIN]"),
], ids=lambda v: "_".join(v) if isinstance(v, list) else None)
def test_mistakes_are_one_line_before_any_server_is_asked(
        servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        change: list[str], needle: str) -> None:
    """Each mistake is one line on stderr and exit 2, and no file; the ones that need
    no network are found without it (the realms here are all up, so a network error
    would show as another message)."""
    out = tmp_path / "deployment.json"
    r0 = servers.realms[0].url
    code, stdout, err = _cli(capsys, *_init_args(servers, out),
                             *[c.replace("{r0}", r0) for c in change])
    assert code == 2, stdout
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_a_server_given_twice_under_two_urls(servers: Servers, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """127.0.0.1 and localhost are two URLs of one realm: its key, reported twice, is
    refused."""
    out = tmp_path / "deployment.json"
    twin = servers.realms[0].url.replace("127.0.0.1", "localhost")
    code, _, err = _cli(capsys, "deployment", "init", "--realm", servers.realms[0].url,
                        "--realm", twin, "--gateway", servers.gateway.url,
                        "--threshold", "2", "--out", out)
    assert code == 2 and "share the key" in err and "given twice" in err
    assert not out.exists()


def test_a_pinned_tls_realm(servers: Servers, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """A self-signed realm ('serve --dev-tls') given as URL#PIN: asked over the pinned
    connection, its pin kept in the file; a wrong pin, or none, is one line and no
    file."""
    tls = ServerProcess(tmp_path / "tls-realm", "--role", "realm", "--dev-tls").start()
    try:
        assert tls.fingerprint is not None and tls.url.startswith("https://")
        out = tmp_path / "deployment.json"
        base = ["deployment", "init", "--realm", servers.realms[0].url,
                "--gateway", servers.gateway.url, "--out", str(out)]
        code, _, err = _cli(capsys, *base, "--realm", f"{tls.url}#{'ab' * 32}")
        assert code == 2 and "does not match the pinned fingerprint" in err
        assert f"--realm {tls.url}#PIN" in err and not out.exists()
        code, _, err = _cli(capsys, *base, "--realm", tls.url)
        assert code == 2 and "self-signed" in err and not out.exists()
        code, _, err = _cli(capsys, *base, "--realm", f"{tls.url}#{tls.fingerprint.upper()}")
        assert code == 0, err
        realm = HttpRealm(tls.url, pin_sha256=tls.fingerprint)
        try:
            key = realm.realm_info().realm_key
        finally:
            realm.close_transport()
        pinned = sv.Deployment.load(out).realms[1]
        assert (pinned.url, pinned.key, pinned.tls_pin) == (tls.url, key, tls.fingerprint)
    finally:
        tls.stop()


def test_init_needs_realms_and_a_gateway(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deployment.json"
    for args in (["--gateway", "http://127.0.0.1:1"], ["--realm", "http://127.0.0.1:1"]):
        code, _, err = _cli(capsys, "deployment", "init", *args, "--out", out)
        assert code == 2 and "needs the realms (--realm URL" in err and not out.exists()


def test_show_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """show checks the file as every server and device will load it: one line, exit 2."""
    bad = tmp_path / "deployment.json"
    bad.write_text(json.dumps({"format": "splitvault-deployment/1"}), encoding="utf-8")
    code, _, err = _cli(capsys, "deployment", "show", bad)
    assert code == 2 and "missing field(s)" in err and len(err.splitlines()) == 1
    code, _, err = _cli(capsys, "deployment", "show", tmp_path / "absent.json")
    assert code == 2 and "no deployment file at" in err


def test_each_role_answers_only_its_routes(servers: Servers) -> None:
    """A realm answers /v1/realm/info and 404s the single server's /v1/authorize and the
    gateway's routes; a gateway answers /v1/gateway/info and 404s the realm's routes."""
    realm, gateway = servers.realms[0].url, servers.gateway.url
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        assert client.get(f"{realm}/v1/realm/info").status_code == 200
        for path in ("/v1/authorize", "/v1/evaluate", "/v1/info", "/v1/gateway/info",
                     "/v1/gateway/authorize"):
            reply = client.request("GET" if path.endswith("info") else "POST",
                                   f"{realm}{path}", content=b"{}")
            assert reply.status_code == 404, path
            assert reply.json()["error"] == "not_found"
        assert client.get(f"{gateway}/v1/gateway/info").status_code == 200
        for path in ("/v1/realm/evaluate", "/v1/realm/register", "/v1/realm/release",
                     "/v1/realm/info", "/v1/authorize"):
            reply = client.request("GET" if path.endswith("info") else "POST",
                                   f"{gateway}{path}", content=b"{}")
            assert reply.status_code == 404, path
            assert reply.json()["error"] == "not_found"
