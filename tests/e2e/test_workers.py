"""`certgate serve --workers 2`: every worker serves a new API within a second of the write."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator

import pytest

from tests.e2e.serve import EchoBackend, Served, listeners

CONNECTIONS = 16  # fresh connections per round; SO_REUSEPORT spreads them over both workers
DEADLINE = 1.0  # every request sent this long after the write must see the new API
GIVE_UP = 15.0


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Iterator[Served]:
    server = Served.start(tmp_path_factory.mktemp("workers"), workers=2)
    yield server
    server.stop()


async def _request(port: int, context: ssl.SSLContext, path: str) -> tuple[float, int]:
    """One request on a fresh TLS connection: when it was sent (after the handshake), status."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    sent = time.monotonic()
    status_line = await reader.readline()
    writer.close()
    return sent, int(status_line.split()[1]) if status_line else 0


async def _round(served: Served, path: str) -> list[tuple[float, int]]:
    context = ssl.create_default_context(cafile=served.dev_ca)
    port = served.gateway_port
    return await asyncio.gather(*(_request(port, context, path) for _ in range(CONNECTIONS)))


async def test_every_worker_serves_a_new_api_within_a_second(
    two_workers: Served, backend: EchoBackend
) -> None:
    assert listeners(two_workers.gateway_port) == 2
    assert {status for _, status in await _round(two_workers, "/fresh/x")} == {404}
    with two_workers.http(wait=False) as http:
        api = {"displayName": "fresh", "path": "fresh", "serviceUrl": backend.url}
        assert http.put("/apis/fresh", json={"properties": api}).is_success
        operation = {"displayName": "all", "method": "*", "urlTemplate": "/*"}
        written = http.put("/apis/fresh/operations/all", json={"properties": operation})
    assert written.is_success, written.text
    written_at = time.monotonic()
    replies: list[tuple[float, int]] = []
    while time.monotonic() - written_at < GIVE_UP:
        latest = await _round(two_workers, "/fresh/x")
        replies += latest
        if all(status == 200 for _, status in latest):
            break
    late = [
        (round(sent - written_at, 2), s) for sent, s in replies if sent - written_at >= DEADLINE
    ]
    assert all(status == 200 for _, status in latest), replies
    assert all(status == 200 for _, status in late), f"stale after {DEADLINE}s: {late}"
