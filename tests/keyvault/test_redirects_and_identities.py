"""The vault token stays with the vault it was configured for.

- Redirects: hvac sends the token in `X-Vault-Token`, which `requests` keeps across redirects; a
  307 to another origin must not be followed (real HTTP servers on 127.0.0.1 redirect here).
- A key vault identity's stored credentials are never sent to a new `vaultAddress`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from certgate.certs.keyvault import KeyVault, VaultCredentials
from tests import pki
from tests.management.server import management_server

TOKEN = "svc-token-never-leaves-its-vault"
LEAF = pki.server(pki.ca("Redirect CA"), "redirect.example")


class _Vault(ThreadingHTTPServer):
    """A KV v2 endpoint that redirects `/moved` within itself and `/away` to `elsewhere`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str | None]] = []
        self.elsewhere = ""

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Vault

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("X-Vault-Token")))
        path = self.path.split("?", 1)[0]
        if path.endswith("/moved"):
            self._redirect(path.replace("/moved", "/here"))
        elif path.endswith("/away"):
            self._redirect(f"{self.server.elsewhere}{path}")
        elif self.headers.get("X-Vault-Token") != TOKEN:
            self._json(403, {"errors": ["permission denied"]})
        else:
            data = {"certificate": LEAF.cert_pem.decode(), "private_key": LEAF.key_pem.decode()}
            self._json(200, {"data": {"data": data, "metadata": {"version": 3}}})

    def _redirect(self, location: str) -> None:
        self.send_response(307)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def _serving() -> Iterator[_Vault]:
    server = _Vault()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def vaults():
    with _serving() as vault, _serving() as other:
        vault.elsewhere = other.address
        yield vault, other


@pytest.fixture
def api(tmp_path, vaults):
    vault, _ = vaults
    service = KeyVault(VaultCredentials(address=vault.address, token=TOKEN))
    with (
        management_server(tmp_path, key_vault=service) as server,
        server.client(timeout=30) as client,
    ):
        yield client


def _reference(client, name: str, identifier: str):
    body = {"properties": {"keyVault": {"secretIdentifier": identifier}}}
    return client.put(f"/certificates/{name}", json=body)


def test_same_origin_redirect_is_followed(api, vaults):
    vault, _ = vaults
    created = _reference(api, "moved", f"{vault.address}/v1/secret/data/moved")
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["thumbprint"] == LEAF.thumbprint
    assert [path.split("?")[0] for path, _ in vault.seen] == [
        "/v1/secret/data/moved",
        "/v1/secret/data/here",
    ]


def test_cross_origin_redirect_is_refused_and_the_token_never_sent(api, vaults):
    vault, other = vaults
    refused = _reference(api, "away", f"{vault.address}/v1/secret/data/away")
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "VaultUnreachable"
    assert f"redirected to {other.address};" in error["message"]
    assert "origin only" in error["message"] and TOKEN not in refused.text
    assert other.seen == []
    assert api.get("/certificates/away").status_code == 404


def test_changing_an_identity_vault_address_needs_new_credentials(tmp_path, vaults):
    vault, other = vaults
    with management_server(tmp_path) as server, server.client(timeout=30) as client:
        path = "/keyVaultIdentities/team"
        body = {"properties": {"vaultAddress": vault.address, "token": "first-token"}}
        assert client.put(path, json=body).status_code == 201
        moved = client.patch(path, json={"properties": {"vaultAddress": other.address}})
        assert moved.status_code == 400, moved.text
        assert moved.json()["error"]["target"] == "vaultAddress"
        assert "requires new credentials" in moved.json()["error"]["message"]
        assert client.get(path).json()["properties"]["vaultAddress"] == vault.address

        same_origin = f"{vault.address.upper().replace('HTTP://', 'http://')}/"
        described = client.patch(
            path, json={"properties": {"vaultAddress": same_origin, "description": "d"}}
        )
        assert described.status_code == 200, described.text
        assert server.store.get(path[1:]).secrets == {"token": "first-token"}

        with_token = {"vaultAddress": other.address, "token": "second-token"}
        assert client.patch(path, json={"properties": with_token}).status_code == 200
        stored = server.store.get(path[1:])
        assert stored.properties["vaultAddress"] == other.address
        assert stored.secrets == {"token": "second-token"}
