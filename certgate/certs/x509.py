"""`X509Certificate2` as policy expressions see it (`context.Request.Certificate`).

Values follow .NET: `Thumbprint` upper-case hex SHA-1, `Subject`/`Issuer` in
`X500DistinguishedName` rendering, `SerialNumber` upper-case hex of the serial's encoded bytes
(a leading 00 stays), `NotBefore`/`NotAfter` as local-time `DateTime` (Kind Local, like .NET, so
`DateTime.Now` comparisons work; `.ToUniversalTime()` gives UTC). `Verify()` is chain plus
revocation, `VerifyNoRevocation()` chain only; both read CRLs already prefetched and never block.

certgate extensions (not in .NET): `Sha256Thumbprint` and `SubjectAlternativeNames` with
`DnsNames`, `Uris`, `EmailAddresses` and `IpAddresses` (lists of strings), for SPIFFE-style URI
identities.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import MutableMapping, Sequence
from functools import cached_property

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from certgate.certs import der
from certgate.certs.certinfo import CertInfo, cached_der
from certgate.certs.names import attribute_values, dotnet_name
from certgate.certs.verify import VerificationResult, Verifier
from certgate.expressions.dotnet.enums import X509_NAME_TYPE
from certgate.expressions.dotnet.rsa import RSA, rsa_private_key, rsa_public_key
from certgate.expressions.model import CsObject
from certgate.observe.metrics import count_verification

X509NameType = X509_NAME_TYPE
"""The `X509NameType` enum members by name (SimpleName, EmailName, UpnName, DnsName, ...)."""
_UPN = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
_NO_TRUST_STORE = VerificationResult(False, "ClientCertificateNotTrusted", "no trust store")


class X500DistinguishedName(CsObject):
    """APIM allows only `Name` on it."""

    __slots__ = ("Name",)
    __cs_type__ = "X500DistinguishedName"
    __cs_members__ = frozenset({"Name", "ToString"})

    def __init__(self, name: x509.Name):
        self.Name = dotnet_name(name)

    def ToString(self) -> str:
        return self.Name


class SubjectAlternativeNames(CsObject):
    """certgate extension: the SAN entries by kind, each a list of strings."""

    __slots__ = ("DnsNames", "EmailAddresses", "IpAddresses", "Uris")
    __cs_type__ = "SubjectAlternativeNames"
    __cs_members__ = frozenset({"DnsNames", "Uris", "EmailAddresses", "IpAddresses"})

    def __init__(self, san: x509.SubjectAlternativeName | None):
        def values(kind: type) -> list[str]:
            return [str(v) for v in san.get_values_for_type(kind)] if san else []

        self.DnsNames = values(x509.DNSName)
        self.Uris = values(x509.UniformResourceIdentifier)
        self.EmailAddresses = values(x509.RFC822Name)
        self.IpAddresses = values(x509.IPAddress)


class X509Extension(CsObject):
    """Minimal `X509Extension`: OID, criticality and the raw DER value."""

    __slots__ = ("Critical", "Oid", "RawData")
    __cs_type__ = "X509Extension"
    __cs_members__ = frozenset({"Oid", "Critical", "RawData"})

    def __init__(self, ext: x509.Extension):
        self.Oid = ext.oid.dotted_string
        self.Critical = ext.critical
        try:
            self.RawData = ext.value.public_bytes()
        except (NotImplementedError, ValueError):
            self.RawData = b""


class X509Certificate2(CsObject):
    """One certificate, optionally with the chain the client sent and the verifier to check it.

    `verifier` and `cache` come from the connection: without a verifier `Verify()` is false; the
    cache (any dict) keeps results per chain and trust revision for the connection's lifetime.
    `Verify()` and `VerifyNoRevocation()` also remember their verdict on the instance, with the
    verifier revision it holds for, so a keep-alive connection's requests skip the cache key.
    The attributes `Verify()` reads are slots (fast on every request); the cached properties
    live in `__dict__`.
    """

    __slots__ = ("__dict__", "__weakref__", "_cache", "_verdicts", "_verifier")
    _der: bytes  # with `_chain_der`, set by `from_der` (in `__dict__`) for `_info` to parse
    _chain_der: tuple[bytes, ...]
    __cs_type__ = "X509Certificate2"
    __cs_members__ = frozenset(
        {
            "Thumbprint",
            "Subject",
            "Issuer",
            "SubjectName",
            "IssuerName",
            "SerialNumber",
            "NotBefore",
            "NotAfter",
            "RawData",
            "Version",
            "Extensions",
            "HasPrivateKey",
            "FriendlyName",
            "SignatureAlgorithm",
            "GetNameInfo",
            "GetCertHash",
            "GetCertHashString",
            "GetSerialNumberString",
            "GetRawCertData",
            "GetExpirationDateString",
            "GetEffectiveDateString",
            "Verify",
            "VerifyNoRevocation",
            "ToString",
            "Equals",
            "Sha256Thumbprint",
            "SubjectAlternativeNames",
            "GetRSAPublicKey",
            "GetRSAPrivateKey",
        }
    )

    def __init__(
        self,
        cert: x509.Certificate | CertInfo,
        presented_chain: Sequence[x509.Certificate | CertInfo] = (),
        verifier: Verifier | None = None,
        cache: MutableMapping | None = None,
    ):
        self._info = cert if isinstance(cert, CertInfo) else CertInfo(cert)
        self._chain = tuple(c if isinstance(c, CertInfo) else CertInfo(c) for c in presented_chain)
        self._verifier = verifier
        self._cache = cache
        self._verdicts: dict[bool, tuple[object, VerificationResult]] = {}

    @classmethod
    def from_der(
        cls,
        der_bytes: bytes,
        chain: Sequence[bytes] = (),
        verifier: Verifier | None = None,
        cache: MutableMapping | None = None,
    ) -> X509Certificate2:
        """From the DER bytes a TLS handshake gives (client certificate, then the chain it sent).

        Parsing waits until a member needs it (many requests never read their certificate) and
        goes through the per-process cache of `cached_der`."""
        self = cls.__new__(cls)
        self._der = der_bytes
        self._chain_der = tuple(chain)
        self._verifier = verifier
        self._cache = cache
        self._verdicts = {}
        return self

    @cached_property
    def _info(self) -> CertInfo:
        """Set by the constructor, or parsed on first use after `from_der`."""
        return cached_der(self._der)

    @cached_property
    def _chain(self) -> tuple[CertInfo, ...]:
        return tuple(cached_der(c) for c in self._chain_der)

    @property
    def certificate(self) -> x509.Certificate:
        """The `cryptography` certificate (Python side only)."""
        return self._info.cert

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return tuple(c.cert for c in self._chain)

    # -- .NET properties ------------------------------------------------------------------------

    @cached_property
    def Thumbprint(self) -> str:
        return hashlib.sha1(self._info.der).hexdigest().upper()

    @cached_property
    def Sha256Thumbprint(self) -> str:
        return self._info.fingerprint.hex().upper()

    @cached_property
    def SubjectName(self) -> X500DistinguishedName:
        return X500DistinguishedName(self._info.cert.subject)

    @cached_property
    def IssuerName(self) -> X500DistinguishedName:
        return X500DistinguishedName(self._info.cert.issuer)

    @property
    def Subject(self) -> str:
        return self.SubjectName.Name

    @property
    def Issuer(self) -> str:
        return self.IssuerName.Name

    @cached_property
    def SerialNumber(self) -> str:
        return der.serial_bytes(self._info.der).hex().upper()

    @property
    def NotBefore(self) -> dt.datetime:
        return self._info.not_before.astimezone()

    @property
    def NotAfter(self) -> dt.datetime:
        return self._info.not_after.astimezone()

    @property
    def RawData(self) -> bytes:
        return self._info.der

    @property
    def Version(self) -> int:
        return self._info.cert.version.value + 1

    @property
    def HasPrivateKey(self) -> bool:
        """Only a certificate an expression loaded from a PFX has one (`private_key`)."""
        return self.__dict__.get("private_key") is not None

    @property
    def FriendlyName(self) -> str:
        return ""

    @property
    def SignatureAlgorithm(self) -> str:
        return self._info.cert.signature_algorithm_oid.dotted_string

    @cached_property
    def Extensions(self) -> list[X509Extension]:
        try:
            return [X509Extension(e) for e in self._info.cert.extensions]
        except (ValueError, x509.DuplicateExtension):
            return []

    @cached_property
    def SubjectAlternativeNames(self) -> SubjectAlternativeNames:
        return SubjectAlternativeNames(self._info.san)

    # -- .NET methods ---------------------------------------------------------------------------

    def GetRSAPublicKey(self) -> RSA | None:
        return rsa_public_key(self._info.cert)

    def GetRSAPrivateKey(self) -> RSA | None:
        return rsa_private_key(self.__dict__.get("private_key"))

    def GetCertHash(self) -> bytes:
        return hashlib.sha1(self._info.der).digest()

    def GetCertHashString(self) -> str:
        return self.Thumbprint

    def GetSerialNumberString(self) -> str:
        return self.SerialNumber

    def GetRawCertData(self) -> bytes:
        return self._info.der

    def GetExpirationDateString(self) -> str:
        return self.NotAfter.strftime("%m/%d/%Y %H:%M:%S")

    def GetEffectiveDateString(self) -> str:
        return self.NotBefore.strftime("%m/%d/%Y %H:%M:%S")

    def GetNameInfo(self, name_type: object, for_issuer: bool) -> str:
        """.NET's `GetNameInfo(X509NameType, bool)`; '' when the name is absent."""
        kind = getattr(name_type, "name", name_type)
        cert = self._info.cert
        name = cert.issuer if for_issuer else cert.subject
        alt = self._alt_names(for_issuer)
        if kind == "SimpleName":
            for oid in (
                NameOID.COMMON_NAME,
                NameOID.ORGANIZATIONAL_UNIT_NAME,
                NameOID.ORGANIZATION_NAME,
                NameOID.EMAIL_ADDRESS,
            ):
                found = attribute_values(name, oid)
                if found:
                    return found[0]
            emails = alt.get_values_for_type(x509.RFC822Name) if alt else []
            if emails:
                return emails[0]
            first = [a.value for rdn in reversed(list(name.rdns)) for a in rdn]
            return str(first[0]) if first else ""
        if kind == "EmailName":
            found = attribute_values(name, NameOID.EMAIL_ADDRESS)
            emails = alt.get_values_for_type(x509.RFC822Name) if alt else []
            return (found or emails or [""])[0]
        if kind == "UpnName":
            for other in alt.get_values_for_type(x509.OtherName) if alt else []:
                if other.type_id == _UPN:
                    return _utf8_string(other.value)
            return ""
        if kind in ("DnsName", "DnsFromAlternativeName"):
            dns = alt.get_values_for_type(x509.DNSName) if alt else []
            if dns:
                return dns[0]
            if kind == "DnsName":
                found = attribute_values(name, NameOID.COMMON_NAME)
                return found[0] if found else ""
            return ""
        if kind == "UrlName":
            uris = alt.get_values_for_type(x509.UniformResourceIdentifier) if alt else []
            return uris[0] if uris else ""
        raise ValueError(f"unknown X509NameType {kind!r}")

    def _alt_names(
        self, for_issuer: bool
    ) -> x509.SubjectAlternativeName | x509.IssuerAlternativeName | None:
        if not for_issuer:
            return self._info.san
        try:
            ext = self._info.cert.extensions.get_extension_for_class(x509.IssuerAlternativeName)
        except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
            return None
        return ext.value

    def verification(
        self,
        *,
        check_revocation: bool = True,
        check_not_before: bool = True,
        check_not_after: bool = True,
    ) -> VerificationResult:
        """The full verdict (Python side, used by validate-client-certificate)."""
        if self._verifier is None:
            return _NO_TRUST_STORE
        result = self._verifier.verify(
            self._info,
            self._chain,
            check_revocation=check_revocation,
            check_not_before=check_not_before,
            check_not_after=check_not_after,
            cache=self._cache,
        )
        count_verification(result.ok, result.reason)
        return result

    def verified(self) -> VerificationResult | None:
        """The verdict of `Verify()` if it ran on this connection (the access log), else None."""
        kept = self._verdicts.get(True)
        return kept[1] if kept is not None else None

    def _verdict(self, check_revocation: bool) -> VerificationResult:
        """The default-flags verdict, kept until the verifier's revision moves or it expires."""
        if self._verifier is None:
            return _NO_TRUST_STORE
        revision = self._verifier.revision()
        kept = self._verdicts.get(check_revocation)
        if kept is not None and kept[0] == revision and kept[1].valid_until > time.time():
            return kept[1]
        result = self.verification(check_revocation=check_revocation)
        self._verdicts[check_revocation] = (revision, result)
        return result

    def Verify(self) -> bool:
        return self._verdict(True).ok

    def VerifyNoRevocation(self) -> bool:
        return self._verdict(False).ok

    def Equals(self, other: object) -> bool:
        return isinstance(other, X509Certificate2) and other._info.der == self._info.der

    def __cs_equals__(self, other: object) -> bool:
        return self.Equals(other)

    def ToString(self) -> str:
        return (
            f"[Subject]\r\n  {self.Subject}\r\n\r\n[Issuer]\r\n  {self.Issuer}\r\n\r\n"
            f"[Serial Number]\r\n  {self.SerialNumber}\r\n\r\n"
            f"[Not Before]\r\n  {self.GetEffectiveDateString()}\r\n\r\n"
            f"[Not After]\r\n  {self.GetExpirationDateString()}\r\n\r\n"
            f"[Thumbprint]\r\n  {self.Thumbprint}\r\n"
        )


def _utf8_string(value: bytes) -> str:
    """The text inside an otherName's `[0] EXPLICIT UTF8String`."""
    try:
        _, start, end = der.read_tlv(value, 0)
        if value[0] == 0xA0:
            _, start, end = der.read_tlv(value, start)
        return value[start:end].decode("utf-8", "replace")
    except ValueError:
        return ""
