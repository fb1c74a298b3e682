"""Failures become APIM-like JSON statuses, and a vanishing client leaks no backend connection."""

from __future__ import annotations

import asyncio
import time

from tests.gateway.support import curl


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.02)


async def test_backend_down_is_500_json(gateway, tmp_path):
    reply = await curl(gateway.https_port, "/down/anything", "-k", tmp=tmp_path)
    assert reply.status == 500
    body = reply.json()
    assert body["statusCode"] == 500
    assert "Traceback" not in reply.body.decode()
    assert reply.headers["content-type"].startswith("application/json")


async def test_slow_backend_is_504(gateway, tmp_path):
    reply = await curl(gateway.https_port, "/echo/slow", "-k", tmp=tmp_path)
    assert reply.status == 504
    assert reply.json()["statusCode"] == 504


async def test_client_abort_mid_upload_releases_the_backend_connection(gateway, backend):
    _, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
    writer.write(
        b"POST /echo/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 50000000\r\n\r\n"
        + b"z" * 1_000_000
    )
    await writer.drain()
    await until(lambda: len(backend.connections) == 1)
    writer.transport.abort()
    await until(lambda: len(backend.connections) == 0)
    assert sum(len(pool.connections) for pool in gateway.handler._forwarder.pools.pools()) == 0


async def test_client_abort_mid_download_releases_the_backend_connection(gateway, backend):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
    writer.write(b"GET /echo/download/500000000 HTTP/1.1\r\nHost: a\r\n\r\n")
    received = 0
    while received < 2_000_000:
        received += len(await reader.read(65536))
    writer.transport.abort()
    await until(lambda: len(backend.connections) == 0)
    assert sum(len(pool.connections) for pool in gateway.handler._forwarder.pools.pools()) == 0


async def test_unexpected_pipeline_error_is_500_json_without_details(certs, backend, tmp_path):
    from certgate.gateway.config import build_gateway_config
    from certgate.gateway.server import GatewayServer
    from tests.gateway.conftest import apis, hostnames

    class Broken:
        async def run(self, context, forwarder):
            raise RuntimeError("secret internal detail")

    api_map, operations = apis(backend.url)
    config = build_gateway_config(
        hostnames=hostnames(certs),
        apis=api_map,
        operations=operations,
        pipeline_for=lambda api_id, op_id: Broken(),
    )
    server = GatewayServer(config)
    await server.start("127.0.0.1", None, 0)
    try:
        reply = await curl(server.http_port, "/echo/users/1", scheme="http", tmp=tmp_path)
    finally:
        await server.close()
    assert reply.status == 500
    assert reply.json() == {"statusCode": 500, "message": "Internal server error"}
    assert b"secret" not in reply.body
