"""CRLs shared through the store (issue 14): one worker or node downloads a distribution point's
CRL, every other one reads the stored copy until its nextUpdate, a dead node stops nothing, and a
store that is down only means each worker downloads for itself.

Real parts: a real HTTP CRL server counting requests (tests/certs/crlserver.py), a real store on
SQLite and PostgreSQL, certificates from tests/pki.py, the real SnapshotBuilder and Verifier.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import create_engine, func, select, update

from certgate.certs.crl import CrlFetcher, CrlStore
from certgate.certs.verify import REVOKED, TrustStore, Verifier
from certgate.config.crlcache import StoreCrlCache
from certgate.config.sealing import Sealer
from certgate.config.store import Store, crl_cache
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.snapshot.compiler import SnapshotBuilder
from tests import pki
from tests.certs.crlserver import CrlServer
from tests.management.server import management_server


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").database()
    opened = Store(url, Sealer(os.urandom(32)))
    yield opened
    opened.close()


@pytest.fixture
async def crl_server():
    server = CrlServer()
    url = await server.start()
    yield server, url
    if server.server.is_serving():
        await server.stop()


def _worker(
    root: pki.Issued, shared: StoreCrlCache | None, limits: Limits = DEFAULT_LIMITS
) -> Verifier:
    """One gateway worker's Verifier: its own CRL fetcher on the shared cache."""
    trust = TrustStore([root.cert], use_system_roots=False)
    return Verifier(trust, CrlStore((), CrlFetcher(limits, shared)), limits=limits)


def _rows(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(select(crl_cache.c.url)).scalars())


async def test_nodes_download_a_crl_once_and_go_on_without_the_first(store, crl_server, tmp_path):
    """Three nodes' SnapshotBuilders on one store: node 1 downloads, nodes 2 and 3 read the row;
    with node 1 gone a restarted worker still reads it, and once the row's nextUpdate has passed
    one worker downloads again and the others read the new row."""
    server, url = crl_server
    root = pki.ca("Shared Root")
    good = root.issue("good", crl_url=url)
    bad = root.issue("bad", crl_url=url)
    server.body = pki.crl(root, [bad.cert.serial_number]).public_bytes(Encoding.DER)
    trust = {"certificates": [{"storeName": "Root", "encodedCertificate": _b64(root.der)}]}
    trust["clientCertificateTrust"] = {"useSystemRoots": False}
    with management_server(tmp_path / "data", store=store) as management:
        with management.client(timeout=30) as client:
            assert client.patch("/", json={"properties": trust}).status_code == 200
        nodes = [SnapshotBuilder(store, node=f"node{n}") for n in (1, 2, 3)]
        try:
            verifiers = [node.build().snapshot.verifier for node in nodes]
            for verifier in verifiers:
                await verifier.prefetch(good.cert)
                await verifier.prefetch(bad.cert)
                assert verifier.verify(good.cert).ok
                assert verifier.verify(bad.cert).reason == REVOKED
            assert server.hits == 1
            assert _rows(store) == [url]

            nodes.pop(0).close()  # node 1 is gone: a worker restarting elsewhere reads the row
            nodes.append(SnapshotBuilder(store, node="node2"))
            restarted = nodes[-1].build().snapshot.verifier
            await restarted.prefetch(bad.cert)
            assert restarted.verify(bad.cert).reason == REVOKED
            assert server.hits == 1

            with store.engine.begin() as conn:  # the stored CRL's nextUpdate has passed
                past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
                conn.execute(update(crl_cache).values(next_update=past))
            server.body = pki.crl(root, [], number=2).public_bytes(Encoding.DER)
            later = [SnapshotBuilder(store, node=f"node{n}") for n in (2, 3)]
            nodes.extend(later)
            for node in later:
                verifier = node.build().snapshot.verifier
                await verifier.prefetch(bad.cert)
                assert verifier.verify(bad.cert).ok  # CRL number 2 no longer revokes it
            assert server.hits == 2
        finally:
            for node in nodes:
                node.close()


async def _refreshed(verifier: Verifier, leaf: pki.Issued) -> None:
    """Prefetches a CRL in its refresh window and waits (deadline) for the background refresh."""
    fetcher = verifier.crls.fetcher
    await verifier.prefetch(leaf.cert)
    deadline = time.monotonic() + 10
    while any(entry.refreshing for entry in fetcher._by_url.values()):
        assert time.monotonic() < deadline, "the refresh did not finish"
        await asyncio.sleep(0.01)  # polling a condition with a deadline


async def test_an_aging_crl_is_refreshed_by_one_worker_and_read_by_the_other(store, crl_server):
    """Both workers hold a CRL close to its nextUpdate; the first refresh downloads the new one
    and stores it, the second worker's refresh reads it; a failing refresh keeps the backoff."""
    server, url = crl_server
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    server.body = pki.crl(root, [leaf.cert.serial_number], next_update=soon).public_bytes(
        Encoding.DER
    )
    first, second = (_worker(root, StoreCrlCache(store.engine)) for _ in range(2))
    for worker in (first, second):
        await worker.prefetch(leaf.cert)
        assert worker.verify(leaf.cert).reason == REVOKED
    assert server.hits == 2  # the stored row is already in its refresh window: not used
    server.body = pki.crl(root, [], number=2).public_bytes(Encoding.DER)
    await _refreshed(first, leaf)
    assert server.hits == 3
    await _refreshed(second, leaf)
    assert server.hits == 3
    for worker in (first, second):
        assert worker.verify(leaf.cert).ok


async def test_a_failing_refresh_waits_for_the_backoff(crl_server):
    server, url = crl_server
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    server.body = pki.crl(root, next_update=soon).public_bytes(Encoding.DER)
    worker = _worker(root, None)
    await worker.prefetch(leaf.cert)
    server.status = 500
    for _ in range(3):
        await _refreshed(worker, leaf)
    assert server.hits == 2  # one refresh attempt, then the backoff
    assert worker.verify(leaf.cert).ok  # the CRL held is still valid


async def test_failed_download_is_not_shared_and_each_worker_keeps_its_backoff(store, crl_server):
    server, url = crl_server
    server.status = 500
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    first, second = (_worker(root, StoreCrlCache(store.engine)) for _ in range(2))
    await first.prefetch(leaf.cert)
    await first.prefetch(leaf.cert)  # within its backoff: no second request
    assert server.hits == 1 and _rows(store) == []
    await second.prefetch(leaf.cert)
    assert server.hits == 2 and not second.verify(leaf.cert).ok


async def test_shared_cache_keeps_at_most_crl_shared_entries(store, crl_server):
    server, url = crl_server
    root = pki.ca("Root")
    server.body = pki.crl(root).public_bytes(Encoding.DER)
    limits = Limits(crl_shared_entries=2)
    urls = [url.replace("ca.crl", f"ca{n}.crl") for n in range(3)]
    for crl_url in urls:  # one after the other: the first download is the oldest
        leaf = root.issue("client", crl_url=crl_url)
        worker = _worker(root, StoreCrlCache(store.engine, limits), limits)
        await worker.prefetch(leaf.cert)
        assert worker.verify(leaf.cert).ok
    assert _rows(store) == sorted(urls[1:])
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(crl_cache)).scalar() == 2


@pytest.mark.parametrize(
    "down",
    ["sqlite:////nonexistent-certgate-dir/store.sqlite", "postgresql+psycopg://u@127.0.0.1:1/x"],
)
async def test_store_down_falls_back_to_downloading_and_logs_once(crl_server, caplog, down):
    server, url = crl_server
    root = pki.ca("Root")
    bad = root.issue("bad", crl_url=url)
    other = root.issue("other", crl_url=url.replace("ca.crl", "other.crl"))
    server.body = pki.crl(root, [bad.cert.serial_number]).public_bytes(Encoding.DER)
    engine = create_engine(down)
    try:
        worker = _worker(root, StoreCrlCache(engine))
        with caplog.at_level(logging.WARNING, logger="certgate.certs.crl"):
            await worker.prefetch(bad.cert)
            await worker.prefetch(other.cert)
    finally:
        engine.dispose()
    assert worker.verify(bad.cert).reason == REVOKED
    assert worker.verify(other.cert).ok
    assert server.hits == 2
    failures = [r for r in caplog.records if "shared CRL cache failed" in r.getMessage()]
    assert len(failures) == 1


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode()
