"""CRLs from distribution points, served by a real HTTP server on 127.0.0.1, and CRL uploads."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certgate.certs.crl import CrlFetcher, CrlStore
from certgate.certs.crlinfo import CrlLoadError, load_crl
from certgate.certs.verify import NOT_TRUSTED, REVOKED, TrustStore, Verifier
from certgate.certs.x509 import X509Certificate2
from certgate.limits import Limits
from tests import pki
from tests.certs.crlserver import CrlServer


@pytest.fixture
async def crl_server():
    server = CrlServer()
    url = await server.start()
    yield server, url
    if server.server.is_serving():
        await server.stop()


def _verifier(root: pki.Issued, fetcher: CrlFetcher) -> Verifier:
    return Verifier(TrustStore([root.cert], use_system_roots=False), CrlStore((), fetcher))


async def test_fetched_crl_revokes_and_is_cached_until_next_update(crl_server) -> None:
    server, url = crl_server
    root = pki.ca("Root")
    good = root.issue("good", crl_url=url)
    bad = root.issue("bad", crl_url=url)
    server.body = pki.crl(root, [bad.cert.serial_number]).public_bytes(Encoding.DER)
    verifier = _verifier(root, CrlFetcher())
    assert not verifier.verify(good.cert).ok
    await verifier.prefetch(good.cert)
    assert verifier.verify(good.cert).ok
    await verifier.prefetch(bad.cert)
    assert verifier.verify(bad.cert).reason == REVOKED
    assert server.hits == 1


async def test_crl_server_down_means_unknown_status_and_one_attempt(crl_server) -> None:
    server, url = crl_server
    await server.stop()
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    verifier = _verifier(root, CrlFetcher())
    await verifier.prefetch(leaf.cert)
    result = verifier.verify(leaf.cert)
    assert (result.ok, result.reason) == (False, NOT_TRUSTED)
    assert "revocation status" in result.detail
    assert verifier.verify(leaf.cert, check_revocation=False).ok


async def test_failed_download_is_not_retried_on_every_request(crl_server) -> None:
    server, url = crl_server
    server.status = 500
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    verifier = _verifier(root, CrlFetcher())
    await verifier.prefetch(leaf.cert)
    await verifier.prefetch(leaf.cert)
    assert server.hits == 1
    assert not verifier.verify(leaf.cert).ok


async def test_hanging_crl_server_costs_at_most_the_timeout(crl_server) -> None:
    server, url = crl_server
    server.hang = True
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    verifier = _verifier(root, CrlFetcher(Limits(crl_fetch_timeout=0.5)))
    started = time.monotonic()
    await verifier.prefetch(leaf.cert)
    assert time.monotonic() - started < 3
    assert not verifier.verify(leaf.cert).ok


async def test_crl_signed_by_the_wrong_key_is_not_used(crl_server) -> None:
    server, url = crl_server
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    server.body = pki.crl(root, signing_key=pki.new_key()).public_bytes(Encoding.DER)
    verifier = _verifier(root, CrlFetcher())
    await verifier.prefetch(leaf.cert)
    result = verifier.verify(leaf.cert)
    assert not result.ok and "no valid signer" in result.detail


async def test_crl_close_to_next_update_is_refreshed_in_the_background(crl_server) -> None:
    server, url = crl_server
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    server.body = pki.crl(root, next_update=soon).public_bytes(Encoding.DER)
    fetcher = CrlFetcher()
    verifier = _verifier(root, fetcher)
    await verifier.prefetch(leaf.cert)
    assert server.hits == 1
    generation = fetcher.generation
    server.hit.clear()
    server.body = pki.crl(root, number=2).public_bytes(Encoding.DER)
    await verifier.prefetch(leaf.cert)
    await asyncio.wait_for(server.hit.wait(), 5)
    deadline = time.monotonic() + 5
    while fetcher.generation == generation and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert fetcher.generation > generation
    assert verifier.verify(leaf.cert).ok


async def test_kept_certificate_follows_crl_changes(crl_server) -> None:
    """A keep-alive connection keeps its `X509Certificate2`: each new CRL must reach `Verify()`."""
    server, url = crl_server
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=url)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    server.body = pki.crl(root, next_update=soon).public_bytes(Encoding.DER)
    fetcher = CrlFetcher()
    verifier = _verifier(root, fetcher)
    certificate = X509Certificate2(leaf.cert, [], verifier, {})
    assert not certificate.Verify()  # no CRL yet: revocation status unknown
    await verifier.prefetch(leaf.cert)
    assert certificate.Verify() and certificate.Verify()
    generation = fetcher.generation
    server.hit.clear()
    server.body = pki.crl(root, [leaf.cert.serial_number], number=2).public_bytes(Encoding.DER)
    await verifier.prefetch(leaf.cert)
    await asyncio.wait_for(server.hit.wait(), 5)
    deadline = time.monotonic() + 5
    while fetcher.generation == generation and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not certificate.Verify()
    assert certificate.VerifyNoRevocation()


def test_uploaded_crl_pem_or_der_and_clear_errors() -> None:
    root = pki.ca("Root")
    crl = pki.crl(root, [5], number=7)
    for data in (crl.public_bytes(Encoding.PEM), crl.public_bytes(Encoding.DER)):
        info = load_crl(data)
        view = info.describe()
        assert view["issuer"] == "CN=Root" and view["number"] == "7"
        assert view["nextUpdate"].endswith("Z")
    with pytest.raises(CrlLoadError, match=r"not a PEM or DER X\.509 CRL"):
        load_crl(b"garbage")
