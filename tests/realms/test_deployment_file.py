"""The deployment file: strict loading, no silent overwrite, and DeploymentFile following
the file on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import splitvault as sv
from splitvault._deployment import FORMAT, DeploymentFile, Endpoint

PIN_HEX = "ab" * 32


def _endpoint(name: str, port: int, byte: int) -> dict[str, Any]:
    return {"name": name, "url": f"http://127.0.0.1:{port}", "key": f"{byte:02x}" * 32,
            "tls_pin": None}


def _data(realms: int = 3, threshold: int = 2) -> dict[str, Any]:
    return {"format": FORMAT, "threshold": threshold,
            "realms": [_endpoint(f"realm-{i}", 9000 + i, i) for i in range(1, realms + 1)],
            "gateways": [_endpoint("gateway-1", 9100, 0xEE)]}


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_valid_file_round_trips(tmp_path: Path) -> None:
    """load gives the realms, gateways and threshold as written; save then load gives
    the same deployment; a realm and a gateway are found by key."""
    data = _data()
    data["realms"][0].update(url="https://r1.example:8443", tls_pin=PIN_HEX)
    deployment = sv.Deployment.load(_write(tmp_path / "d.json", data))
    assert deployment.threshold == 2
    assert [r.name for r in deployment.realms] == ["realm-1", "realm-2", "realm-3"]
    assert deployment.realms[0] == Endpoint("realm-1", "https://r1.example:8443",
                                            bytes([1]) * 32, PIN_HEX)
    assert deployment.realm(bytes([2]) * 32) == deployment.realms[1]
    assert deployment.gateway(bytes([0xEE]) * 32) == deployment.gateways[0]
    assert deployment.realm(bytes([0xEE]) * 32) is None  # a gateway is not a realm
    deployment.save(tmp_path / "copy.json")
    assert sv.Deployment.load(tmp_path / "copy.json") == deployment


def _set(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """``data`` with ``realms.0.url`` (say) set to ``value``."""
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return data


BAD = [
    ("unknown top-level field", _set(_data(), "extra", 1), "unknown field(s) extra"),
    ("unknown endpoint field", _set(_data(), "realms.0.port", 1),
     "realms[0]: unknown field(s) port"),
    ("missing field", {k: v for k, v in _data().items() if k != "gateways"},
     "missing field(s) gateways"),
    ("wrong format", _set(_data(), "format", "splitvault-deployment/2"), "format must be"),
    ("threshold 0", _set(_data(), "threshold", 0), "threshold must be between 1 and 3"),
    ("threshold above n", _set(_data(), "threshold", 4), "threshold must be between 1 and 3"),
    ("threshold not an integer", _set(_data(), "threshold", True),
     "threshold must be an integer"),
    ("threshold 1 of several", _set(_data(), "threshold", 1),
     "threshold 1 with several realms"),
    ("no realms", _set(_data(), "realms", []), "1 to 16 realms, not 0"),
    ("no gateway", _set(_data(), "gateways", []), "at least one gateway"),
    ("duplicate url", _set(_data(), "realms.1.url", "http://127.0.0.1:9001"),
     "share the url http://127.0.0.1:9001"),
    ("duplicate key", _set(_data(), "gateways.0.key", "01" * 32), "share the key"),
    ("duplicate name", _set(_data(), "realms.2.name", "realm-1"), "share the name realm-1"),
    ("key not hex", _set(_data(), "realms.0.key", "zz" * 32), "key must be 64 lowercase hex"),
    ("key uppercase", _set(_data(), "realms.0.key", "AB" * 32), "key must be 64 lowercase"),
    ("key too short", _set(_data(), "realms.0.key", "ab" * 31), "key must be 64 lowercase"),
    ("pin not hex", _set(_set(_data(), "realms.0.url", "https://r1.example"),
                         "realms.0.tls_pin", "x" * 64), "tls_pin must be null or 64"),
    ("pin with http", _set(_data(), "realms.0.tls_pin", PIN_HEX), "tls_pin needs an https://"),
    ("url with a path", _set(_data(), "realms.0.url", "http://127.0.0.1:9001/v1"),
     "url must be http(s)://host:port"),
    ("name with a space", _set(_data(), "realms.0.name", "realm one"), "name must be 1 to 40"),
    ("realms not a list", _set(_data(), "realms", {}), "realms must be a list"),
    ("not an object", [], "must be a JSON object"),
]


@pytest.mark.parametrize(("data", "needle"), [(d, n) for _, d, n in BAD],
                         ids=[case for case, _, _ in BAD])
def test_a_bad_file_is_refused_naming_what(tmp_path: Path, data: object, needle: str) -> None:
    """Every malformed file is one ConfigurationError whose message names the file and
    what is wrong in it."""
    path = _write(tmp_path / "d.json", data)
    with pytest.raises(sv.ConfigurationError) as caught:
        sv.Deployment.load(path)
    assert needle in str(caught.value)
    assert str(path) in str(caught.value)


def test_duplicate_json_key_is_refused(tmp_path: Path) -> None:
    """A key given twice in one object (the second would silently win) is refused."""
    text = json.dumps(_data())[:-1] + ', "threshold": 3}'
    path = tmp_path / "d.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(sv.ConfigurationError, match="not valid JSON"):
        sv.Deployment.load(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(sv.ConfigurationError, match="no deployment file at"):
        sv.Deployment.load(tmp_path / "absent.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe")
    with pytest.raises(sv.ConfigurationError, match="cannot read deployment file"):
        sv.Deployment.load(tmp_path / "binary.json")


def test_a_deployment_built_in_code_is_checked_too() -> None:
    """The same rules hold for Deployment(...) as for a loaded file."""
    realm = Endpoint("realm-1", "http://127.0.0.1:9001", bytes([1]) * 32)
    gateway = Endpoint("gateway-1", "http://127.0.0.1:9100", bytes([2]) * 32)
    assert sv.Deployment((realm,), (gateway,), 1).threshold == 1  # one realm: 1 of 1
    with pytest.raises(sv.ConfigurationError, match="threshold must be between 1 and 1"):
        sv.Deployment((realm,), (gateway,), 2)
    with pytest.raises(sv.ConfigurationError, match="share the key"):
        sv.Deployment((realm,), (Endpoint("gateway-1", "http://127.0.0.1:9100",
                                           bytes([1]) * 32),), 1)


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    """save never replaces a file unless asked: the old one is left byte for byte."""
    path = _write(tmp_path / "d.json", _data())
    before = path.read_bytes()
    other = sv.Deployment.from_json(_data(realms=2))
    with pytest.raises(sv.ConfigurationError, match="exists; refusing to replace it"):
        other.save(path)
    assert path.read_bytes() == before
    other.save(path, overwrite=True)
    assert sv.Deployment.load(path) == other
    assert path.stat().st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_deployment_file_follows_the_file(tmp_path: Path) -> None:
    """DeploymentFile: None while no file exists, the deployment once it does, the new
    one after a change (even one of the same size: the mtime tells), None again once it
    is removed, and a ConfigurationError for a file that stops being valid."""
    path = tmp_path / "d.json"
    follow = DeploymentFile(path)
    assert follow() is None
    _write(path, _data(threshold=2))
    first = follow()
    assert first is not None and first.threshold == 2
    assert follow() is first  # unchanged on disk: not read again
    _write(path, _data(threshold=3))  # same size, only the digit differs
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # a coarse clock cannot hide it
    second = follow()
    assert second is not None and second.threshold == 3
    path.write_text("{", encoding="utf-8")
    with pytest.raises(sv.ConfigurationError, match="not valid JSON"):
        follow()
    path.unlink()
    assert follow() is None
