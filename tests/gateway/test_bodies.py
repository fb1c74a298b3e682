"""Large bodies with a client certificate on a negotiating hostname, over HTTP/1.1 and HTTP/2.

APIM's renegotiation deadlock starts around 60 KB; here the certificate is requested in the initial
handshake, so 10 MB uploads simply work.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl

import httpx
import pytest

from tests.gateway.conftest import NEGOTIATING
from tests.gateway.support import curl

TEN_MB = 10 * 1024 * 1024


def h2_client(certs, port: int) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    context.load_cert_chain(str(certs.self_signed.cert), str(certs.self_signed.key))
    return httpx.AsyncClient(
        http2=True, verify=context, base_url=f"https://localhost:{port}", timeout=30
    )


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_10mb_upload_over_http11_with_client_certificate(gateway, certs, tmp_path, method):
    payload = tmp_path / "ten.bin"
    data = os.urandom(TEN_MB)
    payload.write_bytes(data)
    reply = await curl(
        gateway.https_port,
        "/echo/upload",
        "-X",
        method,
        "--data-binary",
        f"@{payload}",
        "-H",
        "Content-Type: application/octet-stream",
        host=NEGOTIATING,
        ca=certs.ca_file,
        identity=certs.trusted,
        tmp=tmp_path,
    )
    assert reply.status == 200, reply.stderr
    assert reply.json() == {"received": TEN_MB, "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_10mb_upload_and_download_over_http2_with_client_certificate(gateway, certs, method):
    data = os.urandom(TEN_MB)
    async with h2_client(certs, gateway.https_port) as client:
        up = await client.request(method, "/echo/upload", content=data)
        down = await client.get(f"/echo/download/{TEN_MB}")
        echo = await client.get("/echo/users/9")
    assert up.http_version == "HTTP/2"
    assert up.status_code == 200
    assert up.json() == {"received": TEN_MB, "sha256": hashlib.sha256(data).hexdigest()}
    assert down.status_code == 200
    assert len(down.content) == TEN_MB
    seen = {k.lower(): v for k, v in echo.json()["headers"]}
    assert seen["x-client-thumbprint"] == certs.issued["self_signed"].thumbprint
    assert seen["x-forwarded-proto"] == "https"


async def test_http2_concurrent_streams_share_one_connection(gateway, certs):
    import asyncio

    async with h2_client(certs, gateway.https_port) as client:
        replies = await asyncio.gather(*(client.get(f"/echo/users/{n}") for n in range(20)))
    assert [r.status_code for r in replies] == [200] * 20
    assert [r.json()["target"] for r in replies] == [f"/users/{n}" for n in range(20)]
    assert {r.http_version for r in replies} == {"HTTP/2"}


async def test_http2_stream_reset_mid_download_releases_the_backend_connection(
    gateway, certs, backend
):
    from h2.connection import H2Connection
    from h2.events import DataReceived

    from tests.gateway.test_failures import until

    context = ssl.create_default_context(cafile=str(certs.ca_file))
    context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", gateway.https_port, ssl=context, server_hostname="localhost"
    )
    h2 = H2Connection()
    h2.initiate_connection()
    h2.send_headers(
        1,
        [
            (":method", "GET"),
            (":path", "/echo/download/500000000"),
            (":scheme", "https"),
            (":authority", "localhost"),
        ],
        end_stream=True,
    )
    writer.write(h2.data_to_send())
    received = 0
    async with asyncio.timeout(10):
        while received < 200_000:
            for event in h2.receive_data(await reader.read(65536)):
                if isinstance(event, DataReceived):
                    received += len(event.data)
                    h2.acknowledge_received_data(event.flow_controlled_length, 1)
            writer.write(h2.data_to_send())
    assert len(backend.connections) == 1
    h2.reset_stream(1)
    writer.write(h2.data_to_send())
    await until(lambda: len(backend.connections) == 0)
    writer.close()


class _Wire:
    """A transport that hands what the server writes to an in-memory h2 client."""

    def __init__(self, client) -> None:
        self.client = client

    def write(self, data: bytes) -> None:
        self.client.receive_data(data)

    def get_extra_info(self, name, default=None):
        return default


async def test_http2_unread_bodies_give_their_flow_control_credit_back():
    from h2.connection import H2Connection

    from certgate.gateway.exchange import ConnectionInfo
    from certgate.gateway.http2 import HTTP2Protocol

    async def answer_without_reading(exchange) -> None:
        while not exchange.body.complete:  # the whole body arrived, nobody read it
            await asyncio.sleep(0)
        await exchange.respond(404, "Not Found", [], b"")

    client = H2Connection()
    client.initiate_connection()
    server = HTTP2Protocol(answer_without_reading, ConnectionInfo("https", None, None))
    server.connection_made(_Wire(client))
    server.data_received(client.data_to_send())
    window = client.outbound_flow_control_window
    for stream_id in range(1, 61, 2):  # 30 x 192 kB: more than the whole connection window
        headers = [(":method", "POST"), (":path", "/x"), (":scheme", "https"), (":authority", "a")]
        client.send_headers(stream_id, headers)
        for last in [False] * 11 + [True]:
            client.send_data(stream_id, b"u" * 16_384, end_stream=last)
        server.data_received(client.data_to_send())
        async with asyncio.timeout(5):
            while server._streams:
                await asyncio.sleep(0)
    assert client.outbound_flow_control_window >= window // 2  # h2 batches WINDOW_UPDATEs
