"""Rotation under load: the whole stack in one process, as `certgate serve` wires it.

Management API (HTTPS) -> store <- refresher (real OpenBao, 0.5 s interval) -> on_change ->
SnapshotBuilder -> GatewayServer -> authentication-certificate -> mTLS echo backend answering
with the thumbprint of the client certificate it saw. Clients hammer the gateway while the vault
gets a new version of both the backend client certificate and the hostname's server certificate.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import time

import httpx

from certgate.certs.keyvault import KeyVault
from certgate.gateway.server import GatewayServer
from certgate.management.keyvault import create_refresher
from certgate.snapshot.compiler import SnapshotBuilder
from tests import pki
from tests.management.server import management_server
from tests.upstream.echo import EchoBackend

POLICY = (
    "<policies><inbound><base /><authentication-certificate certificate-id='client' />"
    "</inbound><backend><forward-request timeout='10' /></backend><outbound><base /></outbound>"
    "<on-error><base /></on-error></policies>"
)


def configure(api: httpx.Client, bao, ca: pki.Issued, backend_url: str) -> None:
    for name in ("client", "server"):
        body = {"properties": {"keyVault": {"secretIdentifier": bao.url(f"load/{name}")}}}
        assert api.put(f"/certificates/{name}", json=body).status_code == 201
    service = {
        "certificates": [
            {"storeName": "Root", "encodedCertificate": base64.b64encode(ca.der).decode()}
        ],
        "hostnameConfigurations": [
            {
                "type": "Proxy",
                "hostName": "localhost",
                "certificateId": "server",
                "defaultSslBinding": True,
            }
        ],
    }
    assert api.patch("/", json={"properties": service}).status_code == 200, "service"
    api_body = {"properties": {"path": "echo", "serviceUrl": backend_url, "protocols": ["https"]}}
    assert api.put("/apis/echo", json=api_body).status_code in (200, 201)
    operation = {"properties": {"method": "*", "urlTemplate": "/*", "displayName": "all"}}
    assert api.put("/apis/echo/operations/all", json=operation).status_code in (200, 201)
    policy = {"properties": {"format": "rawxml", "value": POLICY}}
    response = api.put("/apis/echo/policies/policy", json=policy)
    assert response.status_code in (200, 201), response.text


async def server_thumbprint(port: int, context: ssl.SSLContext) -> str:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return hashlib.sha1(der).hexdigest().upper()


async def test_rotation_under_concurrent_traffic_fails_no_request(
    bao, store, root_credentials, tmp_path
):
    ca = pki.ca("Rotation CA")
    client_v1, client_v2 = ca.issue("gw-client-1"), ca.issue("gw-client-2")
    server_v1, server_v2 = pki.server(ca, "localhost"), pki.server(ca, "localhost")
    bao.put_pfx("load/client", client_v1.pfx(None))
    bao.put_pfx("load/server", server_v1.pfx(None))
    backend = await EchoBackend.start(pki.server(ca, "localhost"), ca)
    vault = KeyVault(root_credentials)
    dev = pki.server(pki.ca("Dev CA"), "localhost")
    builder = SnapshotBuilder(store, dev_server_pem=dev.cert_pem + dev.key_pem)
    gateway: GatewayServer | None = None
    refresher = None
    try:
        with management_server(tmp_path / "mgmt", store=store, key_vault=vault) as management:
            http = management.client(timeout=30)
            with http as api:
                await asyncio.to_thread(configure, api, bao, ca, backend.url())
        gateway = GatewayServer(await asyncio.to_thread(builder.build))
        await gateway.start("127.0.0.1", 0)
        rebuilds = 0

        async def rebuild() -> None:
            nonlocal rebuilds
            if store.revision() != builder.revision:
                gateway.update(await asyncio.to_thread(builder.build))
                rebuilds += 1

        refresher = create_refresher(store, vault, refresh_interval=0.5, on_change=rebuild)
        refresher.start()
        context = ssl.create_default_context(cadata=ca.cert_pem.decode())
        assert await server_thumbprint(gateway.https_port, context) == server_v1.thumbprint

        seen: list[str] = []
        failures: list[str] = []
        stop = asyncio.Event()
        base = f"https://localhost:{gateway.https_port}"

        async def client(worker: int) -> None:
            async with httpx.AsyncClient(verify=context, base_url=base, timeout=10) as http:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        response = await http.get(f"/echo/{worker}/{i}")
                    except httpx.HTTPError as error:
                        failures.append(repr(error))
                        continue
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                        continue
                    seen.append(response.json()["thumbprint"])

        workers = [asyncio.create_task(client(n)) for n in range(8)]
        deadline = time.monotonic() + 10
        while len(seen) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        rotated_at = time.monotonic()
        bao.put_pfx("load/client", client_v2.pfx(None))
        bao.put_pfx("load/server", server_v2.pfx(None))
        while time.monotonic() < rotated_at + 5 and (
            client_v2.thumbprint not in seen[-20:]
            or await server_thumbprint(gateway.https_port, context) != server_v2.thumbprint
        ):
            await asyncio.sleep(0.02)
        picked_up = time.monotonic() - rotated_at
        settled = len(seen)
        while len(seen) < settled + 40 and time.monotonic() < deadline + 10:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*workers)

        assert failures == []
        assert picked_up < 0.5 * 1.1 + 2.0, picked_up  # one interval (+ jitter) + rebuild + slack
        assert client_v1.thumbprint in seen and client_v2.thumbprint in seen
        assert set(seen) == {client_v1.thumbprint, client_v2.thumbprint}
        assert set(seen[settled:]) == {client_v2.thumbprint}  # new requests use the new one
        assert await server_thumbprint(gateway.https_port, context) == server_v2.thumbprint
        assert rebuilds >= 1
    finally:
        if refresher is not None:
            await refresher.stop()
        if gateway is not None:
            await gateway.close()
        builder.close()
        await backend.stop()
