"""A policy that reads a body buffers at most `max_buffered_body_bytes`: 413 for a larger request
body (HTTP/1.1 and HTTP/2), 502 for a larger backend response body, nothing more read."""

from __future__ import annotations

import asyncio
import json

import pytest

from certgate.limits import Limits
from tests.gateway.hostile import (
    RawConnection,
    attacked,
    connect,
    fetch,
    get,
    h2_connect,
    read_reply,
    rss_kib,
)

LIMIT = 64 * 1024
LIMITS = Limits(max_buffered_body_bytes=LIMIT)
READS_REQUEST = (
    "<set-variable name='size' "
    "value='@(context.Request.Body.As&lt;string&gt;(preserveContent: true).Length)'/>"
)
READS_RESPONSE = (
    "<set-header name='X-Size' exists-action='override'><value>"
    "@(context.Response.Body.As&lt;string&gt;(preserveContent: true).Length.ToString())"
    "</value></set-header>"
)


async def echo_size(conn: RawConnection) -> None:
    """Answers every request with the size of its body (Content-Length framed requests)."""
    while True:
        head = await conn.read_head()
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await conn.reader.readexactly(length)
        body = json.dumps({"received": length}).encode()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))


def post(length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return f"POST /h/x HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n\r\n".encode()


@pytest.fixture
async def reading_gateway(certs):
    async with attacked(certs, echo_size, LIMITS, inbound=READS_REQUEST) as running:
        yield running


async def test_request_body_under_the_limit_is_read_and_forwarded(certs, reading_gateway):
    gateway, _ = reading_gateway
    reply = await fetch(certs, gateway.port, post(LIMIT), b"b" * LIMIT)
    assert reply.status == 200
    assert reply.json() == {"received": LIMIT}


async def test_declared_length_over_the_limit_is_413_before_reading(certs, reading_gateway):
    gateway, backend = reading_gateway
    reply = await fetch(certs, gateway.port, post(256 * 1024 * 1024))  # no body byte sent
    assert reply.status == 413
    assert reply.json() == {"statusCode": 413, "message": "Payload Too Large"}
    assert reply.headers["x-reason"] == "RequestEntityTooLarge"
    assert reply.closed  # the unread body makes the connection unusable
    assert backend.accepted == 0


async def test_chunked_body_crossing_the_limit_is_413(certs, reading_gateway):
    gateway, backend = reading_gateway
    chunk = b"c" * 16384
    body = b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for _ in range(6))  # 96 KiB, no end
    reply = await fetch(certs, gateway.port, post(None), body)
    assert (reply.status, reply.headers["x-reason"]) == (413, "RequestEntityTooLarge")
    assert reply.closed
    assert backend.accepted == 0


async def test_endless_upload_is_refused_without_being_buffered(certs, reading_gateway):
    """Issue 11's replay: 256 MiB accepted into memory. Now the gateway stops reading at the
    limit, answers 413 and closes; the client cannot push more than socket buffers hold."""
    gateway, backend = reading_gateway
    reader, writer = await connect(certs, gateway.port)
    before = rss_kib()
    writer.write(post(None))
    chunk = b"z" * 65536
    frame = b"%x\r\n%b\r\n" % (len(chunk), chunk)
    sent = 0

    async def upload() -> None:
        nonlocal sent
        try:
            while sent < 256 * 1024 * 1024:
                writer.write(frame)
                await writer.drain()
                sent += len(chunk)
        except ConnectionError:
            pass

    uploading = asyncio.ensure_future(upload())
    try:
        reply = await read_reply(reader)
        assert reply.status == 413
    finally:
        writer.transport.abort()
        await uploading
    assert sent < 32 * 1024 * 1024
    assert rss_kib() - before < 64 * 1024
    assert backend.accepted == 0


async def test_http2_body_over_the_limit_is_413(certs, reading_gateway):
    from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset

    gateway, backend = reading_gateway
    reader, writer, h2 = await h2_connect(certs, gateway.port)
    results = {}
    # stream 1 declares its length, stream 3 does not and sends until it is answered
    for stream_id, declared in ((1, [("content-length", str(10 * LIMIT))]), (3, [])):
        fields = [(":method", "POST"), (":path", "/h/x"), (":scheme", "https")]
        h2.send_headers(stream_id, [*fields, (":authority", "localhost"), *declared])
        results[stream_id] = {"status": None, "body": b"", "done": False}
    writer.write(h2.data_to_send())
    sent = 0
    async with asyncio.timeout(10):
        while not all(r["done"] for r in results.values()):
            if not results[3]["done"] and sent < 100 * LIMIT:
                window = min(h2.local_flow_control_window(3), 16384)
                if window > 0:
                    h2.send_data(3, b"d" * window)
                    sent += window
                writer.write(h2.data_to_send())
            try:
                async with asyncio.timeout(0.05 if sent < 100 * LIMIT else 5):
                    data = await reader.read(65536)
            except TimeoutError:
                continue
            assert data, "the gateway closed the connection"
            for event in h2.receive_data(data):
                result = results.get(getattr(event, "stream_id", None))
                if isinstance(event, ResponseReceived):
                    result["status"] = int(dict(event.headers)[b":status"])
                elif isinstance(event, DataReceived):
                    result["body"] += event.data
                    h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, StreamEnded | StreamReset):
                    result["done"] = True
            writer.write(h2.data_to_send())
    writer.transport.abort()
    for result in results.values():
        assert result["status"] == 413
        assert json.loads(result["body"])["statusCode"] == 413
    assert sent < 4 * 1024 * 1024  # stream 3 was answered long before its 6.4 MB
    assert backend.accepted == 0


async def big_response(conn: RawConnection) -> None:
    size = 4 * LIMIT
    path = (await conn.read_head()).split(b" ")[1]
    while path.endswith(b"/small"):
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall")
        path = (await conn.read_head()).split(b" ")[1]
    if path.endswith(b"/declared"):
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        await conn.send(b"r" * size)
    else:
        await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while conn.sent < 512 * 1024 * 1024:  # endless: only the gateway's limit stops it
            await conn.send(b"4000\r\n" + b"r" * 0x4000 + b"\r\n")
    await conn.until_closed()


@pytest.mark.parametrize("path", ["/h/declared", "/h/endless"])
async def test_response_body_over_the_limit_is_502_and_closes_the_backend(certs, path):
    async with attacked(certs, big_response, LIMITS, outbound=READS_RESPONSE) as (gateway, backend):
        small = await fetch(certs, gateway.port, get("/h/small"))
        assert (small.status, small.body, small.headers["x-size"]) == (200, b"small", "5")
        reply = await fetch(certs, gateway.port, get(path))
        assert (reply.status, reply.headers["x-reason"]) == (502, "BackendConnectionFailure")
        assert reply.json()["statusCode"] == 502
        await backend.wait_for(lambda: backend.open == 0)
        assert backend.connections[-1].sent < 32 * 1024 * 1024
