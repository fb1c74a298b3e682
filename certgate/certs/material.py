"""Certificate material from the bytes an operator uploads: PKCS#12, or a DER/PEM certificate.

`load_certificate` tells apart the problems an operator can fix (wrong password, not a PKCS#12,
no certificate inside, key not matching) and never puts the password in a message.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from certgate.certs.names import dotnet_name

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)

# OIDs of PKCS#7 `data` and `signedData`, the two ContentInfo types a PFX's authSafe may have.
_PKCS7_DATA = bytes.fromhex("06092a864886f70d010701")
_PKCS7_SIGNED = bytes.fromhex("06092a864886f70d010702")
_PEM_KEY = re.compile(
    rb"-----BEGIN ((?:[A-Z]+ )*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL
)


class CertificateLoadError(ValueError):
    """Why uploaded bytes are not usable. `code` is a stable word, `reason` a sentence for people.

    Codes: NotACertificate, PasswordRequired, WrongPassword, NoPrivateKey, EmptyChain, KeyMismatch,
    UnsupportedKey.
    """

    def __init__(self, reason: str, code: str = "NotACertificate") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, eq=False)
class CertificateMaterial:
    """A certificate, its private key if any, and the certificates above it (issuer first).

    `format` says what it was loaded from: `pkcs12`, `pem` or `der`.
    """

    certificate: x509.Certificate
    private_key: PrivateKey | None
    chain: tuple[x509.Certificate, ...] = ()
    format: str = field(default="pem", compare=False)

    @cached_property
    def thumbprint(self) -> str:
        """Upper-case hex SHA-1 of the DER, as APIM and .NET print it."""
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()

    @cached_property
    def subject(self) -> str:
        return dotnet_name(self.certificate.subject)

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def private_key_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; keep it in memory or sealed, never on disk in clear."""
        if self.private_key is None:
            raise CertificateLoadError("the certificate has no private key", "NoPrivateKey")
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def to_pem(self, *, include_key: bool = True) -> bytes:
        """Certificate, chain, then the key (if any): `load_certificate` reads it back."""
        key = self.private_key_pem() if include_key and self.private_key else b""
        return self.certificate_pem() + self.chain_pem() + key


def load_certificate(data: bytes, password: str | None = None) -> CertificateMaterial:
    """Reads PKCS#12 (password optional), or a PEM (key optional) or DER certificate."""
    if not data:
        raise CertificateLoadError("the certificate data is empty")
    if data.lstrip().startswith(b"-----BEGIN"):
        return _load_pem(data, password)
    if _looks_like_pfx(data):
        return _load_pkcs12(data, password)
    try:
        return CertificateMaterial(x509.load_der_x509_certificate(data), None, (), "der")
    except ValueError:
        raise CertificateLoadError(
            "the data is not a PKCS#12 (.pfx) file nor a DER or PEM certificate"
        ) from None


def _load_pkcs12(data: bytes, password: str | None) -> CertificateMaterial:
    secret = password.encode() if password else None
    try:
        loaded = pkcs12.load_pkcs12(data, secret)
    except ValueError:
        if secret is None:
            raise CertificateLoadError(
                "the PKCS#12 file is password-protected: a password is required",
                "PasswordRequired",
            ) from None
        raise CertificateLoadError(
            "the password is wrong for this PKCS#12 file (or the file is damaged)",
            "WrongPassword",
        ) from None
    key = None if loaded.key is None else _certificate_key(loaded.key)
    certificates = [c.certificate for c in loaded.additional_certs]
    leaf = loaded.cert.certificate if loaded.cert else None
    if leaf is None and key is not None:
        leaf = next((c for c in certificates if _matches(key, c)), None)
    if leaf is None and not certificates:
        raise CertificateLoadError("the PKCS#12 file contains no certificate", "EmptyChain")
    if key is None:
        raise CertificateLoadError("the PKCS#12 file contains no private key", "NoPrivateKey")
    if leaf is None or not _matches(key, leaf):
        raise CertificateLoadError(
            "the private key in the PKCS#12 file does not match its certificate", "KeyMismatch"
        )
    chain = tuple(c for c in certificates if c != leaf)
    return CertificateMaterial(leaf, key, chain, "pkcs12")


def _load_pem(data: bytes, password: str | None) -> CertificateMaterial:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateLoadError("the PEM data contains no readable certificate") from None
    key = None
    if b"PRIVATE KEY-----" in data:
        key = _pem_key(data, password)
    leaf = certificates[0]
    if key is not None:
        matching = next((c for c in certificates if _matches(key, c)), None)
        if matching is None:
            raise CertificateLoadError(
                "the private key in the PEM data matches none of its certificates", "KeyMismatch"
            )
        leaf = matching
    chain = tuple(c for c in certificates if c != leaf)
    return CertificateMaterial(leaf, key, chain, "pem")


def _pem_key(data: bytes, password: str | None) -> PrivateKey:
    block = _PEM_KEY.search(data)
    if block is None:
        raise CertificateLoadError("the PEM private key block is incomplete")
    secret = password.encode() if password else None
    try:
        key = serialization.load_pem_private_key(block.group(0), secret)
    except TypeError:
        if secret is None:
            raise CertificateLoadError(
                "the PEM private key is encrypted: a password is required", "PasswordRequired"
            ) from None
        raise CertificateLoadError(
            "the PEM private key is not encrypted but a password was given", "WrongPassword"
        ) from None
    except ValueError:
        code = "WrongPassword" if secret else "NotACertificate"
        raise CertificateLoadError(
            "the PEM private key cannot be read (wrong password or damaged key)", code
        ) from None
    return _certificate_key(key)


def _certificate_key(key: PrivateKeyTypes) -> PrivateKey:
    """A key TLS can present a certificate with; another kind (X25519, DH, ML-KEM...) is refused
    on loading, not when a connection first uses it."""
    if not isinstance(key, PrivateKey):
        raise CertificateLoadError(
            "the private key is of a kind TLS certificates do not use (RSA, EC, Ed25519, Ed448 or "
            "DSA are)",
            "UnsupportedKey",
        )
    return key


def _matches(key: PrivateKey, certificate: x509.Certificate) -> bool:
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    return key.public_key().public_bytes(encoding, public) == certificate.public_key().public_bytes(
        encoding, public
    )


def _looks_like_pfx(data: bytes) -> bool:
    """PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, macData OPTIONAL }."""
    if len(data) < 4 or data[0] != 0x30:
        return False
    position = _after_length(data, 1)
    if position is None:
        return False
    if (
        data[position : position + 3] != b"\x02\x01\x03"
        or data[position + 3 : position + 4] != b"\x30"
    ):
        return False
    content_info = _after_length(data, position + 4)
    if content_info is None:
        return False
    oid = data[content_info : content_info + len(_PKCS7_DATA)]
    return oid in (_PKCS7_DATA, _PKCS7_SIGNED)


def _after_length(data: bytes, position: int) -> int | None:
    """Offset of the content after the DER length at `position` (indefinite lengths allowed)."""
    if position >= len(data):
        return None
    first = data[position]
    if first < 0x80 or first == 0x80:
        return position + 1
    count = first & 0x7F
    return position + 1 + count if count <= 4 else None
