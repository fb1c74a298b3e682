"""HTTP/1.1 attacks replayed against a real gateway (issue 11): malformed and ambiguous heads,
trailer injection, endless heads, header floods, pipelining floods and stalled bodies. Each is
bounded in bytes and time, and each test checks that other clients are still served."""

from __future__ import annotations

import asyncio
import functools
import json
import ssl

import pytest

from certgate.gateway.workers import WorkerPool
from certgate.limits import Limits
from tests import pki
from tests.gateway.support import curl, file_config, write_file_config
from tests.gateway.test_workers import peak_rss_mb


async def exchange(port: int, *pieces: bytes, timeout: float = 10) -> bytes:
    """Writes `pieces` on a plain-HTTP connection (stopping if the gateway closes it) while
    reading; returns everything read once the gateway closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def read_all() -> bytes:
        data = b""
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except ConnectionResetError:
            pass  # input the gateway never read arrived after its close: data came first
        return data

    reading = asyncio.ensure_future(read_all())
    try:
        async with asyncio.timeout(timeout):
            for piece in pieces:
                if reading.done():
                    break
                writer.write(piece)
                await writer.drain()
            return await reading
    except ConnectionError:
        return await asyncio.wait_for(reading, timeout)
    finally:
        reading.cancel()
        writer.close()


def responses(data: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each content-length framed response in `data`."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        found.append((int(head.split(b" ", 2)[1]), rest[:length]))
        data = rest[length:]
    return found


def status_and_body(data: bytes) -> tuple[int, dict]:
    [(status, body)] = responses(data)
    return status, json.loads(body)


async def assert_still_served(port: int, tmp_path) -> None:
    reply = await curl(port, "/echo/users/1", scheme="http", tmp=tmp_path)
    assert reply.status == 200


@pytest.mark.parametrize(
    ("request_head", "message"),
    [
        (b"GET /echo/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "more than one Host header"),
        (b"GET /echo/x HTTP/1.1\r\nX-A: 1\r\n\r\n", "no Host header"),
        (b"GET /echo/x\r\n\r\n", "HTTP/0.9 is not supported"),
        (b"GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n", "malformed"),
        (b"GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A: 1\nX-B: 2\r\n\r\n", "malformed"),
        (b"GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n", "malformed"),
    ],
    ids=["two-hosts", "no-host", "http09", "bare-cr", "bare-lf", "nul"],
)
async def test_ambiguous_or_malformed_heads_get_400_and_close(
    gateway, backend, tmp_path, request_head, message
):
    data = await exchange(gateway.http_port, request_head)
    status, body = status_and_body(data)
    assert status == 400
    assert message in body["message"]
    assert b"connection: close" in data.lower()
    assert backend.requests == 0
    await assert_still_served(gateway.http_port, tmp_path)


async def test_http10_without_host_is_served(gateway):
    data = await exchange(gateway.http_port, b"GET /echo/users/1 HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")


async def test_header_names_with_underscores_never_reach_the_backend(gateway, tmp_path):
    reply = await curl(
        gateway.http_port,
        "/echo/users/1",
        "-H",
        "X_Client_Cert: forged",
        "-H",
        "X-Kept: yes",
        scheme="http",
        tmp=tmp_path,
    )
    seen = {name.lower() for name, _ in reply.json()["headers"]}
    assert "x-kept" in seen
    assert not any("_" in name for name in seen)


async def test_trailers_never_become_headers_of_the_next_request(gateway):
    chunked = (
        b"POST /echo/first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Smuggled: 1\r\nX-Ms-Client-Principal: admin\r\n\r\n"
    )
    follow = b"GET /echo/second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    data = await exchange(gateway.http_port, chunked + follow)
    replies = [json.loads(body) for _, body in responses(data)]
    assert [r["target"] for r in replies] == ["/first", "/second"]
    assert replies[0]["length"] == 3
    for reply in replies:
        names = {name.lower() for name, _ in reply["headers"]}
        assert not names & {"x-smuggled", "x-ms-client-principal"}


async def test_a_header_line_that_never_ends_gets_431_while_it_arrives(limited_gateway, tmp_path):
    gateway = await limited_gateway(max_head_bytes=4096)
    start = b"GET /echo/x HTTP/1.1\r\nHost: a\r\nX-Endless: "
    # 1 MiB in 512-byte pieces: without the limit nothing would ever answer (the test times out)
    data = await exchange(gateway.http_port, start, *[b"a" * 512] * 2048)
    status, body = status_and_body(data)
    assert status == 431
    assert body["message"] == "Request header fields too large"
    await assert_still_served(gateway.http_port, tmp_path)


async def test_too_many_header_fields_get_431(limited_gateway, tmp_path):
    gateway = await limited_gateway(max_header_count=10)
    fields = b"".join(b"X-F%d: v\r\n" % n for n in range(9))
    ok = await exchange(
        gateway.http_port,
        b"GET /echo/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + fields + b"\r\n",
    )
    assert ok.startswith(b"HTTP/1.1 200")  # Host + Connection + 9 = 11 read, 10 kept
    too_many = await exchange(
        gateway.http_port, b"GET /echo/x HTTP/1.1\r\nHost: a\r\nX-Z: 1\r\n" + fields + b"\r\n"
    )
    assert status_and_body(too_many)[0] == 431
    await assert_still_served(gateway.http_port, tmp_path)


async def test_a_stalled_request_body_gets_408_and_releases_the_backend(
    limited_gateway, backend, tmp_path
):
    gateway = await limited_gateway(body_timeout=0.3)
    head = b"POST /echo/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"
    data = await exchange(gateway.http_port, head + b"x" * 1000)  # then nothing more
    status, body = status_and_body(data)
    assert status == 408
    assert body["message"] == "Request body timed out"
    async with asyncio.timeout(10):  # the upload's backend connection is given up
        while backend.connections:
            await asyncio.sleep(0.02)
    await assert_still_served(gateway.http_port, tmp_path)


async def test_a_slow_but_moving_body_is_not_cut(limited_gateway, tmp_path):
    gateway = await limited_gateway(body_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
    writer.write(b"POST /echo/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 15\r\n\r\n")
    for _ in range(15):  # a byte every 0.1 s: 1.5 s in all, never 1 s without progress
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.1)  # the pace of the client under test, not synchronisation
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 200")


@pytest.fixture
async def one_worker(tmp_path, backend, certs):
    """One gateway process (its memory is measured apart from the test's), HTTP and HTTPS."""
    config = tmp_path / "gateway.json"
    apis = {"echo": {"path": "echo", "serviceUrl": backend.url, "protocols": ["http", "https"]}}
    operations = {"echo": {"all": {"method": "*", "urlTemplate": "/*"}}}
    write_file_config(config, 1, pki.server(certs.ca, "localhost"), apis, operations)
    pool = WorkerPool(
        1,
        functools.partial(file_config, str(config)),
        https_port=0,
        http_port=0,
        limits=Limits(max_pipelined=8),
    )
    await asyncio.to_thread(pool.start)
    yield pool
    await asyncio.to_thread(pool.stop)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_pipelining_flood_is_read_only_as_fast_as_it_is_answered(one_worker, certs, scheme):
    """22.5 MiB of pipelined requests whose responses are not read at first: the gateway stops
    reading (over TLS: stops decrypting too) instead of queueing them (unbounded, it took them
    all, at over their size)."""
    pid = one_worker.pids[0]
    if scheme == "https":
        port = one_worker.https_port
        tls = {"ssl": ssl.create_default_context(cafile=str(certs.ca_file))}
        tls["server_hostname"] = "localhost"
    else:
        port, tls = one_worker.http_port, {}
    last = b"GET /nothing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    warm_reader, warm_writer = await asyncio.open_connection("127.0.0.1", port, **tls)
    warm_writer.write(last)
    assert (await warm_reader.read(-1)).startswith(b"HTTP/1.1 404")  # warmed up
    warm_writer.close()
    before = peak_rss_mb(pid)
    # each answered by the backend, echoing the 60 kB header: answers come slower than requests
    count = 384
    flood = b"GET /echo/x HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 61440 + b"\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port, **tls)

    async def send() -> None:
        for _ in range(count // 8):
            writer.write(flood * 8)
            await writer.drain()
        writer.write(last)
        await writer.drain()

    sending = asyncio.ensure_future(send())
    # An observation window while no response is read: a gateway that reads everything takes
    # the whole flood well within it; a bounded one stops reading and `send` waits.
    await asyncio.wait({sending}, timeout=3)
    stalled = peak_rss_mb(pid)
    async with asyncio.timeout(60):
        rest = await reader.read(-1)  # now read: the gateway resumes and answers everything
        await sending
    writer.close()
    answers = responses(rest)
    assert [status for status, _ in answers] == [200] * count + [404]
    assert all(json.loads(body)["target"] == "/x" for _, body in answers[:count])
    assert stalled - before < 12, (before, stalled)
    assert peak_rss_mb(pid) - before < 12


async def test_a_trailer_line_that_never_ends_is_cut_off(limited_gateway, tmp_path):
    gateway = await limited_gateway(max_head_bytes=4096)
    start = (
        b"POST /echo/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Endless: "
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
    writer.write(start)
    closed = False
    try:
        async with asyncio.timeout(10):
            for _ in range(2048):  # 1 MiB: without the limit the gateway would buffer it all
                writer.write(b"t" * 512)
                await writer.drain()
            closed = await reader.read(65536) == b""
    except ConnectionError:
        closed = True
    writer.close()
    assert closed  # cut off (the request was under way: no status line, the connection ends)
    await assert_still_served(gateway.http_port, tmp_path)
