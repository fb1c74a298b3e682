"""`X509Certificate2` and DN rendering as policy expressions read them (as .NET prints them)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from certgate.certs.names import dotnet_name
from certgate.certs.verify import TrustStore, Verifier
from certgate.certs.x509 import X509Certificate2, X509NameType
from tests import pki


def _name(*rdns: list[tuple[ObjectIdentifier, str]]) -> x509.Name:
    return x509.Name(
        [x509.RelativeDistinguishedName([x509.NameAttribute(o, v) for o, v in rdn]) for rdn in rdns]
    )


def test_dotnet_name_reverses_rdns_and_quotes_like_dotnet() -> None:
    name = _name(
        [(NameOID.COUNTRY_NAME, "US")],
        [(NameOID.STATE_OR_PROVINCE_NAME, "WA")],
        [(NameOID.ORGANIZATION_NAME, "Contoso, Inc.")],
        [(NameOID.ORGANIZATIONAL_UNIT_NAME, ' say "hi"')],
        [(NameOID.COMMON_NAME, "client"), (NameOID.EMAIL_ADDRESS, "a@b.c")],
    )
    assert dotnet_name(name) == (
        'CN=client + E=a@b.c, OU=" say ""hi""", O="Contoso, Inc.", S=WA, C=US'
    )


def test_dotnet_name_short_names_and_unknown_oids() -> None:
    name = _name(
        [(NameOID.DOMAIN_COMPONENT, "com")],
        [(NameOID.SERIAL_NUMBER, "42")],
        [(ObjectIdentifier("1.2.3.4"), "x")],
        [(NameOID.TITLE, "")],
    )
    assert dotnet_name(name) == 'T="", OID.1.2.3.4=x, SERIALNUMBER=42, DC=com'


def test_certificate_properties_match_dotnet() -> None:
    root = pki.ca("Root", subject=pki.name("Root", org="Contoso, Inc.", country="US"))
    leaf = root.issue(
        "client",
        serial=0x80,
        dns=["client.example.com"],
        uris=["spiffe://example.com/ns/a/sa/b"],
        emails=["me@example.com"],
        ips=["10.0.0.1"],
    )
    cert = X509Certificate2(leaf.cert)
    assert cert.Thumbprint == leaf.thumbprint
    assert len(cert.Sha256Thumbprint) == 64 and cert.Sha256Thumbprint.isupper()
    assert cert.Subject == cert.SubjectName.Name == "CN=client"
    assert cert.Issuer == cert.IssuerName.Name == 'CN=Root, O="Contoso, Inc.", C=US'
    assert cert.SerialNumber == "0080"
    assert cert.Version == 3
    assert cert.RawData == leaf.der
    assert cert.NotAfter.tzinfo is not None and cert.NotAfter.utcoffset() is not None
    assert cert.NotAfter.astimezone(dt.UTC) == leaf.cert.not_valid_after_utc
    san = cert.SubjectAlternativeNames
    assert san.DnsNames == ["client.example.com"]
    assert san.Uris == ["spiffe://example.com/ns/a/sa/b"]
    assert san.EmailAddresses == ["me@example.com"]
    assert san.IpAddresses == ["10.0.0.1"]


def test_get_name_info() -> None:
    root = pki.ca("Root")
    leaf = root.issue("client", dns=["c.example.com"], emails=["me@example.com"])
    cert = X509Certificate2(leaf.cert)
    assert cert.GetNameInfo(X509NameType["SimpleName"], False) == "client"
    assert cert.GetNameInfo(X509NameType["SimpleName"], True) == "Root"
    assert cert.GetNameInfo(X509NameType["DnsName"], False) == "c.example.com"
    assert cert.GetNameInfo(X509NameType["EmailName"], False) == "me@example.com"
    assert cert.GetNameInfo(X509NameType["UrlName"], False) == ""


def test_verify_needs_a_verifier_and_uses_the_presented_chain() -> None:
    root = pki.ca("Root")
    inter = root.issue("Issuing CA", ca=True)
    leaf = inter.issue("client")
    assert not X509Certificate2(leaf.cert).Verify()
    verifier = Verifier(TrustStore([root.cert], use_system_roots=False))
    cert = X509Certificate2(leaf.cert, [inter.cert], verifier, {})
    assert cert.Verify() and cert.VerifyNoRevocation()
    assert not X509Certificate2(leaf.cert, [], verifier).Verify()
