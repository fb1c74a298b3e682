"""A local stand-in for Azure, for driving the REAL azure SDKs in tests (nothing leaves 127.0.0.1).

- `LocalKeyVault`: HTTPS on 127.0.0.1 implementing the documented Key Vault secrets REST calls the
  SDK makes: `GET /secrets/{name}[/{version}]?api-version=...`, answering an unauthenticated request
  with the 401 `WWW-Authenticate: Bearer authorization=..., resource=...` challenge the SDK expects,
  then checking the bearer token; 403 for an identity without access, 404 `SecretNotFound`.
- `LocalManagedIdentity`: the App Service managed-identity token endpoint (`IDENTITY_ENDPOINT` +
  `IDENTITY_HEADER`, api-version 2019-08-01) that `ManagedIdentityCredential` calls.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests import pki

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SYSTEM_IDENTITY = "system-assigned"


class _Server:
    def __init__(self, handler, context: ssl.SSLContext | None = None) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class LocalManagedIdentity(_Server):
    """Issues opaque tokens; `tokens` maps each to the identity (client id or system-assigned)."""

    def __init__(self, client_ids: set[str]) -> None:
        super().__init__(_IdentityHandler)
        self.header = secrets.token_hex(16)
        self.client_ids = client_ids
        self.tokens: dict[str, str] = {}
        self.endpoint = f"http://127.0.0.1:{self.port}/msi/token"

    def environ(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header}


class _IdentityHandler(_Handler):
    def do_GET(self) -> None:
        owner: LocalManagedIdentity = self.server.owner
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if self.headers.get("X-IDENTITY-HEADER") != owner.header:
            return self.send_json(401, {"statusCode": 401, "message": "bad X-IDENTITY-HEADER"})
        if query.get("api-version") != "2019-08-01" or not query.get("resource"):
            return self.send_json(400, {"statusCode": 400, "message": "bad request"})
        identity = query.get("client_id") or SYSTEM_IDENTITY
        if identity != SYSTEM_IDENTITY and identity not in owner.client_ids:
            return self.send_json(
                400,
                {"statusCode": 400, "message": "No Managed Identity found for specified ClientId"},
            )
        token = secrets.token_urlsafe(24)
        owner.tokens[token] = identity
        self.send_json(
            200,
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + 3600),
                "resource": query["resource"],
                "token_type": "Bearer",
                "client_id": identity,
            },
        )


class LocalKeyVault(_Server):
    """Secrets with versions; `readers` are the identities allowed to get them."""

    def __init__(self, identity: LocalManagedIdentity, directory: Path) -> None:
        authority = pki.ca("Local Key Vault CA")
        cert_file, key_file = pki.server(authority, "localhost").write(directory, "keyvault")
        self.ca_file = directory / "keyvault-ca.pem"
        self.ca_file.write_bytes(authority.cert_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        super().__init__(_VaultHandler, context)
        self.identity = identity
        self.readers: set[str] = {SYSTEM_IDENTITY}
        self.secrets: dict[str, list[tuple[str, str, str]]] = {}
        self.url = f"https://127.0.0.1:{self.port}"
        self.challenges = 0
        self.reads = 0

    def set_secret(self, name: str, value: str, content_type: str = "application/x-pkcs12") -> str:
        version = secrets.token_hex(16)
        self.secrets.setdefault(name, []).append((version, value, content_type))
        return version

    def identifier(self, name: str, version: str | None = None) -> str:
        return f"{self.url}/secrets/{name}" + (f"/{version}" if version else "")


class _VaultHandler(_Handler):
    def do_GET(self) -> None:
        owner: LocalKeyVault = self.server.owner
        parts = urlsplit(self.path)
        if "api-version" not in parse_qs(parts.query):
            return self.send_json(
                400, {"error": {"code": "BadParameter", "message": "api-version"}}
            )
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            owner.challenges += 1
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                'resource="https://vault.azure.net"'
            )
            return self.send_json(
                401,
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer",
                    }
                },
                {"WWW-Authenticate": challenge},
            )
        identity = owner.identity.tokens.get(auth[len("Bearer ") :])
        if identity not in owner.readers:
            return self.send_json(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "The user, group or application "
                        "does not have secrets get permission on key vault",
                    }
                },
            )
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) not in (2, 3) or segments[0] != "secrets":
            return self.send_json(404, {"error": {"code": "NotFound", "message": "no route"}})
        versions = owner.secrets.get(segments[1], [])
        wanted = segments[2] if len(segments) == 3 else None
        found = [v for v in versions if wanted in (None, v[0])]
        if not found:
            return self.send_json(
                404,
                {
                    "error": {
                        "code": "SecretNotFound",
                        "message": f"A secret with (name/id) "
                        f"{segments[1]} was not found in this key vault.",
                    }
                },
            )
        owner.reads += 1
        version, value, content_type = found[-1]
        now = int(time.time())
        self.send_json(
            200,
            {
                "value": value,
                "contentType": content_type,
                "id": f"{owner.url}/secrets/{segments[1]}/{version}",
                "attributes": {
                    "enabled": True,
                    "created": now,
                    "updated": now,
                    "recoveryLevel": "Recoverable+Purgeable",
                },
                "tags": {},
            },
        )
