"""The `proxy` policy on the real forwarder: an https backend is reached through the proxy's
CONNECT tunnel with the client certificate end to end, and the policy's proxy replaces the one
of the backend entity."""

from __future__ import annotations

import json

import pytest

from tests.policy.support import pipeline
from tests.upstream.conftest import make_context, snapshot, with_backend
from tests.upstream.webproxy import WebProxy


@pytest.fixture
async def web_proxy():
    proxy = await WebProxy.start()
    yield proxy
    await proxy.stop()


def _document(proxy: str) -> str:
    return (
        f"<policies><inbound>{proxy}</inbound><backend><forward-request/></backend>"
        "<outbound/><on-error/></policies>"
    )


async def test_the_proxy_policy_tunnels_mtls_and_overrides_the_backend_entity_proxy(
    certs, backend, forwarder, web_proxy
):
    snap = snapshot(certs, a=certs.a)
    snap = with_backend(
        snap,
        {
            "url": backend.url(),
            "credentials": {"certificateIds": ["a"]},
            "proxy": {"url": "http://127.0.0.1:9"},  # unreachable: the policy's proxy replaces it
        },
    )
    document = _document(
        f'<proxy url="{web_proxy.url}" username="@(&quot;svc&quot;)" password="pw"/>'
    )
    run = pipeline(api=document)
    for _ in range(2):  # the second request reuses the tunnelled connection's pool
        context = make_context(backend.url(), snap, backend_id="be")
        response = await run.run(context, forwarder)
        assert response.StatusCode == 200
        seen = json.loads(await response.Body.buffer())
        assert seen["thumbprint"] == certs.a.thumbprint  # TLS runs end to end with the backend
    assert web_proxy.requests == [(f"CONNECT localhost:{backend.port} HTTP/1.1", "Basic c3ZjOnB3")]


async def test_an_unreachable_policy_proxy_is_a_connection_failure(certs, backend, forwarder):
    run = pipeline(api=_document('<proxy url="http://127.0.0.1:9"/>'))
    context = make_context(backend.url(), snapshot(certs))
    response = await run.run(context, forwarder)
    assert response.StatusCode == 500
    assert context.LastError.Reason == "BackendConnectionFailure"
    assert backend.connections == 0
