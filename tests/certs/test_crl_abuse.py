"""CRL fetching replayed as an attacker would use it: many distribution points, untrusted
certificates, redirects elsewhere, other URL schemes and a stalling CRL server. Every download
goes to a real HTTP server on 127.0.0.1 that counts what it was asked."""

from __future__ import annotations

import asyncio
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certgate.certs.crl import CrlFetcher, CrlStore
from certgate.certs.verify import TrustStore, Verifier
from certgate.limits import Limits
from tests import pki
from tests.certs.crlserver import CrlServer
from tests.gateway.support import curl, start_verifying_gateway, write_identity

LIMITS = Limits(crl_urls_per_certificate=3, crl_urls_per_connection=5, crl_max_redirects=2)


@pytest.fixture
async def crl_server():
    server = CrlServer()
    await server.start()
    yield server
    await server.stop()


def _urls(server: CrlServer, count: int, host: str = "127.0.0.1") -> list[str]:
    return [f"http://{host}:{server.port}/crl/{i}" for i in range(count)]


def _verifier(root: pki.Issued, limits: Limits = LIMITS) -> Verifier:
    store = CrlStore((), CrlFetcher(limits))
    return Verifier(TrustStore([root.cert], use_system_roots=False), store)


async def test_untrusted_self_signed_certificate_with_1000_urls_fetches_nothing(crl_server):
    root = pki.ca("Root")
    attacker = pki.issue("self-signed", crl_url=_urls(crl_server, 1000))
    stranger = pki.ca("Unknown CA").issue("stranger", crl_url=_urls(crl_server, 1000))
    verifier = _verifier(root)
    await verifier.prefetch(attacker.cert)
    await verifier.prefetch(stranger.cert, stranger.chain)
    assert crl_server.hits == 0
    assert not verifier.verify(attacker.cert).ok


async def test_trusted_chain_with_many_urls_fetches_at_most_the_caps(crl_server):
    crl_server.status = 404
    root = pki.ca("Root")
    issuing = root.issue("Issuing CA", ca=True, crl_url=_urls(crl_server, 100))
    leaf = issuing.issue("client", crl_url=[f"{u}/leaf" for u in _urls(crl_server, 100)])
    verifier = _verifier(root)
    await verifier.prefetch(leaf.cert, leaf.chain)
    # 3 of the leaf's URLs, then 2 of the intermediate's: 5 for the connection.
    assert sorted(crl_server.paths) == sorted(
        ["/crl/0/leaf", "/crl/1/leaf", "/crl/2/leaf", "/crl/0", "/crl/1"]
    )
    await verifier.prefetch(leaf.cert, leaf.chain)
    assert crl_server.hits == 5  # failures are remembered (crl_failure_backoff)


async def test_only_http_urls_are_fetched(crl_server):
    root = pki.ca("Root")
    leaf = root.issue(
        "client",
        crl_url=[
            f"ldap://127.0.0.1:{crl_server.port}/cn=crl",
            "file:///etc/passwd",
            f"gopher://127.0.0.1:{crl_server.port}/x",
            f"http://127.0.0.1:{crl_server.port}/ca.crl",
        ],
    )
    crl_server.body = pki.crl(root).public_bytes(Encoding.DER)
    verifier = _verifier(root)
    await verifier.prefetch(leaf.cert)
    assert crl_server.paths == ["/ca.crl"]
    assert verifier.verify(leaf.cert).ok


async def test_redirect_to_another_host_is_not_followed(crl_server):
    elsewhere = CrlServer()
    await elsewhere.start()
    try:
        root = pki.ca("Root")
        elsewhere.body = pki.crl(root).public_bytes(Encoding.DER)
        crl_server.redirects = {"/ca.crl": f"http://localhost:{elsewhere.port}/ca.crl"}
        leaf = root.issue("client", crl_url=f"http://127.0.0.1:{crl_server.port}/ca.crl")
        verifier = _verifier(root)
        await verifier.prefetch(leaf.cert)
        assert (crl_server.hits, elsewhere.hits) == (1, 0)
        assert "unknown" in verifier.verify(leaf.cert).detail
    finally:
        await elsewhere.stop()


async def test_same_host_redirects_are_followed_a_few_times(crl_server):
    root = pki.ca("Root")
    base = f"http://127.0.0.1:{crl_server.port}"
    crl_server.body = pki.crl(root).public_bytes(Encoding.DER)
    crl_server.redirects = {"/loop": f"{base}/loop", "/moved.crl": f"{base}/ca.crl"}
    looping = root.issue("looping", crl_url=f"{base}/loop")
    moved = root.issue("moved", crl_url=f"{base}/moved.crl")
    verifier = _verifier(root)
    await verifier.prefetch(looping.cert)
    assert crl_server.paths == ["/loop"] * 3  # 1 + crl_max_redirects, then given up
    assert not verifier.verify(looping.cert).ok
    await verifier.prefetch(moved.cert)
    assert crl_server.paths[3:] == ["/moved.crl", "/ca.crl"]
    assert verifier.verify(moved.cert).ok


async def test_oversized_crl_is_refused(crl_server):
    root = pki.ca("Root")
    crl_server.body = b"\x30" * 5000
    leaf = root.issue("client", crl_url=f"http://127.0.0.1:{crl_server.port}/big.crl")
    verifier = _verifier(root, Limits(crl_max_bytes=4096))
    await verifier.prefetch(leaf.cert)
    assert crl_server.hits == 1
    assert "unknown" in verifier.verify(leaf.cert).detail


async def test_downloads_share_a_per_process_concurrency_cap(crl_server):
    crl_server.hang = True
    root = pki.ca("Root")
    limits = Limits(crl_fetch_concurrency=2, crl_fetch_timeout=60)
    verifier = _verifier(root, limits)
    leaves = [root.issue(f"c{i}", crl_url=_urls(crl_server, 6)[i]) for i in range(6)]
    waiting = [asyncio.ensure_future(verifier.prefetch(leaf.cert)) for leaf in leaves]
    while crl_server.hits < 2:
        crl_server.hit.clear()
        await crl_server.hit.wait()
    crl_server.release.set()
    await asyncio.gather(*waiting)
    assert crl_server.hits == 6
    assert crl_server.most_active == 2  # the others queued without opening a connection


async def test_a_trickling_crl_server_is_cut_at_the_total_deadline(crl_server):
    crl_server.trickle = 0.05  # a byte every 50 ms: never a read timeout
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=f"http://127.0.0.1:{crl_server.port}/slow.crl")
    verifier = _verifier(root, Limits(crl_fetch_timeout=0.5))
    started = time.monotonic()
    await verifier.prefetch(leaf.cert)
    assert time.monotonic() - started < 5  # 0.5 s deadline; generous for a loaded machine
    assert "unknown" in verifier.verify(leaf.cert).detail


async def test_a_failed_url_is_tried_again_after_the_backoff(crl_server):
    crl_server.status = 503
    root = pki.ca("Root")
    leaf = root.issue("client", crl_url=f"http://127.0.0.1:{crl_server.port}/ca.crl")
    remembering, forgetting = _verifier(root), _verifier(root, Limits(crl_failure_backoff=0))
    for verifier in (remembering, remembering, forgetting, forgetting):
        await verifier.prefetch(leaf.cert)
    assert crl_server.hits == 3  # once for the default backoff, twice without one


POLICY = """<policies><inbound>
<choose><when condition="@(context.Request.Certificate != null
  &amp;&amp; !context.Request.Certificate.Verify())">
  <return-response><set-status code="403" reason="Forbidden" /></return-response></when></choose>
<return-response><set-status code="200" reason="OK" /></return-response>
</inbound><on-error><base /></on-error></policies>"""


@pytest.fixture
async def gateway(tmp_path, crl_server):
    """A gateway trusting one root, its CRL fetcher bounded by LIMITS with a long deadline."""
    root = pki.ca("Abuse Root")
    limits = Limits(crl_urls_per_certificate=3, crl_urls_per_connection=5, crl_fetch_timeout=60)
    verifier = _verifier(root, limits)
    server = await start_verifying_gateway(root, verifier, POLICY, limits)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(root.cert_pem)
    yield server.https_port, ca_file, root
    await server.close()


async def test_gateway_fetches_nothing_for_a_self_signed_certificate_with_1000_urls(
    gateway, crl_server, tmp_path
):
    port, ca_file, _root = gateway
    attacker = write_identity(pki.issue("mallory", crl_url=_urls(crl_server, 1000)), tmp_path, "m")
    reply = await curl(port, "/a/x", ca=ca_file, identity=attacker, tmp=tmp_path)
    assert reply.status == 403, reply.stderr
    assert crl_server.hits == 0


async def test_gateway_answers_others_while_a_crl_server_stalls(gateway, crl_server, tmp_path):
    port, ca_file, root = gateway
    crl_server.hang = True
    crl_server.body = pki.crl(root).public_bytes(Encoding.DER)
    slow = write_identity(root.issue("slow", crl_url=_urls(crl_server, 1000)), tmp_path, "slow")
    (tmp_path / "slow").mkdir()
    stalled = asyncio.ensure_future(
        curl(port, "/a/x", ca=ca_file, identity=slow, tmp=tmp_path / "slow")
    )
    await asyncio.wait_for(crl_server.hit.wait(), 30)
    other = write_identity(pki.issue("other"), tmp_path, "other")
    for identity, status in ((None, 200), (other, 403)):
        reply = await curl(port, "/a/x", ca=ca_file, identity=identity, tmp=tmp_path)
        assert reply.status == status, reply.stderr
        assert not stalled.done()  # answered while the first client still waits on its CRLs
    crl_server.release.set()
    reply = await stalled
    assert reply.status == 200  # one complete CRL from its first distribution point suffices
    assert crl_server.hits == 3  # crl_urls_per_certificate; the other 997 never asked
