"""HTTP/1.1 behaviour through the whole gateway (routing, framing, headers) with real clients."""

from __future__ import annotations

import asyncio
import json

from tests.gateway.support import curl


async def raw_exchange(port: int, payload: bytes, until: bytes, count: int = 1) -> bytes:
    """Writes raw bytes on a plain-HTTP connection; reads until `until` was seen `count` times."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    data = b""
    async with asyncio.timeout(10):
        while data.count(until) < count:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
    writer.close()
    return data


def seen_headers(reply) -> dict[str, str]:
    return {k.lower(): v for k, v in reply.json()["headers"]}


async def test_unknown_api_and_unknown_operation_are_404_json(gateway, tmp_path):
    no_api = await curl(gateway.http_port, "/nothing/here", scheme="http", tmp=tmp_path)
    assert no_api.status == 404
    assert no_api.json() == {"statusCode": 404, "message": "Resource not found"}
    no_op = await curl(gateway.http_port, "/echo/search", scheme="http", tmp=tmp_path)
    assert no_op.status == 200  # falls through to the `*` `/*` operation
    gone = await curl(gateway.https_port, "/secure/x", "-X", "DELETE", "-k", tmp=tmp_path)
    assert gone.status == 404
    assert gone.json() == {"statusCode": 404, "message": "Resource not found"}


async def test_https_only_api_is_not_served_over_http(gateway, tmp_path):
    over_http = await curl(gateway.http_port, "/secure/a", scheme="http", tmp=tmp_path)
    over_https = await curl(gateway.https_port, "/secure/a", "-k", tmp=tmp_path)
    assert over_http.status == 404
    assert over_https.status == 200


async def test_path_remainder_and_query_reach_the_backend(gateway, tmp_path):
    reply = await curl(
        gateway.http_port, "/echo/search?q=caf%C3%A9&x=1", scheme="http", tmp=tmp_path
    )
    assert reply.status == 200
    assert reply.json()["target"] == "/search?q=caf%C3%A9&x=1"


async def test_forwarded_headers_set_and_hop_by_hop_removed(gateway, tmp_path):
    reply = await curl(
        gateway.http_port,
        "/echo/users/7",
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        "-H",
        "Connection: keep-alive, X-Secret-Hop",
        "-H",
        "X-Secret-Hop: 1",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "TE: trailers",
        "-H",
        "X-Custom: kept",
        scheme="http",
        tmp=tmp_path,
    )
    assert reply.status == 200
    headers = seen_headers(reply)
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == f"localhost:{gateway.http_port}"
    assert headers["x-custom"] == "kept"
    for hop in ("x-secret-hop", "keep-alive", "te", "connection"):
        assert hop not in headers
    assert reply.headers["x-backend"] == "yes"


async def test_keep_alive_and_pipelined_requests_answer_in_order(gateway):
    requests = b"".join(
        f"GET /echo/users/{n} HTTP/1.1\r\nHost: a\r\n\r\n".encode() for n in range(3)
    )
    data = await raw_exchange(gateway.http_port, requests, b"HTTP/1.1 200", count=3)
    targets = [
        json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])["target"]
        for part in data.split(b"HTTP/1.1 200 OK")[1:]
    ]
    assert targets == ["/users/0", "/users/1", "/users/2"]


async def test_chunked_request_body_and_100_continue(gateway, tmp_path):
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"a" * 300_000)
    reply = await curl(
        gateway.http_port,
        "/echo/upload",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        f"@{payload}",
        scheme="http",
        tmp=tmp_path,
    )
    assert reply.status == 200
    assert reply.json()["received"] == 300_000


async def test_malformed_request_gets_400_json(gateway):
    data = await raw_exchange(
        gateway.http_port, b"GET /echo/x HTTP/1.1\r\nBad Header\r\n\r\n", b"}"
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["statusCode"] == 400


async def test_head_request_has_no_body(gateway):
    data = await raw_exchange(
        gateway.http_port,
        b"HEAD /echo/users/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"\r\n\r\n")


async def test_idle_connections_are_closed(limited_gateway):
    gateway = await limited_gateway(idle_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed by the gateway, not by us
    writer.close()


async def test_upgrade_requests_are_answered_as_http11_then_closed(gateway):
    data = await raw_exchange(
        gateway.http_port,
        b"GET /echo/users/1 HTTP/1.1\r\nHost: a\r\n"
        b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"\x00never",
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["target"] == "/users/1"


async def test_oversized_request_head_gets_431(gateway):
    huge = b"X-Big: " + b"a" * 70_000 + b"\r\n"
    data = await raw_exchange(
        gateway.http_port, b"GET /echo/x HTTP/1.1\r\nHost: a\r\n" + huge + b"\r\n", b"}"
    )
    assert data.startswith(b"HTTP/1.1 431")
