"""`validate-client-certificate`: time, trust, revocation and identity checks of a client cert.

Failures end the request with 401 `{"statusCode": 401, "message": "Invalid client certificate"}`
and `context.LastError.Reason` one of ClientCertificateNotFound / NotTrusted / Revoked / Expired /
NotYetValid / IdentityNotMatched; `ignore-error="true"` lets the request continue instead.
Identities match when all their attributes match (AND); any matching identity suffices (OR).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certgate.certs.certinfo import name_key, verify_signature
from certgate.certs.verify import EXPIRED, NOT_FOUND, NOT_TRUSTED, NOT_YET_VALID, REVOKED
from certgate.certs.x509 import X509Certificate2
from certgate.policy.context import Context
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register

IDENTITY_NOT_MATCHED = "ClientCertificateIdentityNotMatched"
MESSAGES = {
    NOT_FOUND: "Client certificate is missing.",
    NOT_TRUSTED: "A certificate chain could not be built to a trusted root authority.",
    REVOKED: "Certificate has been revoked.",
    EXPIRED: "Certificate has expired.",
    NOT_YET_VALID: "Certificate is not yet valid.",
    IDENTITY_NOT_MATCHED: "Certificate does not match any of allowed identities.",
}
IDENTITY_ATTRIBUTES = (
    "thumbprint",
    "serial-number",
    "common-name",
    "subject",
    "dns-name",
    "issuer-subject",
    "issuer-thumbprint",
    "issuer-certificate-id",
)
MAX_IDENTITIES = 10


def _hex(value: str) -> str:
    return "".join(value.split()).replace(":", "").upper()


def _dn_parts(dn: str) -> list[str]:
    """RDN components of a DN string, split on unquoted `,` and `+`, stripped."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in dn:
        if char == '"':
            quoted = not quoted
        if char in ",+" and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _same_dn(configured: str, actual: str) -> bool:
    return _dn_parts(configured) == _dn_parts(actual)


@register("validate-client-certificate")
@dataclass(slots=True)
class ValidateClientCertificate(Policy):
    revocation: bool
    trust: bool
    not_before: bool
    not_after: bool
    ignore_error: bool
    identities: tuple[dict[str, str], ...]
    attributes = frozenset(
        {
            "validate-revocation",
            "validate-trust",
            "validate-not-before",
            "validate-not-after",
            "ignore-error",
        }
    )
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        identities: list[dict[str, str]] = []
        for group in loader.children(node, {"identities"}):
            for identity in loader.children(group, {"identity"}):
                loader.no_children(identity)
                identities.append(cls._identity(identity, loader))
        if len(identities) > MAX_IDENTITIES:
            raise node.error(f"At most {MAX_IDENTITIES} identities are allowed.")
        return cls(
            revocation=loader.const_bool(node, "validate-revocation", True),
            trust=loader.const_bool(node, "validate-trust", True),
            not_before=loader.const_bool(node, "validate-not-before", True),
            not_after=loader.const_bool(node, "validate-not-after", True),
            ignore_error=loader.const_bool(node, "ignore-error", False),
            identities=tuple(identities),
        )

    @staticmethod
    def _identity(node: Node, loader: Loader) -> dict[str, str]:
        unknown = set(node.attrib) - set(IDENTITY_ATTRIBUTES)
        if unknown:
            raise node.error(f"Attribute '{sorted(unknown)[0]}' is not allowed in 'identity'.")
        claims = {
            name: loader.literal(node, name, required=True)
            for name in IDENTITY_ATTRIBUTES
            if node.attrib.get(name) is not None
        }
        if not claims:
            raise node.error("An identity needs at least one attribute.")
        certificate_id = claims.get("issuer-certificate-id")
        if certificate_id is not None:
            if "issuer-subject" in claims or "issuer-thumbprint" in claims:
                raise node.error(
                    "Attribute 'issuer-certificate-id' is mutually exclusive with the other "
                    "issuer attributes."
                )
            claims["issuer-certificate-id"] = loader.reference(
                node,
                f"certificates/{certificate_id}",
                f"Certificate with id '{certificate_id}' could not be found.",
            )
        return claims

    def _fail(self, reason: str) -> PolicyRuntimeError:
        return PolicyRuntimeError(
            reason, MESSAGES[reason], status=401, public_message="Invalid client certificate"
        )

    async def execute(self, context: Context) -> bool | int | None:
        reason = self._check(context)
        if reason is not None and not self.ignore_error:
            raise self._fail(reason)
        return None

    def _check(self, context: Context) -> str | None:
        cert = context.Request.Certificate
        if cert is None:
            return NOT_FOUND
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if self.not_before and now < cert.certificate.not_valid_before_utc:
            return NOT_YET_VALID
        if self.not_after and now > cert.certificate.not_valid_after_utc:
            return EXPIRED
        if self.trust or self.revocation:
            result = cert.verification(
                check_revocation=self.revocation,
                check_not_before=self.not_before,
                check_not_after=self.not_after,
            )
            if not result.ok and (self.trust or result.reason == REVOKED):
                return result.reason
        if self.identities and not any(self._matches(i, cert, context) for i in self.identities):
            return IDENTITY_NOT_MATCHED
        return None

    def _matches(self, claims: dict[str, str], cert: X509Certificate2, context: Context) -> bool:
        return all(self._claim(name, expected, cert, context) for name, expected in claims.items())

    def _claim(self, name: str, expected: str, cert: X509Certificate2, context: Context) -> bool:
        if name == "thumbprint":
            return _hex(expected) == cert.Thumbprint
        if name == "serial-number":
            return _hex(expected).lstrip("0") == cert.SerialNumber.lstrip("0")
        if name == "common-name":
            cns = cert.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            return any(a.value == expected for a in cns)
        if name == "subject":
            return _same_dn(expected, cert.Subject)
        if name == "dns-name":
            return expected.lower() in (d.lower() for d in cert.SubjectAlternativeNames.DnsNames)
        if name == "issuer-subject":
            return _same_dn(expected, cert.Issuer)
        if name == "issuer-thumbprint":
            issuer = self._issuer(cert)
            return issuer is not None and _hex(expected) == _thumbprint(issuer)
        if name == "issuer-certificate-id":
            snapshot = context.snapshot
            found = snapshot.certificates_by_id.named(expected) if snapshot else None
            return found is not None and _issued_by(cert.certificate, found.certificate)
        return False

    @staticmethod
    def _issuer(cert: X509Certificate2) -> x509.Certificate | None:
        """The issuing certificate: from the verified path, else from the presented chain."""
        result = cert.verification(check_revocation=False)
        if result.ok and len(result.path) > 1:
            return result.path[1]
        for candidate in cert.chain:
            if _issued_by(cert.certificate, candidate):
                return candidate
        return None


def _thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer`'s name and key match `cert`'s issuer and signature."""
    if name_key(cert.issuer) != name_key(issuer.subject):
        return False
    try:
        key = issuer.public_key()
    except ValueError:
        return False
    return verify_signature(key, cert.signature, cert.tbs_certificate_bytes, cert)
