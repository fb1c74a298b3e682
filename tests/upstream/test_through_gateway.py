"""End to end: httpx -> certgate's gateway (TLS) -> policies -> Forwarder -> mTLS backend."""

from __future__ import annotations

import asyncio

import pytest

from tests.upstream.conftest import snapshot, with_backend
from tests.upstream.policy_gateway import client, document, start_gateway

POLICIES = {
    "a": "<authentication-certificate certificate-id='a'/>",
    "entity": "<set-backend-service backend-id='be'/>",
    "none": "",
}


@pytest.fixture
async def gateway(certs, backend, forwarder):
    snap = snapshot(certs, a=certs.a, b=certs.b)
    snap = with_backend(snap, {"url": backend.url(), "credentials": {"certificateIds": ["b"]}})
    documents = {name: document(inbound) for name, inbound in POLICIES.items()}
    server = await start_gateway(certs, forwarder, snap, documents, backend.url())
    yield server
    await server.close()


async def test_each_api_presents_its_certificate_under_concurrency(certs, gateway):
    expected = {"a": certs.a.thumbprint, "entity": certs.b.thumbprint, "none": None}
    async with client(certs, gateway) as http:

        async def one(i: int) -> None:
            api = list(expected)[i % 3]
            response = await http.get(f"/{api}/item/{i}")
            assert response.status_code == 200, response.text
            seen = response.json()
            assert seen["path"] == f"/item/{i}"
            assert seen["thumbprint"] == expected[api]

        await asyncio.gather(*(one(i) for i in range(120)))


async def test_backend_down_gives_500_backend_connection_failure(certs, gateway, backend):
    await backend.stop()
    async with client(certs, gateway) as http:
        response = await http.get("/none/x")
    assert response.status_code == 500
    assert "Traceback" not in response.text
