"""``serve --dev-tls``: a self-signed certificate for development, pinned by devices.

EC P-256, SAN 127.0.0.1, ::1 and localhost, valid 30 days. It is kept beside the
database (``<db>.devtls.crt`` and ``<db>.devtls.key``, mode 0600) and reused while
it has more than a day left, so a device that pinned it keeps working across
restarts. The fingerprint is SHA-256 over the DER certificate, what
``Device.open(..., pin_sha256=...)`` expects.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .._errors import ConfigurationError

__all__ = ["dev_certificate", "fingerprint"]

VALIDITY = datetime.timedelta(days=30)
"""Short: a development certificate that leaks should soon be worthless."""
_RENEW_BEFORE = datetime.timedelta(days=1)


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def dev_certificate(db: Path) -> tuple[Path, Path, str]:
    """Paths of the certificate and key beside ``db`` (made if needed), and the pin."""
    cert_path = Path(f"{db}.devtls.crt")
    key_path = Path(f"{db}.devtls.key")
    now = datetime.datetime.now(datetime.UTC)
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if key_path.exists() and cert.not_valid_after_utc - now > _RENEW_BEFORE:
            return cert_path, key_path, fingerprint(cert)
    except (OSError, ValueError):
        pass  # missing or unreadable: make a new one
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "splitvault dev server")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            x509.DNSName("localhost"),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        _write(key_path, key_pem, 0o600)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as exc:
        raise ConfigurationError(f"cannot write the dev certificate: {exc.strerror}") from None
    return cert_path, key_path, fingerprint(cert)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = Path(f"{path}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
