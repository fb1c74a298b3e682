"""Client-sent identity headers never reach policies or backends (HTTP/1.1 and HTTP/2, real TLS).

Backends trust these headers because a TLS-terminating proxy normally sets them; a client that
sends them itself would claim a certificate or address it does not have.
"""

from __future__ import annotations

import sys

import pytest

from certgate.gateway.stripping import request_header_rules
from certgate.limits import Limits
from tests.gateway.conftest import operation_pipeline, start_gateway
from tests.gateway.support import curl, run

FORGED = [
    ("X-ARR-ClientCert", "MIIB...forged"),
    ("X-Forwarded-Client-Cert", 'Hash=00;Subject="CN=admin"'),
    ("X-SSL-Client-Verify", "SUCCESS"),
    ("X-SSL-Client-S-DN", "CN=admin"),
    ("x-ssl-client-cert", "forged"),
    ("X-Client-Cert", "forged"),
    ("X-Client-Certificate-Thumbprint", "00"),
    ("Forwarded", "for=10.0.0.1;proto=https"),
    ("X-Real-IP", "10.0.0.1"),
    ("Client-Cert", ":AAAA:"),
    ("Client-Cert-Chain", ":AAAA:"),
]
KEPT = [("X-Request-Note", "kept"), ("X-SSL-Offload", "kept"), ("X-Clientcert-Hint", "kept")]
# The policy reports what it saw of two forged headers, so "before policies run" is observable.
SEEING = """<policies><inbound>
<set-header name="X-Policy-Saw" exists-action="override"><value>@(
  context.Request.Headers.GetValueOrDefault("X-Real-IP", "-") + "|" +
  context.Request.Headers.GetValueOrDefault("X-Tenant-Id", "-"))</value></set-header>
</inbound><backend><forward-request timeout="5"/></backend><outbound/><on-error/></policies>"""


async def _gateway(certs, backend, forwarder, limits: Limits):
    apis = {"api": {"path": "api", "serviceUrl": backend.url, "protocols": ["https"]}}
    operations = {"api": {"all": {"method": "*", "urlTemplate": "/*"}}}
    pipelines = {"all": operation_pipeline(SEEING)}
    return await start_gateway(certs, forwarder, apis, operations, pipelines, limits=limits)


async def _received(server, headers, version: str, tmp) -> dict[str, str]:
    args = [arg for name, value in headers for arg in ("-H", f"{name}: {value}")]
    reply = await curl(server.https_port, "/api/echo", version, "-k", *args, tmp=tmp)
    assert reply.status == 200, reply.body
    return {name.lower(): value for name, value in reply.json()["headers"]}


VERSIONS = pytest.mark.parametrize("version", ["--http1.1", "--http2"])


@VERSIONS
async def test_default_identity_headers_are_stripped(certs, backend, forwarder, tmp_path, version):
    server = await _gateway(certs, backend, forwarder, Limits())
    try:
        seen = await _received(server, FORGED + KEPT, version, tmp_path)
    finally:
        await server.close()
    for name, _ in FORGED:
        assert name.lower() not in seen
    for name, value in KEPT:
        assert seen[name.lower()] == value
    assert seen["x-policy-saw"] == "-|-"
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the gateway's own, as APIM adds it


@VERSIONS
async def test_the_stripped_list_is_configurable(certs, backend, forwarder, tmp_path, version):
    limits = Limits(strip_request_headers="x-tenant-*, X-Custom-Id")
    server = await _gateway(certs, backend, forwarder, limits)
    try:
        sent = [("X-Tenant-Id", "t1"), ("x-tenant-role", "admin"), ("X-Custom-Id", "7")]
        seen = await _received(server, sent + FORGED, version, tmp_path)
    finally:
        await server.close()
    assert not {"x-tenant-id", "x-tenant-role", "x-custom-id"} & set(seen)
    assert seen["x-real-ip"] == "10.0.0.1"  # no longer in the list: passed on
    assert seen["x-policy-saw"] == "10.0.0.1|-"
    assert "client-cert" not in seen and "client-cert-chain" not in seen  # always


async def test_an_empty_list_strips_only_client_cert(certs, backend, forwarder, tmp_path):
    server = await _gateway(certs, backend, forwarder, Limits(strip_request_headers=""))
    try:
        seen = await _received(server, FORGED, "--http1.1", tmp_path)
    finally:
        await server.close()
    assert seen["x-arr-clientcert"] == "MIIB...forged"
    assert "client-cert" not in seen


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("x-a,bad name", "'bad name' is not a header name"),
        ("x-*-b", "'x-\\*-b' is not a header name"),
        ("host", "'host' is a header the gateway itself handles"),
        ("Content-Length", "'Content-Length' is a header the gateway itself handles"),
    ],
)
def test_a_bad_list_is_refused_naming_the_flag(spec: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"--strip-request-headers: {reason}"):
        request_header_rules(spec)


async def test_certgate_serve_refuses_a_bad_list_before_starting(tmp_path):
    data_dir = tmp_path / "data"
    code, _, err = await run(
        sys.executable, "-m", "certgate.cli", "serve", "--data-dir", str(data_dir),
        "--strip-request-headers", "x-ssl-client-*,X-Forwarded-For",
    )  # fmt: skip
    assert code == 1
    assert (
        "--strip-request-headers: 'X-Forwarded-For' is a header the gateway itself" in err.decode()
    )
    assert not data_dir.exists()  # nothing was created
