"""The HTTP/1.1 leg: headers, framing, streaming both ways, keep-alive, failures."""

from __future__ import annotations

import asyncio
import hashlib
import json
import resource
import socket

import pytest

from certgate.gateway.body import HIGH_WATER
from certgate.gateway.upstream import ResponseBody
from certgate.gateway.upstream.connection import UpstreamConnection
from certgate.gateway.upstream.pool import Origin, Pools
from certgate.httpsyntax import UnsafeHead
from certgate.limits import Limits
from certgate.policy.errors import BackendError
from certgate.policy.forwarding import ForwardOptions
from tests.upstream.conftest import make_context, send, snapshot, wait_for
from tests.upstream.echo import EchoBackend


class Upload:
    """A request body stream of `count` chunks of `size` bytes, produced on demand."""

    def __init__(self, count: int, size: int = 65536) -> None:
        self.count, self.size = count, size
        self.sha = hashlib.sha256()
        self.sent = 0

    def __aiter__(self):
        return self._chunks()

    async def _chunks(self):
        for i in range(self.count):
            chunk = bytes([i % 251]) * self.size
            self.sha.update(chunk)
            self.sent += len(chunk)
            yield chunk

    async def read_all(self) -> bytes:
        return b"".join([c async for c in self])


async def test_hop_by_hop_headers_removed_and_host_set(certs, backend, forwarder):
    headers = [
        ("Host", "gw.example.test"),
        ("Connection", "keep-alive, X-Private"),
        ("X-Private", "secret-hop"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Proxy-Authorization", "Basic eA=="),
        ("X-Forwarded-For", "10.0.0.9"),
        ("Accept", "application/json"),
    ]
    context = make_context(backend.url(), snapshot(certs), path="/a%20b?q=1", headers=headers)
    seen = await send(forwarder, context)
    names = {name.lower(): value for name, value in seen["headers"]}
    assert names["host"] == f"localhost:{backend.port}"
    assert names["accept"] == "application/json"
    assert names["x-forwarded-for"] == "10.0.0.9"
    for hop in ("connection", "x-private", "keep-alive", "te", "upgrade", "proxy-authorization"):
        assert hop not in names
    assert seen["path"] == "/a%20b?q=1"


async def test_host_set_by_a_policy_is_kept(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs), headers=[("Host", "api.internal")])
    seen = await send(forwarder, context)
    assert dict(seen["headers"])["Host"] == "api.internal"


async def test_base_url_path_is_prefixed(certs, backend, forwarder):
    context = make_context(backend.url() + "/v2/", snapshot(certs), path="/items?id=3")
    assert (await send(forwarder, context))["path"] == "/v2/items?id=3"


async def test_bytes_body_gets_content_length(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs), method="POST", body=b"hello")
    seen = await send(forwarder, context)
    assert seen["body_len"] == 5
    assert ("Content-Length", "5") in [tuple(h) for h in seen["headers"]]


async def test_empty_post_sends_content_length_zero(certs, backend, forwarder):
    seen = await send(forwarder, make_context(backend.url(), snapshot(certs), method="POST"))
    assert ("Content-Length", "0") in [tuple(h) for h in seen["headers"]]


@pytest.mark.parametrize("declared", [True, False])
async def test_streamed_upload(certs, backend, forwarder, declared):
    upload = Upload(64)  # 4 MB
    headers = [("Content-Length", str(64 * 65536))] if declared else []
    context = make_context(
        backend.url(), snapshot(certs), method="PUT", headers=headers, body=upload
    )
    seen = await send(forwarder, context)
    assert seen["body_len"] == 64 * 65536
    assert seen["body_sha256"] == upload.sha.hexdigest()
    framing = {name.lower() for name, _ in seen["headers"]}
    assert ("content-length" if declared else "transfer-encoding") in framing


async def test_echoed_upload_streams_both_ways(certs, backend, forwarder):
    upload = Upload(32)
    context = make_context(backend.url(), snapshot(certs), path="/echo", method="POST", body=upload)
    await forwarder.forward(context)
    body = context.Response.Body.stream()
    assert isinstance(body, ResponseBody)
    digest = hashlib.sha256()
    async for chunk in body:
        digest.update(chunk)
    assert digest.hexdigest() == upload.sha.hexdigest()


async def test_large_download_streams_in_bounded_memory(certs, backend, forwarder):
    size = 256 * 1024 * 1024
    context = make_context(backend.url(), snapshot(certs), path=f"/bytes/{size}")
    await forwarder.forward(context)
    assert context.Response.Headers.GetValueOrDefault("Content-Length") == str(size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    received = 0
    async for chunk in context.Response.Body.stream():
        received += len(chunk)
    assert received == size
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 64 * 1024, f"peak RSS grew by {grown_kb} KB"


async def test_small_response_arrives_as_bytes(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs))
    await forwarder.forward(context)
    assert isinstance(context.Response.Body.stream(), bytes)  # the writer's fast path


async def test_head_response_has_no_body_and_connection_is_reused(certs, backend, forwarder):
    snap = snapshot(certs)
    context = make_context(backend.url(), snap, method="HEAD")
    await forwarder.forward(context)
    assert context.Response.StatusCode == 200
    assert context.Response.Body.stream() == b""
    seen = await send(forwarder, make_context(backend.url(), snap))
    assert seen["connection"] == 1


async def test_keep_alive_reuses_one_connection(certs, backend, forwarder):
    snap = snapshot(certs)
    for _ in range(5):
        seen = await send(forwarder, make_context(backend.url(), snap))
    assert seen["connection"] == 1
    assert backend.connections == 1


async def test_connection_close_is_honoured(certs, backend, forwarder):
    snap = snapshot(certs)
    first = await send(forwarder, make_context(backend.url(), snap, path="/close"))
    second = await send(forwarder, make_context(backend.url(), snap))
    assert second["connection"] == first["connection"] + 1


async def test_stale_pooled_connection_is_retried_once(certs, backend, forwarder):
    snap = snapshot(certs)
    await send(forwarder, make_context(backend.url(), snap))
    pool = forwarder.pools.pools()[0]
    (idle,) = pool.idle
    for transport in list(backend.open):
        transport.abort()  # the backend dropped its keep-alive connection
    await wait_for(lambda: idle.closed or not backend.open)
    seen = await send(forwarder, make_context(backend.url(), snap))
    assert seen["connection"] == 2


async def test_idle_connections_close_after_the_idle_timeout(certs, backend):
    from certgate.gateway.upstream import Forwarder

    forwarder = Forwarder(Limits(backend_idle_timeout=0.2))
    try:
        await send(forwarder, make_context(backend.url(), snapshot(certs)))
        assert len(backend.open) == 1
        await wait_for(lambda: not backend.open)
        assert forwarder.pools.pools() == []
    finally:
        forwarder.close()


async def test_timeout_gives_reason_timeout(certs, backend, forwarder, caplog):
    context = make_context(backend.url(), snapshot(certs), path="/slow")
    with pytest.raises(BackendError) as failure:
        await forwarder.forward(context, ForwardOptions(timeout=0.3))
    assert failure.value.reason == "Timeout"
    await wait_for(lambda: not backend.open)  # the hung connection is not pooled


async def test_connection_refused_gives_backend_connection_failure(certs, forwarder, caplog):
    server = await EchoBackend.start()
    url = server.url("127.0.0.1")
    await server.stop()
    with pytest.raises(BackendError) as failure:
        await forwarder.forward(make_context(url, snapshot(certs)))
    assert failure.value.reason == "BackendConnectionFailure"
    assert "refused" in failure.value.message.lower()
    assert "refused" in caplog.text.lower()


async def test_plain_http_backend(certs, forwarder):
    server = await EchoBackend.start()
    try:
        context = make_context(server.url("127.0.0.1"), snapshot(certs))
        context.backend_certificate = certs.a  # meaningless without TLS: ignored
        seen = await send(forwarder, context)
        assert seen["thumbprint"] is None
    finally:
        await server.stop()


async def test_abandoned_response_closes_its_connection(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs), path=f"/bytes/{64 * 1024 * 1024}")
    await forwarder.forward(context)
    body = context.Response.Body.stream()
    await body.__anext__()
    body.close()
    await wait_for(lambda: not backend.open)
    seen = await send(forwarder, make_context(backend.url(), snapshot(certs)))
    assert seen["connection"] == 2


async def test_response_headers_and_status_reach_the_context(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs))
    await forwarder.forward(context)
    response = context.Response
    assert (response.StatusCode, response.StatusReason) == (200, "OK")
    assert response.Headers.GetValueOrDefault("content-type") == "application/json"
    assert json.loads(await response.Body.buffer())["method"] == "GET"


async def test_concurrent_requests_open_parallel_connections(certs, backend, forwarder):
    snap = snapshot(certs)
    results = await asyncio.gather(
        *(send(forwarder, make_context(backend.url(), snap)) for _ in range(20))
    )
    assert all(r["thumbprint"] is None for r in results)
    assert backend.connections <= 20


async def test_early_response_stops_the_upload(certs, backend, forwarder):
    upload = Upload(4096)  # 256 MB, far more than the backend will read
    context = make_context(backend.url(), snapshot(certs), path="/early", method="PUT", body=upload)
    await forwarder.forward(context)
    assert context.Response.StatusCode == 413
    assert upload.sent < 64 * 1024 * 1024


async def test_cancelled_request_closes_its_upstream_connection(certs, backend, forwarder):
    for _ in range(10):  # cancelled at varying points: handshake, request written, waiting
        context = make_context(backend.url(), snapshot(certs), path="/slow")
        task = asyncio.ensure_future(forwarder.forward(context))
        await wait_for(lambda: backend.open)
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_for(lambda: not backend.open)
    assert all(not pool.connections for pool in forwarder.pools.pools())


async def test_header_with_a_line_break_is_never_sent(certs, backend, forwarder):
    headers = [("X-Bad", "a\r\nX-Injected: 1")]
    with pytest.raises(UnsafeHead, match="CR, LF or NUL"):
        await forwarder.forward(make_context(backend.url(), snapshot(certs), headers=headers))
    assert backend.connections == 0


async def test_body_delimited_by_connection_close(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs), path="/eof")
    await forwarder.forward(context)
    assert await context.Response.Body.buffer() == b"until-eof"
    await wait_for(lambda: not backend.open)


async def test_interim_100_response_is_skipped(certs, backend, forwarder):
    seen = await send(forwarder, make_context(backend.url(), snapshot(certs), path="/continue"))
    assert seen["path"] == "/continue"


async def test_response_hop_by_hop_headers_are_not_passed_on(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs), path="/echo", method="POST", body=b"x")
    await forwarder.forward(context)
    assert not context.Response.Headers.ContainsKey("Transfer-Encoding")
    assert await context.Response.Body.buffer() == b"x"


async def test_stalled_response_body_times_out(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs), path="/stall")
    await forwarder.forward(context, ForwardOptions(timeout=0.3))
    body = context.Response.Body.stream()
    assert await body.__anext__() == b"12345"
    with pytest.raises(BackendError) as failure:
        await body.__anext__()
    assert failure.value.reason == "Timeout"
    await wait_for(lambda: not backend.open)


class _Stalled:
    """A request body whose client sends one chunk, then nothing (`more` never set)."""

    def __init__(self) -> None:
        self.more = asyncio.Event()

    def __aiter__(self):
        return self._chunks()

    async def _chunks(self):
        yield b"first"
        await self.more.wait()
        yield b"never"


async def test_timeout_covers_a_stalled_upload(certs, backend, forwarder):
    headers = [("Content-Length", "1000")]
    context = make_context(
        backend.url(), snapshot(certs), method="POST", headers=headers, body=_Stalled()
    )
    started = asyncio.get_running_loop().time()
    with pytest.raises(BackendError) as failure:
        await forwarder.forward(context, ForwardOptions(timeout=0.3))
    assert failure.value.reason == "Timeout"
    assert asyncio.get_running_loop().time() - started < 3
    await wait_for(lambda: not backend.open)


async def test_timeout_covers_an_upload_the_backend_does_not_read(certs, forwarder):
    accepted: list[asyncio.StreamWriter] = []

    async def never_reads(reader, writer) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        upload = Upload(1024)  # 64 MB: far more than socket buffers hold
        context = make_context(url, snapshot(certs), method="PUT", body=upload)
        started = asyncio.get_running_loop().time()
        with pytest.raises(BackendError) as failure:
            await forwarder.forward(context, ForwardOptions(timeout=0.5))
        assert failure.value.reason == "Timeout"
        assert asyncio.get_running_loop().time() - started < 3
        assert upload.sent < 64 * 1024 * 1024
        await wait_for(lambda: all(not pool.connections for pool in forwarder.pools.pools()))
    finally:
        for writer in accepted:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_cancelled_upload_closes_its_upstream_connection(certs, backend, forwarder):
    context = make_context(
        backend.url(), snapshot(certs), method="POST", headers=[], body=_Stalled()
    )
    task = asyncio.ensure_future(forwarder.forward(context))
    await wait_for(lambda: backend.open)
    task.cancel()  # the inbound side gave up on the client's body
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: not backend.open)
    assert all(not pool.connections for pool in forwarder.pools.pools())


@pytest.fixture
async def started():
    """A real `UpstreamConnection` of a real pool over a socketpair, its request written whole;
    the test feeds the response bytes itself, as the transport would."""
    loop = asyncio.get_running_loop()
    pool = Pools().get(Origin("http", "127.0.0.1", 9, "127.0.0.1:9", 16), None)
    ours, theirs = socket.socketpair()
    transport, conn = await loop.connect_accepted_socket(lambda: UpstreamConnection(pool), ours)
    conn.start(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, loop.time() + 10, 10, True)
    yield transport, conn
    transport.abort()
    theirs.close()


async def test_body_bytes_gathered_before_the_head_is_collected_become_a_paused_stream(started):
    """The body bytes that arrive with the head wait in a list until the exchange collects the
    head; past the high-water mark they become the stream and reading pauses, nothing lost."""
    transport, conn = started
    body = bytes(range(256)) * (HIGH_WATER // 64)  # four times the high-water mark
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    conn.data_received(head + body[: HIGH_WATER + 1])  # as one read, before the collection
    assert not transport.is_reading()  # paused: the exchange has not read anything yet
    status, _, headers, stream = await conn.response_head()
    assert (status, headers) == (200, [("Content-Length", str(len(body)))])
    assert isinstance(stream, ResponseBody)
    conn.data_received(body[HIGH_WATER + 1 :])
    assert await stream.read_all() == body
    assert transport.is_reading()  # resumed once read


async def test_a_body_complete_when_its_head_is_collected_is_bytes(started):
    _, conn = started
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfi")
    conn.data_received(b"ne")
    assert (await conn.response_head())[3] == b"fine"
