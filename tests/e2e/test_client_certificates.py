"""Client certificates through the served gateway with curl and openssl: the README's flow."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

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
    """The README's six CLI calls, plus a pinning API and a non-negotiating hostname."""
    directory = tmp_path_factory.mktemp("flows")
    verify, pinned = directory / "verify.xml", directory / "pinned.xml"
    verify.write_text(deny_when(UNVERIFIED))
    pinned.write_text(deny_when(PINNED))
    plain = directory / "plain.pfx"
    plain.write_bytes(pki.server(clients.root, PLAIN).pfx(None))
    served.ok("ca", "add", str(clients.root_file), "--store", "root")
    served.ok("hostname", "set", "localhost", "--negotiate-client-certificate", "--default")
    served.ok("cert", "add", "plain", "--pfx", str(plain))
    served.ok(
        "hostname", "set", PLAIN, "--no-negotiate-client-certificate", "--certificate", "plain"
    )
    for api in ("echo", "pinned"):
        served.ok("api", "create", api, "--path", api, "--service-url", backend.url)
        served.ok("operation", "add", api, "all", "--method", "*", "--url-template", "/*")
    served.ok("policy", "set", "--api", "echo", str(verify))
    served.ok("policy", "set", "--api", "pinned", str(pinned))
    return served


@pytest.fixture(scope="module")
def both_cas(served: Served, clients: Clients, tmp_path_factory) -> Path:
    """A CA bundle for curl: the dev CA (localhost) and the clients' root (the plain hostname)."""
    bundle = tmp_path_factory.mktemp("bundle") / "cas.pem"
    bundle.write_bytes(served.dev_ca.read_bytes() + clients.root.cert_pem)
    return bundle


def test_trusted_client_certificate_is_let_through(gateway: Served, clients: Clients) -> None:
    assert gateway.curl_status("/echo/hello", clients.trusted) == 200


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
