"""One parsed certificate with the facts verification asks for, computed once.

OpenSSL judges the path (verify.py); the facts here serve revocation, the EKU rule and the
expression object. A certificate whose extensions `cryptography` cannot parse (duplicates,
malformed values) is kept with none of these facts: OpenSSL decides whether it is acceptable.
"""

from __future__ import annotations

import hashlib
import unicodedata
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto

from certgate.certs import der
from certgate.certs.names import dotnet_name

NameKey = tuple[frozenset[tuple[str, object]], ...]

_WEAK_HASHES = ("md5", "md2", "md4")


def _normalize(value: object) -> object:
    """RFC 5280 7.1 style comparison: case-folded, whitespace collapsed, NFKC."""
    if not isinstance(value, str):
        return value
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def name_key(name: x509.Name) -> NameKey:
    """A comparison key under which two encodings of the same DN are equal."""
    return tuple(
        frozenset((a.oid.dotted_string, _normalize(a.value)) for a in rdn) for rdn in name.rdns
    )


def verify_signature(
    public_key: object,
    signature: bytes,
    data: bytes,
    signed: x509.Certificate | x509.CertificateRevocationList,
) -> bool:
    """A certificate's or CRL's signature check (RSA PKCS#1/PSS, ECDSA, EdDSA, DSA)."""
    try:
        hash_alg = signed.signature_hash_algorithm
        if hash_alg is not None and hash_alg.name in _WEAK_HASHES:
            return False
        params = signed.signature_algorithm_parameters
        if isinstance(public_key, rsa.RSAPublicKey):
            if not isinstance(params, (padding.PKCS1v15, padding.PSS)) or hash_alg is None:
                return False
            public_key.verify(signature, data, params, hash_alg)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            public_key.verify(signature, data, params)
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            if hash_alg is not None:
                return False
            public_key.verify(signature, data)
        elif isinstance(public_key, dsa.DSAPublicKey):
            if hash_alg is None:
                return False
            public_key.verify(signature, data, hash_alg)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def load_der(data: bytes) -> CertInfo:
    """Parses a DER certificate, including DSA keys that inherit their issuer's parameters."""
    try:
        return CertInfo(x509.load_der_x509_certificate(data))
    except ValueError:
        try:
            patched = der.with_placeholder_dsa_parameters(data)
        except ValueError:
            patched = None
        if patched is None:
            raise
        return CertInfo(x509.load_der_x509_certificate(patched), original_der=data)


PARSED_CACHE_SIZE = 256
_parsed: dict[bytes, CertInfo] = {}


def cached_der(data: bytes) -> CertInfo:
    """`load_der`, shared per process by DER bytes (least recently used evicted first): clients
    that reconnect with the same certificate skip parsing. CertInfo is never mutated after it is
    built, so connections can share one."""
    info = _parsed.pop(data, None)
    if info is None:
        info = load_der(data)
        if len(_parsed) >= PARSED_CACHE_SIZE:
            del _parsed[next(iter(_parsed))]
    _parsed[data] = info
    return info


class CertInfo:
    """A certificate plus cached, pre-parsed facts. Equality is by DER."""

    def __init__(self, cert: x509.Certificate, original_der: bytes | None = None):
        self.cert = cert
        self.der = original_der or cert.public_bytes(Encoding.DER)
        self.fingerprint = hashlib.sha256(self.der).digest()
        self.inherits_parameters = original_der is not None
        self.tbs = der.tbs_bytes(self.der) if original_der else cert.tbs_certificate_bytes
        self.subject_key = name_key(cert.subject)
        self.issuer_key = name_key(cert.issuer)
        self.not_before = cert.not_valid_before_utc
        self.not_after = cert.not_valid_after_utc
        self.basic_constraints: x509.BasicConstraints | None = None
        self.key_usage: x509.KeyUsage | None = None
        self.eku: x509.ExtendedKeyUsage | None = None
        self.san: x509.SubjectAlternativeName | None = None
        self.cdp: x509.CRLDistributionPoints | None = None
        try:
            self._read_extensions()
        except (ValueError, TypeError, x509.DuplicateExtension, UnsupportedAlgorithm):
            pass  # see the module docstring

    def _read_extensions(self) -> None:
        for ext in self.cert.extensions:
            value = ext.value
            if isinstance(value, x509.BasicConstraints):
                self.basic_constraints = value
            elif isinstance(value, x509.KeyUsage):
                self.key_usage = value
            elif isinstance(value, x509.ExtendedKeyUsage):
                self.eku = value
            elif isinstance(value, x509.SubjectAlternativeName):
                self.san = value
            elif isinstance(value, x509.CRLDistributionPoints):
                self.cdp = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CertInfo) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @cached_property
    def openssl(self) -> crypto.X509 | None:
        """The certificate as OpenSSL parses it (None if it cannot): what path validation uses."""
        try:
            return crypto.load_certificate(crypto.FILETYPE_ASN1, self.der)
        except crypto.Error:
            return None

    @property
    def is_ca(self) -> bool:
        return bool(self.basic_constraints and self.basic_constraints.ca)

    @cached_property
    def public_key(self) -> object | None:
        if self.inherits_parameters:
            return None
        try:
            return self.cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            return None

    def describe(self) -> str:
        """The subject for error details (.NET rendering)."""
        return dotnet_name(self.cert.subject) or "<empty subject>"
