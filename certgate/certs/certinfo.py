"""One parsed certificate with the facts path validation asks for, computed once.

A certificate whose extensions cannot be parsed (duplicates, malformed values) is kept but marked
`malformed`: it can never be part of a valid path, yet it still appears in error messages.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID

from certgate.certs import der
from certgate.certs.names import dotnet_name

NameKey = tuple[frozenset[tuple[str, object]], ...]

KNOWN_EXTENSIONS = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.NAME_CONSTRAINTS,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.POLICY_MAPPINGS,
        ExtensionOID.POLICY_CONSTRAINTS,
        ExtensionOID.INHIBIT_ANY_POLICY,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.FRESHEST_CRL,
    }
)
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


def verify_signature(public_key: object, signature: bytes, data: bytes, signed: object) -> bool:
    """A certificate's or CRL's signature check (RSA PKCS#1/PSS, ECDSA, EdDSA, DSA)."""
    try:
        hash_alg = signed.signature_hash_algorithm
        if hash_alg is not None and hash_alg.name in _WEAK_HASHES:
            return False
        params = signed.signature_algorithm_parameters
        if isinstance(public_key, rsa.RSAPublicKey):
            if not isinstance(params, (padding.PKCS1v15, padding.PSS)):
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
        self.malformed = ""
        self.basic_constraints: x509.BasicConstraints | None = None
        self.key_usage: x509.KeyUsage | None = None
        self.eku: x509.ExtendedKeyUsage | None = None
        self.san: x509.SubjectAlternativeName | None = None
        self.name_constraints: x509.NameConstraints | None = None
        self.aki: bytes | None = None
        self.has_aki = False
        self.ski: bytes | None = None
        self.cdp: x509.CRLDistributionPoints | None = None
        self.policies: frozenset[str] | None = None
        self.policy_constraints: x509.PolicyConstraints | None = None
        self.inhibit_any: int | None = None
        self.policy_mappings: list[tuple[str, str]] = []
        self.unknown_critical: list[str] = []
        self.critical: set[x509.ObjectIdentifier] = set()
        try:
            self._read_extensions()
        except (ValueError, TypeError, x509.DuplicateExtension, UnsupportedAlgorithm) as exc:
            self.malformed = f"malformed extensions: {exc}"

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
            elif isinstance(value, x509.NameConstraints):
                self.name_constraints = value
            elif isinstance(value, x509.AuthorityKeyIdentifier):
                self.aki = value.key_identifier
                self.has_aki = True
            elif isinstance(value, x509.SubjectKeyIdentifier):
                self.ski = value.digest
            elif isinstance(value, x509.CRLDistributionPoints):
                self.cdp = value
            elif isinstance(value, x509.CertificatePolicies):
                self.policies = frozenset(p.policy_identifier.dotted_string for p in value)
            elif isinstance(value, x509.PolicyConstraints):
                self.policy_constraints = value
            elif isinstance(value, x509.InhibitAnyPolicy):
                self.inhibit_any = value.skip_certs
            elif ext.oid == ExtensionOID.POLICY_MAPPINGS:
                self.policy_mappings = der.policy_mappings(value.value)
            if ext.critical:
                self.critical.add(ext.oid)
            if ext.critical and ext.oid not in KNOWN_EXTENSIONS:
                self.unknown_critical.append(ext.oid.dotted_string)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CertInfo) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def same_entity(self, other: CertInfo) -> bool:
        """Same certificate, or same subject and key (a loop in a cross-signed mesh)."""
        return self == other or (
            self.subject_key == other.subject_key and self.spki_der == other.spki_der
        )

    @cached_property
    def spki_der(self) -> bytes:
        try:
            return self.cert.public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
        except (ValueError, UnsupportedAlgorithm):
            return self.der

    @property
    def is_ca(self) -> bool:
        return bool(self.basic_constraints and self.basic_constraints.ca)

    @property
    def self_issued(self) -> bool:
        return self.subject_key == self.issuer_key

    @cached_property
    def public_key(self) -> object | None:
        if self.inherits_parameters:
            return None
        try:
            return self.cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            return None

    def key_with_inherited_parameters(self, issuer_key: object) -> object | None:
        """This certificate's key; a DSA key without parameters inherits the issuer's (RFC 5280)."""
        if self.public_key is not None:
            return self.public_key
        if not isinstance(issuer_key, dsa.DSAPublicKey):
            return None
        try:
            oid, _, params, key = der.spki(self.der)
            if oid != der.DSA_OID or params is not None:
                return None
            inherited = issuer_key.parameters().parameter_numbers()
            return dsa.DSAPublicNumbers(der.integer(key), inherited).public_key()
        except ValueError:
            return None

    def describe(self) -> str:
        """The subject for error details (.NET rendering)."""
        return dotnet_name(self.cert.subject) or "<empty subject>"


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z", re.IGNORECASE)


def valid_dns_name(value: str) -> bool:
    """LDH syntax with an optional leading `*.` label (RFC 5280 4.2.1.6, RFC 1034)."""
    labels = value.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
    return 0 < len(value) <= 253 and bool(labels) and all(_LABEL.match(label) for label in labels)


def _key_problem(info: CertInfo) -> str:
    if info.inherits_parameters:
        return ""
    key = info.public_key
    if key is None:
        return "unsupported or malformed public key"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 1024:
        return f"RSA key of {key.key_size} bits is too weak"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp192r1",):
        return f"elliptic curve {key.curve.name} is too weak"
    if isinstance(key, ec.EllipticCurvePublicKey) and der.spki(info.der)[1] != 0x06:
        return "elliptic curve given by explicit parameters, not a named curve"
    return ""


def profile_problem(info: CertInfo, role: str) -> str:
    """RFC 5280 profile rules a certificate in a path must meet ('' if it does).

    `role` is "leaf", "intermediate" or "anchor".
    """
    if info.malformed:
        return info.malformed
    problem = _key_problem(info)
    if problem:
        return problem
    if info.unknown_critical:
        return "unknown critical extensions " + ", ".join(info.unknown_critical)
    critical = info.critical
    if ExtensionOID.AUTHORITY_KEY_IDENTIFIER in critical:
        return "authorityKeyIdentifier must not be critical"
    if ExtensionOID.SUBJECT_KEY_IDENTIFIER in critical:
        return "subjectKeyIdentifier must not be critical"
    if info.has_aki and info.aki is None:
        return "authorityKeyIdentifier without keyIdentifier"
    if role != "anchor" and not info.has_aki and not info.self_issued:
        return "authorityKeyIdentifier missing"
    if not info.cert.subject.rdns:
        if role != "leaf":
            return "CA certificate with an empty subject"
        if info.san is None or ExtensionOID.SUBJECT_ALTERNATIVE_NAME not in critical:
            return "empty subject requires a critical subjectAltName"
    elif ExtensionOID.SUBJECT_ALTERNATIVE_NAME in critical:
        return "subjectAltName must not be critical when the subject is not empty"
    if info.san is not None:
        for dns in info.san.get_values_for_type(x509.DNSName):
            if not valid_dns_name(dns):
                return f"malformed dNSName {dns!r}"
    if role == "leaf" and not info.is_ca:
        if info.key_usage is not None and info.key_usage.key_cert_sign:
            return "keyCertSign on an end-entity certificate"
        if info.name_constraints is not None:
            return "nameConstraints on an end-entity certificate"
        return ""
    if info.ski is None:
        return "CA certificate without subjectKeyIdentifier"
    root_bc = role == "anchor" and info.basic_constraints is not None
    if root_bc and ExtensionOID.BASIC_CONSTRAINTS not in critical:
        return "basicConstraints must be critical in a root certificate"
    constraints = info.name_constraints
    if constraints is not None:
        if ExtensionOID.NAME_CONSTRAINTS not in critical:
            return "nameConstraints must be critical"
        for subtree in (
            *(constraints.permitted_subtrees or ()),
            *(constraints.excluded_subtrees or ()),
        ):
            if (
                isinstance(subtree, x509.DNSName)
                and subtree.value
                and not valid_dns_name(subtree.value)
            ):
                return f"malformed dNSName name constraint {subtree.value!r}"
    return ""
