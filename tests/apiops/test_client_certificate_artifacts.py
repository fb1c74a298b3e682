"""A hand-written APIOps folder with client-certificate policies, imported into a running
`certgate serve`, then decided by real mTLS requests (curl in, TLS with client certificates out);
and an inconsistent folder that is refused before anything is written."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import pki
from tests.e2e.serve import Served
from tests.gateway.support import write_identity
from tests.management.server import document_server
from tests.upstream.echo import EchoBackend

PASSWORD = "artifacts-Pfx-3"
SPEC = {
    "openapi": "3.0.1",
    "info": {"title": "Orders", "version": "1"},
    "paths": {
        "/whoami": {"get": {"operationId": "whoami", "responses": {"200": {"description": "ok"}}}},
        "/pinned": {"get": {"operationId": "pinned", "responses": {"200": {"description": "ok"}}}},
    },
}
API_POLICY = """<policies>
  <inbound>
    <base />
    <validate-client-certificate validate-revocation="false" validate-trust="true"
        validate-not-before="true" validate-not-after="true">
      <identities><identity issuer-subject="CN=Artifacts Clients Root" /></identities>
    </validate-client-certificate>
    <set-backend-service backend-id="mtls" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""
PINNED_POLICY = """<policies>
  <inbound><base /><authentication-certificate certificate-id="other-client" /></inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>"""


@contextmanager
def tls_backend(server_cert: pki.Issued, client_ca: pki.Issued) -> Iterator[EchoBackend]:
    """The upstream echo backend (reports the client certificate's thumbprint) in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started = asyncio.run_coroutine_threadsafe(EchoBackend.start(server_cert, client_ca), loop)
    backend = started.result(timeout=30)
    try:
        yield backend
    finally:
        asyncio.run_coroutine_threadsafe(backend.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def _write(folder: Path, relative: str, content: str | dict) -> None:
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))


def _folder(folder: Path, backend_url: str, certificates: dict[str, pki.Issued]) -> Path:
    for name, issued in certificates.items():
        _write(
            folder,
            f"certificates/{name}/certificateInformation.json",
            {"properties": {"thumbprint": issued.thumbprint, "subject": f"CN={name}"}},
        )
    _write(
        folder,
        "backends/mtls/backendInformation.json",
        {
            "properties": {
                "url": backend_url,
                "protocol": "http",
                "tls": {"validateCertificateChain": True, "validateCertificateName": True},
                "credentials": {"certificateIds": ["backend-client"]},
            }
        },
    )
    _write(
        folder,
        "apis/orders/apiInformation.json",
        {"properties": {"displayName": "Orders", "path": "orders", "protocols": ["https"]}},
    )
    _write(folder, "apis/orders/specification.json", SPEC)
    _write(folder, "apis/orders/policy.xml", API_POLICY)
    _write(folder, "apis/orders/operations/pinned/policy.xml", PINNED_POLICY)
    return folder


@pytest.fixture(scope="module")
def spec_origin() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 with the OpenAPI document at every path."""
    with document_server(json.dumps(SPEC).encode()) as origin:
        yield origin


@pytest.fixture(scope="module")
def served(tmp_path_factory, spec_origin) -> Iterator[Served]:
    flags = ("--api-import-allow-url", f"{spec_origin}/specs/")
    server = Served.start(tmp_path_factory.mktemp("served"), options=flags)
    yield server
    server.stop()


def test_serve_flag_allows_link_imports_below_its_prefix_only(served, spec_origin):
    def link(api: str, url: str):
        body = {"properties": {"path": api, "format": "openapi+json-link", "value": url}}
        with served.http() as http:
            return http.put(f"/apis/{api}", json=body)

    refused = link("outside", f"{spec_origin}/other/orders.json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "LinkNotAllowed"
    imported = link("linked", f"{spec_origin}/specs/orders.json")
    assert imported.status_code == 201, imported.text
    with served.http() as http:
        names = [o["name"] for o in http.get("/apis/linked/operations").json()["value"]]
        assert names == ["pinned", "whoami"]
        http.delete("/apis/linked", headers={"If-Match": "*"})


def test_imported_client_certificate_policies_decide_real_mtls_requests(served, tmp_path):
    clients_root = pki.ca("Artifacts Clients Root")
    backend_ca = pki.ca("Artifacts Backend CA")
    identities = {"backend-client": backend_ca.issue("backend-client"),
                  "other-client": backend_ca.issue("other-client")}  # fmt: skip
    for name, issued in (("clients", clients_root), ("backends", backend_ca)):
        (tmp_path / f"{name}.pem").write_bytes(issued.cert_pem)
        served.ok("ca", "add", str(tmp_path / f"{name}.pem"), "--store", "root")
    served.ok("hostname", "set", "localhost", "--negotiate-client-certificate", "--default")
    (tmp_path / "password").write_text(PASSWORD)
    for name, issued in identities.items():
        (tmp_path / f"{name}.pfx").write_bytes(issued.pfx(PASSWORD))
        served.ok("cert", "add", name, "--pfx", str(tmp_path / f"{name}.pfx"),
                  "--password-file", str(tmp_path / "password"))  # fmt: skip

    trusted = write_identity(clients_root.issue("trusted caller"), tmp_path, "trusted")
    stranger = write_identity(pki.issue("stranger"), tmp_path, "stranger")
    with tls_backend(pki.server(backend_ca, "localhost"), backend_ca) as backend:
        folder = _folder(tmp_path / "artifacts", backend.url("localhost"), identities)
        plan = json.loads(served.ok("import", "apiops", str(folder), "--output", "json"))
        assert {row["resource"]: row["action"] for row in plan} == {
            "certificates/backend-client": "unchanged",
            "certificates/other-client": "unchanged",
            "backends/mtls": "create",
            "apis/orders": "create",
            "apis/orders/policies/policy": "create",
            "apis/orders/operations/pinned/policies/policy": "create",
        }

        status, body = served.curl("/orders/whoami", trusted)
        assert status == 200, body
        assert json.loads(body)["thumbprint"] == identities["backend-client"].thumbprint
        status, body = served.curl("/orders/pinned", trusted)
        assert status == 200, body
        assert json.loads(body)["thumbprint"] == identities["other-client"].thumbprint
        assert served.curl_status("/orders/whoami", stranger) == 401
        assert served.curl_status("/orders/whoami") == 401
        assert backend.connections >= 1


def test_an_inconsistent_folder_is_refused_and_nothing_is_written(served, tmp_path):
    folder = tmp_path / "artifacts"
    _write(
        folder,
        "named values/fine/namedValueInformation.json",
        {"properties": {"displayName": "fine", "value": "ok"}},
    )
    _write(
        folder,
        "apis/broken/apiInformation.json",
        {"properties": {"path": "broken", "serviceUrl": "https://broken.example.test"}},
    )
    _write(folder, "apis/broken/specification.json", SPEC)
    _write(
        folder,
        "apis/broken/policy.xml",
        """<policies><inbound><base /><set-backend-service backend-id="nowhere" />
        </inbound><backend><base /></backend><outbound><base /></outbound>
        <on-error><base /></on-error></policies>""",
    )
    _write(folder, "apis/broken/operations/ghost/policy.xml", PINNED_POLICY)
    _write(folder, "policy fragments/uses-missing/policyFragmentInformation.json", {})
    _write(
        folder,
        "policy fragments/uses-missing/policy.xml",
        '<fragment><set-header name="x"><value>{{missing}}</value></set-header></fragment>',
    )
    _write(folder, "products/p/productInformation.json", {"properties": {"displayName": "P"}})
    _write(folder, "products/p/apis/elsewhere/productApiInformation.json", {})
    with served.http() as http:
        before = http.get("/namedValues").json()["value"], http.get("/apis").json()["value"]
    revision = _revision(served)

    result = served.cli("import", "apiops", str(folder))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "nothing was written" in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("problem:")]
    assert len(problems) == 4, result.stderr
    assert any("apis/broken/policies/policy" in p and "nowhere" in p for p in problems), problems
    assert any("operation 'ghost'" in p for p in problems)
    assert any("uses-missing" in p and "'missing'" in p for p in problems)
    assert any("API 'elsewhere'" in p for p in problems)
    assert _revision(served) == revision
    with served.http() as http:
        assert (http.get("/namedValues").json()["value"], http.get("/apis").json()["value"]) == (
            before
        )


def _revision(served: Served) -> int:
    from tests.management.server import open_store

    store = open_store(served.data_dir)
    try:
        return store.revision()
    finally:
        store.close()
