"""HTTPS with certificate pinning, and the client's refusal of unsafe URLs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trustme
from http_support import ServerProcess

import splitvault as sv
from splitvault.hazmat import HttpShareService


def _paths(server: ServerProcess) -> list[str]:
    """API requests the server logged. Health checks are left out: start() polls
    /healthz, and the log line of its last poll may land after the test began."""
    return [str(line.get("path")) for line in server.log_lines()
            if line.get("msg") == "request" and str(line.get("path")).startswith("/v1/")]


@pytest.fixture
def tls_server(own_server: ServerProcess) -> ServerProcess:
    own_server.args += ["--dev-tls"]
    return own_server.start()


def test_dev_tls_prints_the_pin_of_the_certificate_it_serves(tls_server: ServerProcess) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    assert tls_server.fingerprint is not None and len(tls_server.fingerprint) == 64
    pem = Path(f"{tls_server.db}.devtls.crt").read_bytes()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == tls_server.fingerprint
    assert Path(f"{tls_server.db}.devtls.key").stat().st_mode & 0o077 == 0


def test_right_pin_works(tls_server: ServerProcess, tmp_path: Path) -> None:
    assert tls_server.fingerprint
    with sv.Device.open(tmp_path / "d.db", server=tls_server.url, kdf=sv.KdfProfile.TEST_ONLY,
                        pin_sha256=tls_server.fingerprint.upper()) as device, \
            sv.Pin.from_digits("739184") as pin:
        card_id = device.enroll(sv.Card(pan="4111111111111111", expiry="12/30",
                                        holder="KIM MINSU"), pin)
        result = device.authorize(card_id, pin, amount=500, currency="USD", merchant="Shop",
                                  idempotency_key="tls-1")
    assert result.approved


@pytest.mark.slow
def test_pin_survives_a_restart(tls_server: ServerProcess) -> None:
    """The dev certificate is reused, so a device that pinned it keeps working."""
    before = tls_server.fingerprint
    tls_server.restart()
    assert tls_server.fingerprint == before


def test_wrong_pin_fails_closed_before_any_request(tls_server: ServerProcess) -> None:
    before = _paths(tls_server)
    service = HttpShareService(tls_server.url, pin_sha256="00" * 32)
    try:
        with pytest.raises(sv.ServerUnavailable, match="pinned fingerprint"):
            service.info()
    finally:
        service.close_transport()
    assert _paths(tls_server) == before  # not even one request reached the app


def test_no_pin_means_ca_verification(tls_server: ServerProcess) -> None:
    """A self-signed certificate fails normal verification: no silent downgrade. The
    message says that no pin was given and where to get one."""
    service = HttpShareService(tls_server.url)
    try:
        with pytest.raises(sv.ServerUnavailable, match="verification") as caught:
            service.info()
    finally:
        service.close_transport()
    message = str(caught.value)
    assert "self-signed certificate" in message and "no pin was given" in message
    assert "--pin-sha256" in message and "--dev-tls" in message


def test_a_wrong_pin_says_a_pin_was_given_and_where_to_find_the_right_one(
        tls_server: ServerProcess) -> None:
    service = HttpShareService(tls_server.url, pin_sha256="00" * 32)
    try:
        with pytest.raises(sv.ServerUnavailable) as caught:
            service.info()
    finally:
        service.close_transport()
    assert "pinned fingerprint" in str(caught.value)
    assert "--dev-tls" in str(caught.value)


def test_plain_http_to_a_tls_port_says_so(tls_server: ServerProcess) -> None:
    url = tls_server.url.replace("https://", "http://")
    service = HttpShareService(url)
    try:
        with pytest.raises(sv.ServerUnavailable, match="speaks TLS: use https://"):
            service.info()
    finally:
        service.close_transport()


def test_https_to_a_plain_port_says_so(own_server: ServerProcess) -> None:
    own_server.start()
    service = HttpShareService(own_server.url.replace("http://", "https://"))
    try:
        with pytest.raises(sv.ServerUnavailable, match="does not speak TLS"):
            service.info()
    finally:
        service.close_transport()


def test_tls_cert_and_key_flags(own_server: ServerProcess, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    own_server.args += ["--tls-cert", str(cert_file), "--tls-key", str(key_file)]
    own_server.start()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(cert_file.read_bytes()).public_bytes(Encoding.DER)
    service = HttpShareService(own_server.url, pin_sha256=hashlib.sha256(der).hexdigest())
    try:
        assert service.info().guess_limit == 5
    finally:
        service.close_transport()


@pytest.mark.parametrize("url", [
    "http://192.0.2.10:8700", "http://example.com", "http://10.0.0.1",
])
def test_plain_http_to_a_non_loopback_host_is_refused(url: str) -> None:
    with pytest.raises(sv.ConfigurationError, match="loopback"):
        HttpShareService(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1"])
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    HttpShareService(url).close_transport()


@pytest.mark.parametrize("url,kwargs", [
    ("ftp://127.0.0.1", {}),
    ("https://user:pw@example.com", {}),
    ("https://example.com/?q=1", {}),
    ("https://example.com:99999", {}),
    ("http://127.0.0.1:8700", {"pin_sha256": "ab" * 32}),  # a pin needs TLS
    ("https://example.com", {"pin_sha256": "not hex"}),
    ("https://example.com", {"timeout": 0}),
])
def test_bad_configuration_is_refused(url: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(sv.ConfigurationError):
        HttpShareService(url, **kwargs)  # type: ignore[arg-type]
