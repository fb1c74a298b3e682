"""`validate-client-certificate` through the policy pipeline, as a client would experience it."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from certgate.armnames import ArmNames
from certgate.certs.crl import CrlStore
from certgate.certs.crlinfo import CrlInfo
from certgate.certs.material import CertificateMaterial
from certgate.certs.verify import TrustStore, Verifier
from certgate.certs.x509 import X509Certificate2
from certgate.gateway.upstream.tls import SYSTEM_TRUST
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.context import Context, Headers, Request
from certgate.policy.engine import compile_pipeline
from certgate.policy.errors import PolicyValidationError
from certgate.policy.loader import parse_document
from certgate.snapshot.compiler import Snapshot
from tests import pki

ROOT = pki.ca("Client Root")
ISSUING = ROOT.issue("Issuing CA", ca=True)
GOOD = ISSUING.issue("client", dns=["client.example.com"])
REVOKED = ISSUING.issue("revoked")
EXPIRED = ISSUING.issue(
    "old", not_before=pki.NOW - dt.timedelta(days=9), not_after=pki.NOW - dt.timedelta(days=1)
)
SELF_SIGNED = pki.issue("pinned self-signed")


def _verifier() -> Verifier:
    trust = TrustStore([ROOT.cert], [ISSUING.cert], use_system_roots=False)
    crls = [pki.crl(ISSUING, [REVOKED.cert.serial_number]), pki.crl(ROOT)]
    return Verifier(trust, CrlStore([CrlInfo(c) for c in crls]))


async def _run(element: str, client: pki.Issued | None, catalog=None) -> tuple[int, dict, Context]:
    document = parse_document(
        "<policies><inbound>"
        + element
        + '<return-response><set-status code="200" reason="OK"/></return-response>'
        "</inbound><on-error><base/></on-error></policies>",
        "api",
        catalog or MemoryCatalog(),
    )
    pipeline = compile_pipeline(None, None, document, None)
    verifier = _verifier()
    certificate = X509Certificate2(client.cert, (), verifier, {}) if client else None
    request = Request("GET", "https", "gw", 443, "/", Headers(), certificate=certificate)
    issuing = CertificateMaterial(ISSUING.cert, None)
    snapshot = Snapshot(
        revision=1,
        verifier=verifier,
        certificates_by_id=ArmNames({"issuing": issuing}),
        certificates_by_thumbprint={issuing.thumbprint: issuing},
        backends=ArmNames({}),
        backend_trust=SYSTEM_TRUST,
    )
    context = Context(request, snapshot=snapshot)
    response = await pipeline.run(context, None)
    body = json.loads(await response.Body.buffer()) if response.StatusCode != 200 else {}
    return response.StatusCode, body, context


@pytest.mark.parametrize(
    ("client", "reason"),
    [
        (None, "ClientCertificateNotFound"),
        (REVOKED, "ClientCertificateRevoked"),
        (EXPIRED, "ClientCertificateExpired"),
        (SELF_SIGNED, "ClientCertificateNotTrusted"),
    ],
)
async def test_failures_are_401_with_the_reason(client, reason) -> None:
    status, body, context = await _run("<validate-client-certificate/>", client)
    assert status == 401
    assert body == {"statusCode": 401, "message": "Invalid client certificate"}
    assert context.LastError.Reason == reason
    assert context.LastError.Source == "validate-client-certificate"


async def test_trusted_certificate_passes() -> None:
    status, _, _ = await _run("<validate-client-certificate/>", GOOD)
    assert status == 200


async def test_switches_turn_checks_off() -> None:
    relaxed = '<validate-client-certificate validate-revocation="false"/>'
    assert (await _run(relaxed, REVOKED))[0] == 200
    no_expiry = '<validate-client-certificate validate-not-after="false"/>'
    assert (await _run(no_expiry, EXPIRED))[0] == 200
    ignored = '<validate-client-certificate ignore-error="true"/>'
    assert (await _run(ignored, SELF_SIGNED))[0] == 200


async def test_self_signed_pinned_by_thumbprint() -> None:
    element = (
        '<validate-client-certificate validate-trust="false" validate-revocation="false">'
        f'<identities><identity thumbprint="{SELF_SIGNED.thumbprint.lower()}"/></identities>'
        "</validate-client-certificate>"
    )
    assert (await _run(element, SELF_SIGNED))[0] == 200
    status, _, context = await _run(element, GOOD)
    assert status == 401
    assert context.LastError.Reason == "ClientCertificateIdentityNotMatched"


async def test_identities_and_within_or_across() -> None:
    element = (
        "<validate-client-certificate><identities>"
        '<identity common-name="client" issuer-subject="CN=Nobody"/>'
        '<identity dns-name="CLIENT.example.com" issuer-subject="CN=Issuing CA"/>'
        "</identities></validate-client-certificate>"
    )
    assert (await _run(element, GOOD))[0] == 200
    only_first = (
        "<validate-client-certificate><identities>"
        '<identity common-name="client" issuer-subject="CN=Nobody"/>'
        "</identities></validate-client-certificate>"
    )
    assert (await _run(only_first, GOOD))[0] == 401


async def test_issuer_identities() -> None:
    catalog = MemoryCatalog(paths={"certificates/issuing"})
    by_id = (
        "<validate-client-certificate><identities>"
        '<identity issuer-certificate-id="issuing" subject="CN=client"/>'
        "</identities></validate-client-certificate>"
    )
    assert (await _run(by_id, GOOD, catalog))[0] == 200
    by_thumbprint = (
        "<validate-client-certificate><identities>"
        f'<identity issuer-thumbprint="{ISSUING.thumbprint}"/>'
        "</identities></validate-client-certificate>"
    )
    assert (await _run(by_thumbprint, GOOD))[0] == 200


def test_bad_documents_are_refused_naming_the_problem() -> None:
    with pytest.raises(PolicyValidationError, match="mutually exclusive"):
        parse_document(
            "<policies><inbound><validate-client-certificate><identities>"
            '<identity issuer-certificate-id="x" issuer-subject="CN=a"/>'
            "</identities></validate-client-certificate></inbound></policies>",
            "api",
            MemoryCatalog(paths={"certificates/x"}),
        )
    with pytest.raises(PolicyValidationError, match="could not be found"):
        parse_document(
            "<policies><inbound><validate-client-certificate><identities>"
            '<identity issuer-certificate-id="missing"/>'
            "</identities></validate-client-certificate></inbound></policies>",
            "api",
            MemoryCatalog(),
        )
    with pytest.raises(PolicyValidationError, match="must be 'true' or 'false'"):
        parse_document(
            '<policies><inbound><validate-client-certificate validate-trust="maybe"/>'
            "</inbound></policies>",
            "api",
            MemoryCatalog(),
        )
