"""`authentication-certificate` through the policy engine, to a real mTLS backend."""

from __future__ import annotations

import base64
import json

import pytest

from certgate.policy.catalog import MemoryCatalog
from certgate.policy.engine import compile_pipeline
from certgate.policy.loader import parse_document
from tests.upstream.conftest import make_context, snapshot, with_backend


def _pipeline(certs, inbound: str):
    catalog = MemoryCatalog(
        paths={"certificates/a", "certificates/b", "backends/be"},
        thumbprints={certs.b.thumbprint: "b"},
    )
    text = (
        f"<policies><inbound>{inbound}</inbound><backend><forward-request/></backend>"
        "<outbound/><on-error/></policies>"
    )
    return compile_pipeline(None, None, parse_document(text, "api", catalog))


async def _run(certs, backend, forwarder, inbound: str, headers=(), variables=None):
    snap = snapshot(certs, a=certs.a, b=certs.b)
    snap = with_backend(snap, {"url": backend.url(), "credentials": {"certificateIds": ["b"]}})
    context = make_context(backend.url(), snap, headers=list(headers))
    for name, value in (variables or {}).items():
        context.Variables.set(name, value)
    response = await _pipeline(certs, inbound).run(context, forwarder)
    return response, context


async def _seen(response) -> dict:
    assert response.StatusCode == 200, await response.Body.buffer()
    return json.loads(await response.Body.buffer())


async def test_by_certificate_id(certs, backend, forwarder):
    response, _ = await _run(
        certs, backend, forwarder, "<authentication-certificate certificate-id='a'/>"
    )
    assert (await _seen(response))["thumbprint"] == certs.a.thumbprint


async def test_by_thumbprint(certs, backend, forwarder):
    inbound = f"<authentication-certificate thumbprint='{certs.b.thumbprint.lower()}'/>"
    response, _ = await _run(certs, backend, forwarder, inbound)
    assert (await _seen(response))["thumbprint"] == certs.b.thumbprint


async def test_by_body_and_password(certs, backend, forwarder):
    inbound = (
        "<authentication-certificate body='@((byte[])context.Variables[&quot;pfx&quot;])' "
        "password='s3cret-pw'/>"
    )
    pfx = certs.client_a.pfx("s3cret-pw")
    response, _ = await _run(certs, backend, forwarder, inbound, variables={"pfx": pfx})
    assert (await _seen(response))["thumbprint"] == certs.a.thumbprint


async def test_by_base64_body_without_password(certs, backend, forwarder):
    inbound = "<authentication-certificate body='@((string)context.Variables[&quot;pfx&quot;])'/>"
    pfx = base64.b64encode(certs.client_b.pfx(None)).decode()
    response, _ = await _run(certs, backend, forwarder, inbound, variables={"pfx": pfx})
    assert (await _seen(response))["thumbprint"] == certs.b.thumbprint


async def test_explicit_element_overrides_the_backend_entity(certs, backend, forwarder):
    inbound = (
        "<set-backend-service backend-id='be'/><authentication-certificate certificate-id='a'/>"
    )
    response, _ = await _run(certs, backend, forwarder, inbound)
    assert (await _seen(response))["thumbprint"] == certs.a.thumbprint
    response, _ = await _run(certs, backend, forwarder, "<set-backend-service backend-id='be'/>")
    assert (await _seen(response))["thumbprint"] == certs.b.thumbprint


async def test_expression_id_picks_the_certificate(certs, backend, forwarder):
    inbound = _element(
        """certificate-id='@(context.Request.Headers.GetValueOrDefault("X-Cert", ""))'"""
    )
    response, _ = await _run(certs, backend, forwarder, inbound, headers=[("X-Cert", "b")])
    assert (await _seen(response))["thumbprint"] == certs.b.thumbprint


def _element(attributes: str) -> str:
    """`<authentication-certificate .../>` with C# string quotes escaped for the XML attribute."""
    return f"<authentication-certificate {attributes.replace(chr(34), '&quot;')}/>"


@pytest.mark.parametrize(
    ("inbound", "variables", "message"),
    [
        (
            _element(
                """certificate-id='@(context.Variables.GetValueOrDefault<string>("id", ""))'"""
            ),
            {},
            "evaluated to an empty value",
        ),
        (
            _element("""certificate-id='@((string)context.Variables["id"])'"""),
            {"id": "missing"},
            "Certificate with id 'missing' could not be found.",
        ),
        (
            _element("""thumbprint='@((string)context.Variables["id"])'"""),
            {"id": "00FF"},
            "Certificate with thumbprint '00FF' could not be found.",
        ),
        (
            _element("""body='@((byte[])context.Variables["pfx"])' password='wrong-pw'"""),
            {"pfx": "PFX"},
            "password",
        ),
        (
            _element("""body='@((byte[])context.Variables["pfx"])'"""),
            {"pfx": b""},
            "no certificate bytes",
        ),
    ],
)
async def test_unresolvable_certificate_fails_the_request(
    certs, backend, forwarder, inbound, variables, message
):
    if variables.get("pfx") == "PFX":
        variables = {"pfx": certs.client_a.pfx("right-pw")}
    response, context = await _run(certs, backend, forwarder, inbound, variables=variables)
    assert response.StatusCode == 500
    assert context.LastError.Source == "authentication-certificate"
    assert message in context.LastError.Message
    assert "wrong-pw" not in context.LastError.Message
    assert backend.connections == 0  # never sent without the certificate it asked for
