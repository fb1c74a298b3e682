"""What `certgate serve` keeps in its data directory, and the first-run development PKI.

The layout is shared by `serve` (which creates it) and the CLI (which reads the token and the dev CA
from it), so both agree on file names without configuration.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class DataDirLayout:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "certgate.sqlite"

    @property
    def data_key(self) -> Path:
        return self.root / "data.key"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    @property
    def dev_ca(self) -> Path:
        return self.root / "dev-ca.pem"

    @property
    def dev_ca_key(self) -> Path:
        return self.root / "dev-ca.key"

    @property
    def dev_server(self) -> Path:
        """The dev server certificate and its key, one PEM file (certificate, CA, key)."""
        return self.root / "dev-server.pem"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"


def write_private(path: Path, data: bytes) -> None:
    """Creates `path` readable by its owner only, before any byte of the secret is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def ensure_admin_token(layout: DataDirLayout) -> str:
    """`CERTGATE_ADMIN_TOKEN` wins; otherwise the token file, created on first start."""
    if token := os.environ.get("CERTGATE_ADMIN_TOKEN"):
        return token
    if not layout.admin_token.exists():
        write_private(layout.admin_token, secrets.token_urlsafe(32).encode() + b"\n")
    return layout.admin_token.read_text().strip()


def ensure_dev_pki(layout: DataDirLayout) -> None:
    """A development CA and a localhost/127.0.0.1 server certificate it signed, made once."""
    if layout.dev_ca.exists() and layout.dev_server.exists():
        return
    ca_pem, ca_key_pem, server_pem = issue_dev_pki()
    write_private(layout.dev_ca_key, ca_key_pem)
    write_private(layout.dev_server, server_pem)
    layout.dev_ca.write_bytes(ca_pem)


def issue_dev_pki() -> tuple[bytes, bytes, bytes]:
    """A new development CA and server certificate, in memory: (CA PEM, CA key PEM, server PEM
    with the certificate, the CA and the key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certgate development CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key, now, days=3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    server_cert = (
        _builder(server_name, ca_name, server_key, now, days=825)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    server_pem = server_cert.public_bytes(pem) + ca_cert.public_bytes(pem) + _key_pem(server_key)
    return ca_cert.public_bytes(pem), _key_pem(ca_key), server_pem


def _builder(subject, issuer, key, now: dt.datetime, days: int) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
