"""Stalled uploads and crowds of requests cannot hold more backend connections than the pool allows.

The forward-request timeout covers the whole exchange up to the response head (the body upload
included), and each backend pool holds at most `backend_max_connections` connections with a
bounded queue behind them: 503 when the queue is full or its wait runs out, 504 when the
forward-request deadline passes first.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from certgate.limits import Limits
from tests.gateway.hostile import (
    RawBackend,
    RawConnection,
    attacked,
    connect,
    fetch,
    get,
    h2_connect,
    read_reply,
    start_gateway,
)


def hold_until(release: asyncio.Event):
    async def behave(conn: RawConnection) -> None:
        while True:
            await conn.read_head()
            await release.wait()
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld")

    return behave


async def reads_the_body_slowly(conn: RawConnection) -> None:
    await conn.read_head()
    await conn.until_closed()  # takes what comes, never answers


async def test_stalled_request_body_gets_504_and_frees_the_backend_connection(certs):
    async with attacked(
        certs, reads_the_body_slowly, Limits(), backend="<forward-request timeout-ms='500'/>"
    ) as (gateway, backend):
        reader, writer = await connect(certs, gateway.port)
        writer.write(
            b"POST /h/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n"
            + b"u" * 1000
        )  # ... and nothing more: the client stalls mid-body
        started = time.monotonic()
        reply = await read_reply(reader)
        assert (reply.status, reply.headers["x-reason"]) == (504, "Timeout")
        assert time.monotonic() - started < 5
        await backend.wait_for(lambda: backend.open == 0)
        assert sum(len(pool.connections) for pool in gateway.forwarder.pools.pools()) == 0
        writer.transport.abort()


async def test_full_pool_queues_then_refuses_with_503(certs):
    release = asyncio.Event()
    limits = Limits(backend_max_connections=2, backend_queue_length=2, backend_queue_timeout=30)
    async with attacked(certs, hold_until(release), limits) as (gateway, backend):
        busy = [asyncio.ensure_future(fetch(certs, gateway.port, get(f"/h/{i}"))) for i in (1, 2)]
        await backend.wait_for(lambda: backend.accepted == 2)
        queued = [asyncio.ensure_future(fetch(certs, gateway.port, get(f"/h/{i}"))) for i in (3, 4)]
        async with asyncio.timeout(10):
            while gateway.pool_queue() < 2:
                await asyncio.sleep(0.01)
        refused = await fetch(certs, gateway.port, get("/h/5"))
        assert (refused.status, refused.headers["x-reason"]) == (503, "BackendConnectionFailure")
        release.set()
        replies = await asyncio.gather(*busy, *queued)
        assert [(r.status, r.body) for r in replies] == [(200, b"held")] * 4
        assert backend.accepted == 2  # the queued requests reused the two connections
        assert backend.most_open == 2


async def test_queue_wait_is_bounded_503_or_504_at_the_request_deadline(certs):
    release = asyncio.Event()
    backend = await RawBackend(hold_until(release)).start()
    limits = Limits(backend_max_connections=1, backend_queue_timeout=0.3)
    gateway = await start_gateway(certs, backend.url, limits)
    deadline_first = await start_gateway(
        certs, backend.url, limits, backend="<forward-request timeout-ms='200'/>"
    )
    try:
        busy = asyncio.ensure_future(fetch(certs, gateway.port, get("/h/busy")))
        await backend.wait_for(lambda: backend.accepted == 1)
        waited = await fetch(certs, gateway.port, get("/h/queued"))
        assert (waited.status, waited.headers["x-reason"]) == (503, "BackendConnectionFailure")

        other = asyncio.ensure_future(fetch(certs, deadline_first.port, get("/h/busy")))
        await backend.wait_for(lambda: backend.accepted == 2)
        timed_out = await fetch(certs, deadline_first.port, get("/h/queued"))
        assert (timed_out.status, timed_out.headers["x-reason"]) == (504, "Timeout")
        release.set()
        assert (await busy).status == 200
        assert (await other).status == 504  # its own 200 ms deadline passed while held
    finally:
        await deadline_first.close()
        await gateway.close()
        await backend.close()


async def test_http2_streams_with_stalled_bodies_cannot_exceed_the_pool(certs):
    """Issue 11's replay, scaled down: many HTTP/2 streams whose bodies never finish used one
    backend connection each until every file descriptor was gone."""
    from h2.events import StreamEnded, StreamReset

    limits = Limits(backend_max_connections=4, backend_queue_length=8, backend_queue_timeout=30)
    async with attacked(
        certs, reads_the_body_slowly, limits, backend="<forward-request timeout-ms='1500'/>"
    ) as (gateway, backend):
        reader, writer, h2 = await h2_connect(certs, gateway.port)
        streams = list(range(1, 2 * 40, 2))  # 40 streams, each with a body that never ends
        for stream_id in streams:
            headers = [
                (":method", "POST"),
                (":path", f"/h/{stream_id}"),
                (":scheme", "https"),
                (":authority", "localhost"),
            ]
            h2.send_headers(stream_id, headers)
            h2.send_data(stream_id, b"x" * 100)
        writer.write(h2.data_to_send())
        statuses: dict[int, int] = {}
        status_of: dict[int, int] = {}
        async with asyncio.timeout(20):
            while len(statuses) < len(streams):
                data = await reader.read(65536)
                assert data, "the gateway closed the connection"
                for event in h2.receive_data(data):
                    if hasattr(event, "headers") and event.headers:
                        fields = dict(event.headers)
                        if b":status" in fields:
                            status_of[event.stream_id] = int(fields[b":status"])
                    if isinstance(event, StreamEnded | StreamReset):
                        statuses[event.stream_id] = status_of.get(event.stream_id, 0)
                writer.write(h2.data_to_send())
        assert backend.most_open <= 4
        counts = Counter(statuses.values())
        # 4 held a connection until their deadline, 8 waited behind them, the rest were refused
        assert counts.get(503, 0) >= len(streams) - 12
        assert set(counts) <= {503, 504}
        await backend.wait_for(lambda: backend.open == 0)
        writer.transport.abort()
