"""End to end: httpx -> certgate's gateway (TLS) -> policies -> Forwarder -> mTLS backend."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from certgate.certs.material import CertificateMaterial
from certgate.gateway.config import HostnameConfig, build_gateway_config
from certgate.gateway.server import GatewayServer
from certgate.gateway.upstream import compile_backend
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.engine import compile_pipeline
from certgate.policy.loader import parse_document
from tests.upstream.conftest import snapshot

POLICIES = {
    "a": "<authentication-certificate certificate-id='a'/>",
    "entity": "<set-backend-service backend-id='be'/>",
    "none": "",
}


def _pipeline(inbound: str):
    catalog = MemoryCatalog(paths={"certificates/a", "certificates/b", "backends/be"})
    text = (
        f"<policies><inbound>{inbound}</inbound><backend><forward-request timeout='5'/>"
        "</backend><outbound/><on-error/></policies>"
    )
    return compile_pipeline(None, None, parse_document(text, "api", catalog))


@pytest.fixture
async def gateway(certs, backend, forwarder):
    snap = snapshot(certs, a=certs.a, b=certs.b)
    snap.backends["be"] = compile_backend(
        "be",
        {"url": backend.url(), "credentials": {"certificateIds": ["b"]}},
        snap.certificates_by_id,
        snap.certificates_by_thumbprint,
    )
    server_cert = certs.server
    config = build_gateway_config(
        revision=1,
        hostnames=[
            HostnameConfig(
                "localhost",
                CertificateMaterial(server_cert.cert, server_cert.key, tuple(server_cert.chain)),
                default_ssl_binding=True,
            )
        ],
        apis={name: {"path": name, "serviceUrl": backend.url()} for name in POLICIES},
        operations={name: {"all": {"method": "*", "urlTemplate": "/*"}} for name in POLICIES},
        pipeline_for=lambda api_id, _op: _pipeline(POLICIES[api_id]),
        snapshot=snap,
    )
    server = GatewayServer(config, forwarder=forwarder)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


async def test_each_api_presents_its_certificate_under_concurrency(certs, gateway):
    context = ssl.create_default_context(cadata=certs.root.cert_pem.decode())
    expected = {"a": certs.a.thumbprint, "entity": certs.b.thumbprint, "none": None}
    base = f"https://localhost:{gateway.https_port}"
    async with httpx.AsyncClient(verify=context, base_url=base, timeout=10) as client:

        async def one(i: int) -> None:
            api = list(expected)[i % 3]
            response = await client.get(f"/{api}/item/{i}")
            assert response.status_code == 200, response.text
            seen = response.json()
            assert seen["path"] == f"/item/{i}"
            assert seen["thumbprint"] == expected[api]

        await asyncio.gather(*(one(i) for i in range(120)))


async def test_backend_down_gives_500_backend_connection_failure(certs, gateway, backend):
    await backend.stop()
    context = ssl.create_default_context(cadata=certs.root.cert_pem.decode())
    url = f"https://localhost:{gateway.https_port}/none/x"
    async with httpx.AsyncClient(verify=context, timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 500
    assert "Traceback" not in response.text
