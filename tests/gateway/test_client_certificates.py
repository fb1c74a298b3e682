"""Inbound mTLS with real clients: any client certificate reaches the policies; SNI decides."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import NEGOTIATING, PLAIN
from tests.gateway.support import curl


@pytest.mark.parametrize("kind", ["trusted", "self_signed", "expired", "wrong_eku"])
async def test_any_client_certificate_reaches_the_policy(gateway, certs, tmp_path, kind):
    reply = await curl(
        gateway.https_port,
        "/echo/users/42",
        host=NEGOTIATING,
        ca=certs.ca_file,
        identity=getattr(certs, kind),
        tmp=tmp_path,
    )
    assert reply.status == 200, reply.stderr
    seen = {k.lower(): v for k, v in reply.json()["headers"]}
    assert seen["x-client-thumbprint"] == certs.issued[kind].thumbprint
    assert seen["x-matched-id"] == "42"


async def test_no_certificate_is_fine_on_a_negotiating_hostname(gateway, certs, tmp_path):
    reply = await curl(
        gateway.https_port, "/echo/users/1", host=NEGOTIATING, ca=certs.ca_file, tmp=tmp_path
    )
    assert reply.status == 200, reply.stderr
    seen = {k.lower(): v for k, v in reply.json()["headers"]}
    assert seen["x-client-thumbprint"] == "none"


async def test_non_negotiating_hostname_never_sees_a_certificate(gateway, certs, tmp_path):
    reply = await curl(
        gateway.https_port,
        "/echo/users/1",
        host=PLAIN,
        ca=certs.ca_file,
        identity=certs.trusted,
        tmp=tmp_path,
    )
    assert reply.status == 200, reply.stderr
    seen = {k.lower(): v for k, v in reply.json()["headers"]}
    assert seen["x-client-thumbprint"] == "none"


async def test_crl_prefetch_runs_once_per_connection_before_the_pipeline(certs, backend, forwarder):
    import ssl

    import httpx

    from certgate.gateway.server import GatewayServer
    from tests.gateway.conftest import make_config

    calls = []

    async def prefetch(leaf, chain):
        calls.append((leaf.subject.rfc4514_string(), [c.subject.rfc4514_string() for c in chain]))

    server = GatewayServer(
        make_config(certs, backend.url, crl_prefetch=prefetch), forwarder=forwarder
    )
    await server.start("127.0.0.1", 0)
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    context.load_cert_chain(str(certs.trusted.cert), str(certs.trusted.key))
    try:
        async with httpx.AsyncClient(verify=context) as client:
            for n in range(3):
                reply = await client.get(f"https://localhost:{server.https_port}/echo/users/{n}")
                assert reply.status_code == 200
    finally:
        await server.close()
    # Python's ssl client sends the root it trusts along with its certificate
    assert calls == [("CN=trusted-client", ["CN=Gateway Test Root"])]
