"""Configuration changes apply to the next connection or request, without a restart."""

from __future__ import annotations

import asyncio

from certgate.gateway.config import HostnameConfig
from tests import pki
from tests.gateway.conftest import PLAIN, apis, hostnames, make_config
from tests.gateway.support import curl, material
from tests.gateway.test_tls import CERT_REQUEST, s_client


async def test_new_api_is_served_after_update(gateway, certs, backend, tmp_path):
    before = await curl(gateway.http_port, "/fresh/users/1", scheme="http", tmp=tmp_path)
    api_map, operations = apis(backend.url)
    api_map["fresh"] = {"path": "fresh", "serviceUrl": backend.url, "protocols": ["http"]}
    operations["fresh"] = {"one": {"method": "GET", "urlTemplate": "/users/{id}"}}
    gateway.update(make_config(certs, backend.url, 2, apis=api_map, operations=operations))
    after = await curl(gateway.http_port, "/fresh/users/1", scheme="http", tmp=tmp_path)
    assert before.status == 404
    assert after.status == 200
    assert after.json()["target"] == "/users/1"
    assert gateway.config.revision == 2


async def test_in_flight_request_finishes_on_the_old_config(gateway, certs, backend):
    size = 20_000_000
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
    writer.write(f"GET /echo/download/{size}?length HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    gateway.update(make_config(certs, backend.url, 3, apis={}, operations={}))
    body = await reader.readexactly(size)
    writer.write(b"GET /echo/users/1 HTTP/1.1\r\nHost: a\r\n\r\n")
    next_head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == size
    assert next_head.startswith(b"HTTP/1.1 404")


async def test_negotiation_switch_and_certificate_rotation_apply_to_new_connections(
    gateway, certs, backend
):
    before = await s_client(gateway.https_port, "-servername", PLAIN)
    rotated = pki.server(certs.ca, PLAIN)
    changed = [
        h if h.hostname != PLAIN else HostnameConfig(PLAIN, material(rotated), True)
        for h in hostnames(certs)
    ]
    gateway.update(make_config(certs, backend.url, 4, hostnames=changed))
    after = await s_client(gateway.https_port, "-servername", PLAIN, "-showcerts")
    assert CERT_REQUEST not in before
    assert CERT_REQUEST in after
    assert rotated.cert_pem.split(b"\n")[1] in after  # the new server certificate is served
