"""`/backends/{id}` through the live management API, and its compilation for the data plane."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from certgate.certs.material import load_certificate
from certgate.gateway.upstream.backend import compile_backend, runtime_properties
from certgate.gateway.upstream.tls import service_backend_trust
from certgate.management.backends import MASK
from tests.management.server import management_server
from tests.upstream.conftest import make_context, send, snapshot


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with management_server(tmp_path_factory.mktemp("mgmt")) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with server.client(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def stored(client, certs):
    """Certificates c-a and c-b (with keys) and c-pub (certificate only)."""
    for name, issued in (("c-a", certs.client_a), ("c-b", certs.client_b)):
        body = {
            "properties": {"data": base64.b64encode(issued.pfx("pw")).decode(), "password": "pw"}
        }
        assert client.put(f"/certificates/{name}", json=body).status_code in (200, 201)
    public = {"properties": {"data": base64.b64encode(certs.root.der).decode()}}
    assert client.put("/certificates/c-pub", json=public).status_code in (200, 201)


def _put(client, backend_id: str, properties: dict):
    return client.put(f"/backends/{backend_id}", json={"properties": properties})


def _refused(response, target: str, message: str | None = None) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert error["details"][0]["target"] == target
    if message is not None:
        assert error["message"] == message


def test_create_read_and_secrets_masked(client, stored, server):
    properties = {
        "url": "https://backend.internal:8443/api",
        "protocol": "http",
        "title": "Orders",
        "tls": {"validateCertificateChain": False},
        "credentials": {
            "certificateIds": ["/subscriptions/s/resourceGroups/g/providers/M/certificates/c-a"],
            "header": {"X-Key": ["secret-header-value"]},
            "query": {"code": ["secret-query-value"]},
            "authorization": {"scheme": "Bearer", "parameter": "secret-token"},
        },
        "proxy": {"url": "http://proxy.internal:3128", "username": "u", "password": "proxy-pw"},
    }
    response = _put(client, "orders", properties)
    assert response.status_code == 201, response.text
    for leaked in ("secret-header-value", "secret-query-value", "secret-token", "proxy-pw"):
        assert leaked not in response.text
    shown = client.get("/backends/orders").json()["properties"]
    assert shown["credentials"]["header"] == {"X-Key": [MASK]}
    assert shown["credentials"]["authorization"] == {"scheme": "Bearer", "parameter": MASK}
    assert shown["tls"] == {"validateCertificateChain": False}

    # GET -> edit -> PUT keeps the sealed values that come back masked.
    shown["title"] = "Orders v2"
    assert _put(client, "orders", shown).status_code == 200
    orders = server.store.get("backends/orders")
    runtime = runtime_properties(orders.properties, orders.secrets)
    assert runtime["credentials"]["header"] == {"X-Key": ["secret-header-value"]}
    assert runtime["credentials"]["authorization"]["parameter"] == "secret-token"
    assert runtime["proxy"]["password"] == "proxy-pw"
    assert runtime["title"] == "Orders v2"


def test_compiled_backend_carries_certificate_and_switches(client, stored, server, certs):
    assert _put(
        client,
        "compiled",
        {
            "url": "https://localhost:1",
            "tls": {"validateCertificateName": False},
            "credentials": {
                "certificateIds": ["c-b"],
                "authorization": {"scheme": "Basic", "parameter": "eA=="},
            },
        },
    ).status_code in (200, 201)
    material = load_certificate(certs.client_b.pfx("pw"), "pw")
    stored = server.store.get("backends/compiled")
    backend = compile_backend(
        "compiled", runtime_properties(stored.properties, stored.secrets), {"c-b": material}, {}
    )
    assert backend.certificate is material
    assert (backend.validate_chain, backend.validate_name) == (True, False)
    assert "Authorization: Basic eA==\r\n" in backend.header_lines


def test_missing_certificate_is_refused_with_apims_message(client, stored):
    response = _put(
        client, "b-missing", {"url": "https://x.test", "credentials": {"certificateIds": ["nope"]}}
    )
    _refused(response, "credentials", "Certificate with id 'nope' not found.")
    assert client.get("/backends/b-missing").status_code == 404


def test_certificate_without_private_key_is_refused(client, stored):
    response = _put(
        client, "b-pub", {"url": "https://x.test", "credentials": {"certificateIds": ["c-pub"]}}
    )
    _refused(response, "credentials")
    assert "private key" in response.json()["error"]["message"]


def test_thumbprints_resolve_to_certificates(client, stored, certs, server):
    thumbprint = certs.client_b.thumbprint.lower()
    response = _put(
        client, "by-thumb", {"url": "https://x.test", "credentials": {"certificate": [thumbprint]}}
    )
    assert response.status_code in (200, 201), response.text
    assert "certificates/c-b" in server.store.references("backends/by-thumb")
    _refused(
        _put(
            client, "by-thumb2", {"url": "https://x.test", "credentials": {"certificate": ["AB"]}}
        ),
        "credentials",
        "Certificate with thumbprint 'AB' not found.",
    )


def test_certificate_used_by_a_backend_cannot_be_deleted(client, stored):
    assert _put(
        client, "holder", {"url": "https://x.test", "credentials": {"certificateIds": ["c-a"]}}
    ).status_code in (200, 201)
    etag = client.get("/certificates/c-a").headers["ETag"]
    response = client.delete("/certificates/c-a", headers={"If-Match": etag})
    assert response.status_code == 409
    targets = {d["target"] for d in response.json()["error"]["details"]}
    assert "backends/holder" in targets


@pytest.mark.parametrize(
    ("properties", "target"),
    [
        ({}, "url"),
        ({"url": "ftp://x"}, "url"),
        ({"url": "https://x.test", "protocol": "grpc"}, "protocol"),
        ({"url": "https://x.test", "type": "Pool"}, "type"),
        (
            {"url": "https://x.test", "tls": {"validateCertificateChain": "no"}},
            "tls.validateCertificateChain",
        ),
        (
            {"url": "https://x.test", "credentials": {"authorization": {"scheme": "Basic"}}},
            "credentials.authorization",
        ),
        (
            {"url": "https://x.test", "credentials": {"header": {"X": ["a\r\nb"]}}},
            "credentials.header",
        ),
        ({"url": "https://x.test", "proxy": {"username": "u"}}, "proxy.url"),
    ],
)
def test_bad_input_names_the_field(client, properties, target):
    _refused(_put(client, "bad", properties), target)


def test_deleting_a_backend(client):
    assert _put(client, "gone", {"url": "http://x.test"}).status_code in (200, 201)
    etag = client.get("/backends/gone").headers["ETag"]
    assert client.delete("/backends/gone", headers={"If-Match": etag}).status_code == 200
    assert client.get("/backends/gone").status_code == 404


def _policy_xml(client, api: str) -> str:
    response = client.get(f"/apis/{api}/policies/policy", params={"format": "rawxml"})
    assert response.status_code == 200, response.text
    return response.json()["properties"]["value"]


def test_gateway_credentials_write_and_remove_the_policy_element(client, stored):
    assert client.put("/apis/gc", json={"properties": {"path": "gc"}}).status_code in (200, 201)
    response = client.post(
        "/apis/gc/gatewayCredentials", json={"properties": {"certificateId": "c-a"}}
    )
    assert response.status_code == 200, response.text
    assert '<authentication-certificate certificate-id="c-a"/>' in _policy_xml(client, "gc")

    # Replacing keeps the rest of the policy and leaves exactly one element.
    rest = "<set-header name='X-Kept' exists-action='override'><value>1</value></set-header>"
    document = _policy_xml(client, "gc").replace("<base/>", f"<base/>{rest}", 1)
    put = client.put("/apis/gc/policies/policy", json={"properties": {"value": document}})
    assert put.status_code == 200, put.text
    assert (
        client.post(
            "/apis/gc/gatewayCredentials",
            json={"properties": {"certificateId": "/subscriptions/s/certificates/c-b"}},
        ).status_code
        == 200
    )
    xml = _policy_xml(client, "gc")
    assert xml.count("authentication-certificate") == 1
    assert 'certificate-id="c-b"' in xml and "X-Kept" in xml

    # The certificate is now referenced by the API policy.
    etag = client.get("/certificates/c-b").headers["ETag"]
    blocked = client.delete("/certificates/c-b", headers={"If-Match": etag})
    assert blocked.status_code == 409

    assert (
        client.post(
            "/apis/gc/gatewayCredentials", json={"properties": {"certificateId": None}}
        ).status_code
        == 200
    )
    xml = _policy_xml(client, "gc")
    assert "authentication-certificate" not in xml and "X-Kept" in xml


def test_gateway_credentials_refuse_unknown_certificates(client, stored):
    assert client.put("/apis/gc2", json={"properties": {"path": "gc2"}}).status_code in (200, 201)
    response = client.post(
        "/apis/gc2/gatewayCredentials", json={"properties": {"certificateId": "nope"}}
    )
    _refused(response, "certificateId", "Certificate with id 'nope' not found.")
    assert client.get("/apis/gc2/policies/policy").status_code == 404
    missing_api = client.post(
        "/apis/none/gatewayCredentials", json={"properties": {"certificateId": "c-a"}}
    )
    assert missing_api.status_code == 404


async def test_service_ca_certificates_make_a_private_backend_trusted(
    client, server, certs, backend, forwarder
):
    entry = {"storeName": "Root", "encodedCertificate": base64.b64encode(certs.root.der).decode()}
    patched = client.patch("/", json={"properties": {"certificates": [entry]}})
    assert patched.status_code == 200, patched.text
    trust = service_backend_trust(server.store.get("service").properties)
    snap = replace(snapshot(certs), backend_trust=trust)
    seen = await send(forwarder, make_context(backend.url(), snap))
    assert seen["thumbprint"] is None
