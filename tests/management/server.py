"""A real management API over HTTPS on 127.0.0.1 for tests: importable, and used by conftest.

`management_server(tmp_path)` runs uvicorn with TLS in a background thread on a pre-bound socket (so
clients can connect the moment it returns) and yields a `ManagementServer`.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from certgate.certs.keyvault import KeyVault
from certgate.config.sealing import Sealer, load_key
from certgate.config.store import Store
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.management import create_management_app
from certgate.management.kinds import KindRegistry
from certgate.snapshot.compiler import SnapshotBuilder
from tests import pki

TOKEN = "test-admin-token-0123456789"


@dataclass
class ManagementServer:
    base_url: str
    token: str
    store: Store
    ca_file: Path
    directory: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, **options) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers=self.headers, verify=self.ssl_context(), **options
        )

    def async_client(self, **options) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, verify=self.ssl_context(), **options
        )


def open_store(directory: Path) -> Store:
    """The store a server in `directory` uses (a second call reopens the same database)."""
    sealer = Sealer(load_key(directory / "data.key", env={}))
    return Store(f"sqlite:///{directory / 'certgate.sqlite'}", sealer)


@contextmanager
def management_server(
    directory: Path,
    *,
    store: Store | None = None,
    token: str = TOKEN,
    on_change: Callable[[], Awaitable[None]] | None = None,
    kinds: KindRegistry | None = None,
    limits: Limits = DEFAULT_LIMITS,
    authority: pki.Issued | None = None,
    key_vault: KeyVault | None = None,
) -> Iterator[ManagementServer]:
    """Serves the management app over TLS until the block exits; `authority` issues its server
    certificate (default: a fresh test CA, in `ca_file`). Writes are checked by the Snapshot
    compiler unless `kinds` is a registry of the test's own; `key_vault` is the service's vault
    access (default: from the VAULT_* environment)."""
    directory.mkdir(parents=True, exist_ok=True)
    store = store or open_store(directory)
    authority = authority or pki.ca("Management Test CA")
    cert_file, key_file = pki.server(authority, "localhost").write(directory, "management")
    ca_file = directory / "management-ca.pem"
    ca_file.write_bytes(authority.cert_pem)
    app = create_management_app(
        store,
        admin_token=token,
        on_change=on_change,
        kinds=kinds,
        limits=limits,
        compiler=SnapshotBuilder(store) if kinds is None else None,
        key_vault=key_vault,
    )
    config = uvicorn.Config(
        app,
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield ManagementServer(f"https://localhost:{port}", token, store, ca_file, directory)
    finally:
        server.should_exit = server.force_exit = True
        thread.join(timeout=10)
        listener.close()


@contextmanager
def document_server(body: bytes, status: int = 200, hold: bool = False) -> Iterator[str]:
    """Serves `body` at every path; `hold` keeps each request unanswered until the block ends."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if hold:
                release.wait(timeout=30)
                return
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 302:
                self.send_header("Location", "/specs/elsewhere.yaml")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()
