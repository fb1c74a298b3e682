"""Pool isolation by client identity, and certificate replacement without a restart."""

from __future__ import annotations

import asyncio
import random

from tests.upstream.conftest import make_context, send, snapshot, wait_for, with_backend


async def test_mixed_identities_never_share_a_connection(certs, backend, forwarder):
    snap = snapshot(certs, a=certs.a, b=certs.b)
    expected = {"a": certs.a.thumbprint, "b": certs.b.thumbprint, "none": None}
    rng = random.Random(7)

    async def one(kind: str) -> tuple[str, dict]:
        context = make_context(backend.url(), snap, path=f"/{kind}")
        context.backend_certificate = {"a": certs.a, "b": certs.b}.get(kind)
        return kind, await send(forwarder, context)

    for _ in range(2):  # the second round runs on pooled connections
        kinds = [rng.choice(list(expected)) for _ in range(150)]
        results = await asyncio.gather(*(one(kind) for kind in kinds))
        for kind, seen in results:
            assert seen["path"] == f"/{kind}"
            assert seen["thumbprint"] == expected[kind], kind
    pooled = {pool.identity.thumbprint for pool in forwarder.pools.pools()}
    assert pooled == set(expected.values())
    assert backend.connections < 300  # connections were reused across the rounds


def _with_backend(certs, backend, revision: int, material):
    snap = snapshot(certs, revision, c=material)
    snap = with_backend(snap, {"url": backend.url(), "credentials": {"certificateIds": ["c"]}})
    return snap


async def test_replaced_certificate_is_used_at_once_and_old_pool_drained(certs, backend, forwarder):
    old = _with_backend(certs, backend, 1, certs.a)
    seen = await send(forwarder, make_context(backend.url(), old, backend_id="be"))
    assert seen["thumbprint"] == certs.a.thumbprint
    assert list(backend.open.values()) == [certs.a.thumbprint]  # pooled, kept open

    new = _with_backend(certs, backend, 2, certs.b)
    seen = await send(forwarder, make_context(backend.url(), new, backend_id="be"))
    assert seen["thumbprint"] == certs.b.thumbprint
    await wait_for(lambda: certs.a.thumbprint not in backend.open.values())
    seen = await send(forwarder, make_context(backend.url(), new, backend_id="be"))
    assert seen["thumbprint"] == certs.b.thumbprint
    assert backend.connections == 2


async def test_in_flight_response_finishes_then_its_old_connection_closes(
    certs, backend, forwarder
):
    old = _with_backend(certs, backend, 1, certs.a)
    size = 8 * 1024 * 1024
    slow = make_context(backend.url(), old, path=f"/bytes/{size}", backend_id="be")
    await forwarder.forward(slow)
    body = slow.Response.Body.stream()
    first = await body.__anext__()

    new = _with_backend(certs, backend, 2, certs.b)
    seen = await send(forwarder, make_context(backend.url(), new, backend_id="be"))
    assert seen["thumbprint"] == certs.b.thumbprint
    assert certs.a.thumbprint in backend.open.values()  # still streaming

    received = len(first) + sum([len(chunk) async for chunk in body])
    assert received == size
    await wait_for(lambda: certs.a.thumbprint not in backend.open.values())


async def test_unchanged_identities_survive_a_new_configuration(certs, backend, forwarder):
    await send(forwarder, make_context(backend.url(), _with_backend(certs, backend, 1, certs.a)))
    seen = await send(
        forwarder, make_context(backend.url(), _with_backend(certs, backend, 2, certs.a))
    )
    assert seen["connection"] == 1


async def test_older_snapshot_does_not_undo_a_newer_one(certs, backend, forwarder):
    new = _with_backend(certs, backend, 5, certs.b)
    old = _with_backend(certs, backend, 4, certs.a)
    await send(forwarder, make_context(backend.url(), new, backend_id="be"))
    seen = await send(forwarder, make_context(backend.url(), old, backend_id="be"))
    assert seen["thumbprint"] == certs.a.thumbprint  # the request keeps its own snapshot
    seen = await send(forwarder, make_context(backend.url(), new, backend_id="be"))
    assert seen["thumbprint"] == certs.b.thumbprint
    assert seen["connection"] == 1  # B's pool was not retired by the older snapshot


async def test_back_to_back_requests_on_shared_pool(certs, backend, forwarder):
    """A connection released by one response is never handed over before its head was read."""
    snap = snapshot(certs, a=certs.a)

    async def worker(n: int) -> list[str]:
        paths = []
        for i in range(15):
            context = make_context(backend.url(), snap, path=f"/w{n}/{i}")
            context.backend_certificate = certs.a
            paths.append((await send(forwarder, context))["path"])
        return paths

    results = await asyncio.gather(*(worker(n) for n in range(12)))
    for n, paths in enumerate(results):
        assert paths == [f"/w{n}/{i}" for i in range(15)]


async def test_cancelled_waiters_never_leak_a_slot(certs, backend):
    from certgate.gateway.upstream import Forwarder
    from certgate.limits import Limits

    forwarder = Forwarder(Limits(backend_max_connections=1, backend_timeout=10))
    snap = snapshot(certs)
    try:
        busy = asyncio.ensure_future(
            forwarder.forward(make_context(backend.url(), snap, path="/slow"))
        )
        await wait_for(lambda: backend.open)
        (pool,) = forwarder.pools.pools()
        for _ in range(3):  # queued, then the client goes away
            gone = asyncio.ensure_future(send(forwarder, make_context(backend.url(), snap)))
            await wait_for(lambda: len(pool.queue) == 1)
            gone.cancel()
            await asyncio.gather(gone, return_exceptions=True)
            assert not pool.queue
        waiting = asyncio.ensure_future(send(forwarder, make_context(backend.url(), snap)))
        await wait_for(lambda: len(pool.queue) == 1)
        busy.cancel()  # its connection closes and the slot goes to the queued request
        await asyncio.gather(busy, return_exceptions=True)
        assert (await waiting)["path"] == "/"
        assert (pool.reserved, len(pool.connections), backend.connections) == (0, 1, 2)
    finally:
        forwarder.close()
