"""Which client certificate the backend sees, and how the backend's own certificate is checked."""

from __future__ import annotations

from dataclasses import replace

import pytest

from certgate.policy.context import BackendTarget
from certgate.policy.errors import BackendError
from tests import pki
from tests.upstream.conftest import make_context, send, snapshot, with_backend
from tests.upstream.echo import EchoBackend


async def test_no_certificate_by_default(certs, backend, forwarder):
    seen = await send(forwarder, make_context(backend.url(), snapshot(certs)))
    assert seen["thumbprint"] is None


async def test_explicit_certificate_is_presented_with_its_chain(certs, backend, forwarder):
    # client-a is issued by an intermediate the backend does not have: the handshake only
    # succeeds (and the backend only sees client-a) because the PFX's chain is presented.
    context = make_context(backend.url(), snapshot(certs, a=certs.a))
    context.backend_certificate = certs.a
    seen = await send(forwarder, context)
    assert seen["thumbprint"] == certs.client_a.thumbprint


def _entity(certs, backend, **tls):
    snap = snapshot(certs, a=certs.a, b=certs.b)
    properties = {
        "url": backend.url(),
        "protocol": "http",
        "credentials": {
            "certificateIds": ["/subscriptions/s/resourceGroups/g/providers/x/certificates/b"],
            "header": {"X-Api-Key": ["k1"]},
            "authorization": {"scheme": "Basic", "parameter": "dXNlcjpwdw=="},
            "query": {"code": ["42"]},
        },
        "tls": tls,
    }
    return with_backend(snap, properties)


async def test_backend_entity_applies_all_its_credentials(certs, backend, forwarder):
    snap = _entity(certs, backend)
    context = make_context(
        backend.url(),
        snap,
        path="/things?x=1",
        backend_id="be",
        headers=[("X-Api-Key", "client-value"), ("Accept", "*/*")],
    )
    seen = await send(forwarder, context)
    headers = dict(seen["headers"])
    assert seen["thumbprint"] == certs.client_b.thumbprint
    assert headers["X-Api-Key"] == "k1"  # the entity's value replaces the client's
    assert headers["Authorization"] == "Basic dXNlcjpwdw=="
    assert seen["path"] == "/things?x=1&code=42"


async def test_explicit_certificate_overrides_the_backend_entity(certs, backend, forwarder):
    context = make_context(backend.url(), _entity(certs, backend), backend_id="be")
    context.backend_certificate = certs.a
    seen = await send(forwarder, context)
    assert seen["thumbprint"] == certs.client_a.thumbprint


async def test_backend_entity_thumbprints_are_used_without_ids(certs, backend, forwarder):
    snap = snapshot(certs, a=certs.a)
    snap = with_backend(
        snap, {"url": backend.url(), "credentials": {"certificate": [certs.a.thumbprint.lower()]}}
    )
    seen = await send(forwarder, make_context(backend.url(), snap, backend_id="be"))
    assert seen["thumbprint"] == certs.client_a.thumbprint


async def test_missing_entity_certificate_fails_instead_of_sending_none(certs, backend, forwarder):
    snap = snapshot(certs)
    snap = with_backend(snap, {"url": backend.url(), "credentials": {"certificateIds": ["gone"]}})
    with pytest.raises(BackendError) as failure:
        await forwarder.forward(make_context(backend.url(), snap, backend_id="be"))
    assert failure.value.reason == "BackendConnectionFailure"
    assert "gone" in failure.value.message
    assert backend.connections == 0


@pytest.fixture
async def self_signed_backend():
    server = await EchoBackend.start(pki.issue("localhost", dns=["localhost"]))
    yield server
    await server.stop()


@pytest.mark.parametrize(
    ("tls", "ok"),
    [
        ({}, False),
        ({"validateCertificateChain": True, "validateCertificateName": True}, False),
        ({"validateCertificateChain": False}, True),
        ({"validateCertificateName": False}, False),
    ],
)
async def test_self_signed_backend_needs_chain_validation_off(
    certs, self_signed_backend, forwarder, caplog, tls, ok
):
    snap = snapshot(certs)
    url = self_signed_backend.url()
    snap = with_backend(snap, {"url": url, "tls": tls})
    context = make_context(url, snap, backend_id="be")
    if ok:
        assert (await send(forwarder, context))["thumbprint"] is None
        return
    with pytest.raises(BackendError) as failure:
        await forwarder.forward(context)
    assert failure.value.reason == "BackendConnectionFailure"
    assert "self-signed certificate" in failure.value.message
    assert "self-signed certificate" in caplog.text


async def test_plain_service_url_validates_the_chain(certs, self_signed_backend, forwarder):
    with pytest.raises(BackendError, match="self-signed"):
        await forwarder.forward(make_context(self_signed_backend.url(), snapshot(certs)))


@pytest.fixture
async def misnamed_backend(certs):
    server = await EchoBackend.start(certs.root.issue("other.example.test", dns=["other.test"]))
    yield server
    await server.stop()


@pytest.mark.parametrize(
    ("tls", "ok"),
    [
        ({}, False),
        ({"validateCertificateName": False}, True),
        ({"validateCertificateChain": False}, False),  # the name is still checked
        ({"validateCertificateChain": False, "validateCertificateName": False}, True),
    ],
)
async def test_name_mismatch_needs_name_validation_off(
    certs, misnamed_backend, forwarder, caplog, tls, ok
):
    snap = snapshot(certs)
    url = misnamed_backend.url()
    snap = with_backend(snap, {"url": url, "tls": tls})
    context = make_context(url, snap, backend_id="be")
    if ok:
        assert (await send(forwarder, context))["path"] == "/"
        return
    with pytest.raises(BackendError) as failure:
        await forwarder.forward(context)
    assert failure.value.reason == "BackendConnectionFailure"
    assert "localhost" in failure.value.message
    assert "localhost" in caplog.text


async def test_service_ca_store_is_required_to_trust_a_private_root(certs, backend, forwarder):
    snap = replace(snapshot(certs), backend_trust=None)  # system roots only
    with pytest.raises(BackendError, match="self-signed certificate in certificate chain"):
        await forwarder.forward(make_context(backend.url(), snap))


async def test_backend_id_without_url_takes_the_entity_url(certs, backend, forwarder):
    snap = _entity(certs, backend)
    context = make_context(backend.url(), snap, path="/x", backend_id="be")
    context.backend = BackendTarget(None, "be")  # what set-backend-service backend-id= sets
    seen = await send(forwarder, context)
    assert seen["thumbprint"] == certs.client_b.thumbprint
    assert context.backend.url == backend.url()


async def test_unknown_backend_id_fails(certs, backend, forwarder):
    context = make_context(backend.url(), snapshot(certs))
    context.backend = BackendTarget(None, "nope")
    with pytest.raises(BackendError, match="'nope'"):
        await forwarder.forward(context)


async def test_certificate_without_private_key_fails_clearly(certs, backend, forwarder, caplog):
    from certgate.certs.material import load_certificate

    context = make_context(backend.url(), snapshot(certs))
    context.backend_certificate = load_certificate(certs.client_a.cert_pem)
    with pytest.raises(BackendError) as failure:
        await forwarder.forward(context)
    assert failure.value.reason == "BackendConnectionFailure"
    assert "no private key" in caplog.text
    assert backend.connections == 0


@pytest.fixture
async def web_proxy():
    from tests.upstream.webproxy import WebProxy

    proxy = await WebProxy.start()
    yield proxy
    await proxy.stop()


async def test_https_backend_through_a_proxy_tunnel_keeps_mtls(
    certs, backend, forwarder, web_proxy
):
    snap = snapshot(certs, a=certs.a)
    snap = with_backend(
        snap,
        {
            "url": backend.url(),
            "credentials": {"certificateIds": ["a"]},
            "proxy": {"url": web_proxy.url, "username": "u", "password": "p"},
        },
    )
    for _ in range(2):
        seen = await send(forwarder, make_context(backend.url(), snap, backend_id="be"))
        assert seen["thumbprint"] == certs.a.thumbprint  # TLS runs end to end with the backend
    assert web_proxy.requests == [(f"CONNECT localhost:{backend.port} HTTP/1.1", "Basic dTpw")]


async def test_http_backend_through_a_proxy_uses_absolute_form(certs, forwarder, web_proxy):
    server = await EchoBackend.start()
    try:
        url = server.url("127.0.0.1")
        snap = snapshot(certs)
        snap = with_backend(snap, {"url": url, "proxy": {"url": web_proxy.url}})
        seen = await send(forwarder, make_context(url, snap, path="/p?q=1", backend_id="be"))
        assert seen["path"] == f"{url}/p?q=1"
        assert web_proxy.requests == [(f"GET {url}/p?q=1 HTTP/1.1", None)]
    finally:
        await server.stop()


async def test_unreachable_proxy_is_a_connection_failure(certs, backend, forwarder):
    snap = snapshot(certs)
    snap = with_backend(snap, {"url": backend.url(), "proxy": {"url": "http://127.0.0.1:9"}})
    with pytest.raises(BackendError) as failure:
        await forwarder.forward(make_context(backend.url(), snap, backend_id="be"))
    assert failure.value.reason == "BackendConnectionFailure"
