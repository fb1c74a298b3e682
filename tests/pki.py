"""The one certificate factory for tests: real keys and certificates made with `cryptography`."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def new_key(kind: str = "ec") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def name(common_name: str, org: str | None = None, country: str | None = None) -> x509.Name:
    attrs = []
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


@dataclass
class Issued:
    """A certificate with its key and the chain above it (issuer first, the root left out)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def thumbprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA1()).hex().upper()

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def pfx(self, password: str | None = "secret", *, with_chain: bool = True) -> bytes:
        encryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        cas = self.chain if with_chain else None
        return pkcs12.serialize_key_and_certificates(b"cert", self.key, self.cert, cas, encryption)

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Writes `stem.pem` (certificate + chain) and `stem.key`; returns both paths."""
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem + self.chain_pem)
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path

    def issue(self, common_name: str, **options) -> Issued:
        return issue(common_name, issuer=self, **options)


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    path_length: int | None = None,
    dns: list[str] | None = None,
    ips: list[str] | None = None,
    uris: list[str] | None = None,
    emails: list[str] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    crl_url: str | list[str] | None = None,
    key_kind: str = "ec",
    subject: x509.Name | None = None,
    serial: int | None = None,
    key: PrivateKey | None = None,
    name_constraints: x509.NameConstraints | None = None,
    bare: bool = False,
) -> Issued:
    """Issues a certificate (self-signed without `issuer`); leaves get clientAuth+serverAuth.

    `key` reuses a key (cross-signing: the same subject and key under another issuer).
    `crl_url`: one CRL distribution point URL, or a list (one distribution point each). `bare`
    leaves out every extension, like `openssl x509 -req` (which also writes version 1).
    """
    key = key or new_key(key_kind)
    subject = subject or name(common_name)
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    plain = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
    )
    builder = plain.add_extension(
        x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), True
    ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    if ca:
        usage = dict.fromkeys(
            ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment"),
            False,
        )
        builder = builder.add_extension(
            x509.KeyUsage(
                **usage,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                eku or [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            False,
        )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    names += [x509.UniformResourceIdentifier(u) for u in uris or []]
    names += [x509.RFC822Name(e) for e in emails or []]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    if name_constraints is not None:
        builder = builder.add_extension(name_constraints, True)
    if crl_url:
        points = [
            x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
            for url in ([crl_url] if isinstance(crl_url, str) else crl_url)
        ]
        builder = builder.add_extension(x509.CRLDistributionPoints(points), False)
    if bare:
        builder = plain
    cert = builder.sign(signing_key, hashes.SHA256())
    above = [] if issuer is None or _is_root(issuer.cert) else [issuer.cert, *issuer.chain]
    return Issued(cert, key, above)


def _is_root(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def ca(common_name: str = "Test Root CA", **options) -> Issued:
    return issue(common_name, ca=True, **options)


def server(issuer: Issued, host: str = "localhost") -> Issued:
    """A server certificate for `host` plus 127.0.0.1."""
    return issuer.issue(host, dns=[host], ips=["127.0.0.1"])


def crl(
    issuer: Issued,
    revoked_serials: list[int] = (),
    *,
    next_update: dt.datetime | None = None,
    number: int = 1,
    signing_key: PrivateKey | None = None,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(next_update or NOW + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(number), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - dt.timedelta(minutes=30))
            .build()
        )
    return builder.sign(signing_key or issuer.key, hashes.SHA256())
