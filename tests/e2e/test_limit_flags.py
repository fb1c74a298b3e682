"""`certgate serve` limit flags reach every gateway worker's backend leg (`Limits` through the
Snapshot builder to each process's Forwarder)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator

import pytest

from tests.e2e.serve import EchoBackend, Served

READS_BODY = """<policies><inbound><base/>
<set-variable name="body" value="@(context.Request.Body.As&lt;string&gt;(preserveContent: true))"/>
</inbound><backend><base/></backend><outbound><base/></outbound><on-error><base/></on-error>
</policies>"""
CONNECTIONS = 12  # fresh connections per round: SO_REUSEPORT spreads them over both workers
GIVE_UP = 15.0


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Iterator[Served]:
    flags = ("--max-buffered-body-bytes", "1024")
    server = Served.start(tmp_path_factory.mktemp("limits"), workers=2, options=flags)
    yield server
    server.stop()


async def _post(port: int, context: ssl.SSLContext, size: int) -> int:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    head = f"POST /limited/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n"
    writer.write(head.encode() + b"b" * size)
    status_line = await reader.readline()
    writer.transport.abort()
    return int(status_line.split()[1]) if status_line else 0


async def _round(served: Served, size: int) -> set[int]:
    context = ssl.create_default_context(cafile=served.dev_ca)
    port = served.gateway_port
    return set(await asyncio.gather(*(_post(port, context, size) for _ in range(CONNECTIONS))))


async def test_buffered_body_flag_applies_in_every_worker(limited: Served, backend: EchoBackend):
    with limited.http() as http:
        api = {"displayName": "limited", "path": "limited", "serviceUrl": backend.url}
        assert http.put("/apis/limited", json={"properties": api}).is_success
        operation = {"displayName": "all", "method": "*", "urlTemplate": "/*"}
        assert http.put("/apis/limited/operations/all", json={"properties": operation}).is_success
        policy = {"format": "rawxml", "value": READS_BODY}
        written = http.put("/apis/limited/policies/policy", json={"properties": policy})
    assert written.is_success, written.text
    deadline = time.monotonic() + GIVE_UP
    while (statuses := await _round(limited, 512)) != {200}:  # until both workers serve it
        assert time.monotonic() < deadline, statuses
    assert await _round(limited, 2048) == {413}
