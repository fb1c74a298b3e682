"""A backend that misbehaves on purpose, behind a real gateway over TLS: every attack is bounded.

Each test replays one attack of issue 11 (backend leg) against a raw backend on 127.0.0.1 and
asserts what the client sees (status, LastError reason), that the gateway closed the backend
connection, and that nothing from the attack reached a later request.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from certgate.limits import Limits
from tests.gateway.hostile import RawConnection, attacked, connect, fetch, get, rss_kib

ATTACK_BYTES = 512 * 1024 * 1024  # what the attacking backend would send if it were let
LIMITS = Limits(max_response_head_bytes=16 * 1024, max_response_headers=50)


async def endless_header_lines(conn: RawConnection) -> None:
    await conn.read_head()
    await conn.send(b"HTTP/1.1 200 OK\r\n")
    block = (b"X-Filler: " + b"a" * 1000 + b"\r\n") * 64
    while conn.sent < ATTACK_BYTES:
        await conn.send(block)


async def one_endless_header_line(conn: RawConnection) -> None:
    await conn.read_head()
    await conn.send(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    block = b"a" * 65536
    while conn.sent < ATTACK_BYTES:
        await conn.send(block)


async def endless_status_line(conn: RawConnection) -> None:
    await conn.read_head()
    await conn.send(b"HTTP/1.1 200 ")
    while conn.sent < ATTACK_BYTES:
        await conn.send(b"O" * 65536)


async def endless_interim_responses(conn: RawConnection) -> None:
    await conn.read_head()
    while conn.sent < ATTACK_BYTES:
        await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n" * 512)


async def many_small_headers(conn: RawConnection) -> None:
    await conn.read_head()
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(200))  # 2 KB: under the byte limit
    await conn.send(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nok")
    await conn.until_closed()


async def endless_trailers(conn: RawConnection) -> None:
    await conn.read_head()
    await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n")
    block = (b"X-Trailer: " + b"t" * 1000 + b"\r\n") * 64
    while conn.sent < ATTACK_BYTES:
        await conn.send(block)


@pytest.mark.parametrize(
    "behave",
    [
        endless_header_lines,
        one_endless_header_line,
        endless_status_line,
        endless_interim_responses,
        many_small_headers,
    ],
)
async def test_huge_or_endless_response_head_is_502_and_closes_the_backend(certs, behave):
    async with attacked(certs, behave, LIMITS) as (gateway, backend):
        before = rss_kib()
        started = time.monotonic()
        reply = await fetch(certs, gateway.port, get("/h/x"))
        assert reply.status == 502
        assert reply.json()["statusCode"] == 502
        assert reply.headers["x-reason"] == "BackendConnectionFailure"
        await backend.wait_for(lambda: backend.open == 0)  # the gateway closed it
        assert time.monotonic() - started < 10
        # The gateway stopped reading at the limit: the backend got rid of a few socket
        # buffers' worth, not its 512 MB, and this process did not grow by the attack.
        assert backend.connections[0].sent < 32 * 1024 * 1024
        assert rss_kib() - before < 64 * 1024
        assert sum(len(pool.connections) for pool in gateway.forwarder.pools.pools()) == 0


async def test_endless_trailers_of_a_streamed_response_close_the_backend(certs):
    async with attacked(certs, endless_trailers, LIMITS) as (gateway, backend):
        reader, writer = await connect(certs, gateway.port)
        writer.write(get("/h/x"))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"x-trailer" not in head.lower()
        # The head went out before the trailers: the gateway can only abort the response.
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
        await backend.wait_for(lambda: backend.open == 0)
        assert backend.connections[0].sent < 32 * 1024 * 1024
        writer.transport.abort()


async def test_a_nul_in_the_backend_reason_phrase_is_502_never_written(certs):
    """llhttp refuses CR, LF and NUL in header fields but lets a NUL through in the reason
    phrase; the forwarded head skips the writer's scan (`Headers.vetted`), so the connection
    refuses it."""

    async def behave(conn: RawConnection) -> None:
        await conn.read_head()
        await conn.send(b"HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nok")
        await conn.until_closed()

    async with attacked(certs, behave, LIMITS) as (gateway, backend):
        reply = await fetch(certs, gateway.port, get("/h/x"))
        assert reply.status == 502
        assert reply.headers["x-reason"] == "BackendConnectionFailure"
        await backend.wait_for(lambda: backend.open == 0)


# -- bytes after a complete response ----------------------------------------------------------
SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"


async def _answer_fine(conn: RawConnection) -> None:
    while True:
        await conn.read_head()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine")


async def _next_request_gets_a_new_connection(certs, gateway, backend) -> None:
    """The first connection was closed, not pooled: the next request opens the second one."""
    await backend.wait_for(lambda: backend.open == 0)
    second = await fetch(certs, gateway.port, get("/h/second"))
    assert (second.status, second.body) == (200, b"fine")
    assert backend.accepted == 2


async def longer_than_declared(conn: RawConnection) -> None:
    if conn.number > 1:
        return await _answer_fine(conn)
    await conn.read_head()
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKOK")
    await conn.until_closed()


async def second_response_in_the_same_write(conn: RawConnection) -> None:
    if conn.number > 1:
        return await _answer_fine(conn)
    await conn.read_head()
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK" + SMUGGLED)
    await conn.until_closed()


async def body_after_head_response(conn: RawConnection) -> None:
    if conn.number > 1:
        return await _answer_fine(conn)
    await conn.read_head()
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n" + b"smuggled")
    await conn.until_closed()


@pytest.mark.parametrize(
    ("behave", "first"),
    [
        (longer_than_declared, get("/h/first")),
        (second_response_in_the_same_write, get("/h/first")),
        (body_after_head_response, b"HEAD /h/first HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ],
)
async def test_bytes_after_a_complete_response_close_the_connection(certs, behave, first):
    async with attacked(certs, behave, LIMITS) as (gateway, backend):
        reply = await fetch(certs, gateway.port, first)
        assert reply.status == 200
        assert reply.body in (b"OK", b"")  # never "OKOK"
        await _next_request_gets_a_new_connection(certs, gateway, backend)


async def test_unasked_response_on_an_idle_connection_closes_it(certs):
    answered = asyncio.Event()
    push = asyncio.Event()

    async def behave(conn: RawConnection) -> None:
        if conn.number > 1:
            return await _answer_fine(conn)
        await conn.read_head()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
        answered.set()
        await push.wait()
        await conn.send(SMUGGLED)  # nobody asked: the connection sits idle in the pool
        await conn.until_closed()

    async with attacked(certs, behave, LIMITS) as (gateway, backend):
        assert (await fetch(certs, gateway.port, get("/h/first"))).body == b"OK"
        await answered.wait()
        push.set()
        await _next_request_gets_a_new_connection(certs, gateway, backend)


async def test_late_response_to_a_timed_out_request_never_answers_the_next(certs):
    release = asyncio.Event()

    async def behave(conn: RawConnection) -> None:
        if conn.number > 1:
            return await _answer_fine(conn)
        await conn.read_head()
        await release.wait()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
        await conn.until_closed()

    async with attacked(certs, behave, LIMITS, backend="<forward-request timeout-ms='300'/>") as (
        gateway,
        backend,
    ):
        reply = await fetch(certs, gateway.port, get("/h/first"))
        assert (reply.status, reply.headers["x-reason"]) == (504, "Timeout")
        release.set()
        await _next_request_gets_a_new_connection(certs, gateway, backend)
