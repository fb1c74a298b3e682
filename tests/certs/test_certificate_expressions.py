"""The client certificate through compiled policy expressions, as APIM's documented recipes do."""

from __future__ import annotations

import pytest

from certgate.certs.verify import TrustStore, Verifier
from certgate.certs.x509 import X509Certificate2
from certgate.expressions import compile_expression
from certgate.policy.context import Context, Deployment, Headers, Request
from tests import pki

ROOT = pki.ca("Expr Root")
CLIENT = ROOT.issue("client", uris=["spiffe://example.org/ns/a/sa/b"], serial=0x1F)
PINNED = pki.issue("pinned self-signed")


def _context(client: pki.Issued, pinned: list[pki.Issued]) -> Context:
    verifier = Verifier(TrustStore([ROOT.cert], use_system_roots=False))
    certificate = X509Certificate2(client.cert, (), verifier, {})
    deployment = Deployment(
        {p.thumbprint: X509Certificate2(p.cert) for p in pinned}, "managed", "svc", "local"
    )
    request = Request("GET", "https", "gw", 443, "/", Headers(), certificate=certificate)
    return Context(request, deployment=deployment)


def _eval(source: str, context: Context) -> object:
    return compile_expression(source).evaluate(context)


PINNED_RECIPE = (
    "@(context.Deployment.Certificates.Any("
    "c => c.Value.Thumbprint == context.Request.Certificate.Thumbprint))"
)


def test_self_signed_pinned_through_deployment_certificates() -> None:
    assert _eval(PINNED_RECIPE, _context(PINNED, [PINNED])) is True
    assert _eval(PINNED_RECIPE, _context(PINNED, [])) is False
    assert _eval("@(context.Request.Certificate.Verify())", _context(PINNED, [PINNED])) is False


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("@(context.Request.Certificate.Verify())", True),
        ("@(context.Request.Certificate.VerifyNoRevocation())", True),
        ('@(context.Request.Certificate.Issuer == "CN=Expr Root")', True),
        ("@(context.Request.Certificate.SubjectName.Name)", "CN=client"),
        ("@(context.Request.Certificate.SerialNumber)", "1F"),
        ("@(context.Request.Certificate.NotAfter > DateTime.Now)", True),
        ("@(context.Request.Certificate.GetNameInfo(X509NameType.SimpleName, true))", "Expr Root"),
        (
            '@(context.Request.Certificate.SubjectAlternativeNames.Uris.Contains("spiffe://example.org/ns/a/sa/b"))',
            True,
        ),
        ("@(context.Request.Certificate.Sha256Thumbprint.Length)", 64),
    ],
)
def test_certificate_members(source: str, expected: object) -> None:
    assert _eval(source, _context(CLIENT, [])) == expected
