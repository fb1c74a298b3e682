"""Client certificates through the served gateway with curl and openssl: the README's flow."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests import pki
from tests.e2e.conftest import Clients
from tests.e2e.serve import UNVERIFIED, EchoBackend, Served, deny_when

PINNED = (
    "context.Request.Certificate == null || !(context.Request.Certificate.Verify() || "
    "context.Deployment.Certificates.Any(c => c.Value.Thumbprint == "
    "context.Request.Certificate.Thumbprint))"
)
PLAIN = "plain.e2e.test"


@pytest.fixture(scope="module")
def gateway(served: Served, backend: EchoBackend, clients: Clients, tmp_path_factory) -> Served:
    """The README's CLI calls, a non-negotiating hostname, and a pinning API (set up directly)."""
    policy = tmp_path_factory.mktemp("flows") / "policy.xml"
    policy.write_text(deny_when(UNVERIFIED))
    served.ok("ca", "add", str(clients.root_file), "--store", "root")
    served.ok("hostname", "set", "localhost", "--negotiate-client-certificate", "--default")
    served.ok("api", "create", "echo", "--path", "echo", "--service-url", backend.url)
    served.ok("operation", "add", "echo", "all", "--method", "*", "--url-template", "/*")
    served.ok("policy", "set", "--api", "echo", str(policy))
    plain = base64.b64encode(pki.server(clients.root, PLAIN).pfx(None)).decode()
    with served.http() as http:
        _put(http, "/certificates/plain", {"data": plain})
        _put(
            http, "/apis/pinned", {"displayName": "p", "path": "pinned", "serviceUrl": backend.url}
        )
        operation = {"displayName": "all", "method": "*", "urlTemplate": "/*"}
        _put(http, "/apis/pinned/operations/all", operation)
        _put(http, "/apis/pinned/policies/policy", {"format": "rawxml", "value": deny_when(PINNED)})
    served.ok(
        "hostname", "set", PLAIN, "--no-negotiate-client-certificate", "--certificate", "plain"
    )
    return served


def _put(http, path: str, properties: dict) -> None:
    reply = http.put(path, json={"properties": properties})
    assert reply.is_success, f"PUT {path}: {reply.text}"


@pytest.fixture(scope="module")
def both_cas(served: Served, clients: Clients, tmp_path_factory) -> Path:
    """A CA bundle for curl: the dev CA (localhost) and the clients' root (the plain hostname)."""
    bundle = tmp_path_factory.mktemp("bundle") / "cas.pem"
    bundle.write_bytes(served.dev_ca.read_bytes() + clients.root.cert_pem)
    return bundle


def test_trusted_client_certificate_is_let_through(gateway: Served, clients: Clients) -> None:
    status, body = gateway.curl("/echo/hello?x=1", clients.trusted)
    assert status == 200
    assert json.loads(body) == {"method": "GET", "path": "/hello?x=1"}  # the backend's answer


def test_self_signed_certificate_is_refused(gateway: Served, clients: Clients) -> None:
    assert gateway.curl_status("/echo/hello", clients.self_signed) == 403


def test_no_certificate_is_refused(gateway: Served) -> None:
    assert gateway.curl_status("/echo/hello") == 403


def test_self_signed_certificate_pinned_by_thumbprint(gateway: Served, clients: Clients) -> None:
    assert gateway.curl_status("/pinned/x", clients.self_signed) == 403
    der = base64.b64encode(clients.self_signed_cert.der).decode()
    with gateway.http() as http:  # a certificate without key, as base64 DER (APIM allows it)
        uploaded = http.put("/certificates/pinned-client", json={"properties": {"data": der}})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["properties"]["thumbprint"] == clients.self_signed_cert.thumbprint
    assert gateway.curl_status("/pinned/x", clients.self_signed) == 200
    assert gateway.curl_status("/pinned/x", clients.trusted) == 200
    assert gateway.curl_status("/pinned/x") == 403
    assert gateway.curl_status("/echo/x", clients.self_signed) == 403


def test_negotiation_is_per_hostname_and_switches_without_restart(
    gateway: Served, clients: Clients, both_cas: Path
) -> None:
    assert "CertificateRequest" in gateway.s_client("localhost")
    assert "CertificateRequest" not in gateway.s_client(PLAIN)
    assert gateway.curl_status("/echo/x", clients.trusted, host=PLAIN, cacert=both_cas) == 403
    gateway.ok("hostname", "set", PLAIN, "--negotiate-client-certificate", "--certificate", "plain")
    assert "CertificateRequest" in gateway.s_client(PLAIN)
    assert gateway.curl_status("/echo/x", clients.trusted, host=PLAIN, cacert=both_cas) == 200


FORGED = "Client-Cert: :Zm9yZ2Vk:"


@pytest.fixture(scope="module")
def forwarding(gateway: Served, backend: EchoBackend) -> Served:
    """An API with certgate's RFC 9440 extension on, and the README's Verify() policy."""
    with gateway.http() as http:
        properties = {
            "path": "forward",
            "serviceUrl": backend.url,
            "forwardClientCertificate": True,
        }
        _put(http, "/apis/forward", properties)
        operation = {"displayName": "all", "method": "*", "urlTemplate": "/*"}
        _put(http, "/apis/forward/operations/all", operation)
    return gateway


def test_verified_certificate_is_forwarded_as_client_cert(
    forwarding: Served, clients: Clients
) -> None:
    status, body = forwarding.curl("/forward/x", clients.trusted, headers=(FORGED,))
    assert status == 200
    leaf = x509.load_pem_x509_certificate(Path(clients.trusted.cert).read_bytes())
    expected = base64.b64encode(leaf.public_bytes(Encoding.DER)).decode()
    assert json.loads(body)["Client-Cert"] == f":{expected}:"  # the presented one, not the forgery


def test_unverified_certificate_is_not_forwarded_and_forgeries_are_stripped(
    forwarding: Served, clients: Clients
) -> None:
    status, body = forwarding.curl("/forward/x", clients.self_signed, headers=(FORGED,))
    assert status == 200
    assert "Client-Cert" not in json.loads(body)
    status, body = forwarding.curl("/echo/x", clients.trusted, headers=(FORGED,))
    assert status == 200
    assert "Client-Cert" not in json.loads(body)  # stripped even where forwarding is off
