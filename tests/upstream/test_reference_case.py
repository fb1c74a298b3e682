"""References by id in any case (ARM names are case-insensitive), through the real management API
and a real gateway: a policy saying `backend-id="MyBackend"` is saved against the backend stored
as `mybackend`, is served by it with its client certificate, and protects it from deletion."""

from __future__ import annotations

import asyncio
import base64
import ssl

import httpx
import pytest

from certgate.gateway.server import GatewayServer
from certgate.snapshot.compiler import SnapshotBuilder
from tests.management.server import management_server

FRAGMENT = (
    "<fragment><set-header name='X-Fragment' exists-action='override'><value>included</value>"
    "</set-header></fragment>"
)


def _policy(inbound: str) -> str:
    return (
        f"<policies><inbound><base/>{inbound}</inbound><backend><forward-request/></backend>"
        "<outbound/><on-error/></policies>"
    )


POLICIES = {
    # The backend entity in another case; the fragment and the certificate of its credentials too.
    "entity": _policy(
        "<include-fragment fragment-id='COMMON'/><set-backend-service backend-id='MyBackend'/>"
    ),
    # authentication-certificate by id in another case overrides the entity's certificate.
    "explicit": _policy(
        "<set-backend-service backend-id='MYBACKEND'/>"
        "<authentication-certificate certificate-id='OtherCert'/>"
    ),
    # An id only the request tells: resolved at run time, in one lookup.
    "dynamic": _policy("<set-backend-service backend-id='@(\"myBackEnd\")'/>"),
}


async def _put(api: httpx.AsyncClient, path: str, properties: dict) -> httpx.Response:
    return await api.put(f"/{path}", json={"properties": properties})


async def _configure(api: httpx.AsyncClient, certs, backend) -> None:
    root = {"storeName": "Root", "encodedCertificate": base64.b64encode(certs.root.der).decode()}
    patched = await api.patch("/", json={"properties": {"certificates": [root]}})
    assert patched.status_code == 200, patched.text
    steps: list[tuple[str, dict]] = [
        ("certificates/clientcert", _pfx(certs.client_a)),
        ("certificates/othercert", _pfx(certs.client_b)),
        (
            "backends/mybackend",
            {"url": backend.url(), "credentials": {"certificateIds": ["ClientCert"]}},
        ),
        ("policyFragments/common", {"value": FRAGMENT}),
    ]
    for name in POLICIES:
        steps += [
            (f"apis/{name}", {"path": name, "serviceUrl": "https://unused.invalid"}),
            (f"apis/{name}/operations/all", {"method": "*", "urlTemplate": "/*"}),
            (f"apis/{name}/policies/policy", {"value": POLICIES[name]}),
        ]
    for path, properties in steps:
        answer = await _put(api, path, properties)
        assert answer.status_code in (200, 201), (path, answer.text)


def _pfx(issued) -> dict:
    return {"data": base64.b64encode(issued.pfx("pw")).decode(), "password": "pw"}


@pytest.fixture
async def configured(certs, backend, tmp_path):
    """The management API (its client) and a gateway serving what it configured."""
    with management_server(tmp_path / "mgmt") as management:
        async with management.async_client(timeout=30) as api:
            await _configure(api, certs, backend)
            builder = SnapshotBuilder(
                management.store, dev_server_pem=certs.server.cert_pem + certs.server.key_pem
            )
            config = await asyncio.to_thread(builder.build)
            assert config.snapshot.problems == ()
            server = GatewayServer(config)
            await server.start("127.0.0.1", 0)
            context = ssl.create_default_context(cadata=certs.root.cert_pem.decode())
            base = f"https://localhost:{server.https_port}"
            try:
                async with httpx.AsyncClient(verify=context, base_url=base, timeout=30) as gw:
                    yield api, gw
            finally:
                await server.close()
                builder.close()


async def test_the_backend_named_in_another_case_serves_with_its_certificate(configured, certs):
    _, gateway = configured
    answer = await gateway.get("/entity/orders")
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["thumbprint"] == certs.client_a.thumbprint
    assert ["X-Fragment", "included"] in seen["headers"]


async def test_authentication_certificate_by_id_in_another_case(configured, certs):
    _, gateway = configured
    answer = await gateway.get("/explicit/orders")
    assert answer.status_code == 200, answer.text
    assert answer.json()["thumbprint"] == certs.client_b.thumbprint


async def test_a_backend_id_from_an_expression_in_another_case(configured, certs):
    _, gateway = configured
    answer = await gateway.get("/dynamic/orders")
    assert answer.status_code == 200, answer.text
    assert answer.json()["thumbprint"] == certs.client_a.thumbprint


@pytest.mark.parametrize(
    ("path", "referrer"),
    [
        ("backends/mybackend", "apis/entity/policies/policy"),
        ("certificates/clientcert", "backends/mybackend"),
        ("certificates/othercert", "apis/explicit/policies/policy"),
        ("policyFragments/common", "apis/entity/policies/policy"),
    ],
)
async def test_deleting_what_is_referenced_in_another_case_names_the_reference(
    configured, path, referrer
):
    api, _ = configured
    refused = await api.delete(f"/{path}", headers={"If-Match": "*"})
    assert refused.status_code == 409, refused.text
    assert referrer in [detail["target"] for detail in refused.json()["error"]["details"]]
    assert (await api.get(f"/{path}")).status_code == 200
