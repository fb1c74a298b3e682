"""Test helpers for the gateway: a real HTTP backend, pipeline/forwarder stand-ins, real clients."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certgate.certs.material import CertificateMaterial
from certgate.gateway.config import HostnameConfig, build_gateway_config
from certgate.gateway.http1 import HTTP1Protocol
from certgate.gateway.server import GatewayServer, _listen_socket
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.engine import compile_pipeline
from certgate.policy.loader import parse_document
from tests import pki

CHUNK = b"x" * 65536


def material(issued: pki.Issued) -> CertificateMaterial:
    return CertificateMaterial(issued.cert, issued.key, tuple(issued.chain))


class Backend:
    """A real HTTP/1.1 server (certgate's own protocol) answering by path:

    /.../echo*     JSON with method, target, headers and the body's size
    /.../upload    streams the body, answers {"received": n, "sha256": ...}
    /.../download/N  streams N bytes (chunked unless ?length)
    /.../slow      never answers within the test
    /.../mirror    the request body back, with the request's Content-Type
    """

    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.connections: set[HTTP1Protocol] = set()
        self.requests = 0

    async def start(self) -> Backend:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._protocol, sock=_listen_socket("127.0.0.1", 0, False, 128)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _protocol(self) -> HTTP1Protocol:
        proto = _TrackedHTTP1(self._handle, self)
        return proto

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for conn in list(self.connections):
                conn._abort()
            await self.server.wait_closed()

    async def _handle(self, exchange) -> None:
        self.requests += 1
        raw_headers = exchange._proto.raw_headers.pop(id(exchange))
        path, _, query = exchange.target.partition("?")
        if "/upload" in path:
            digest = hashlib.sha256()
            received = 0
            if exchange.body is not None:
                async for chunk in exchange.body:
                    digest.update(chunk)
                    received += len(chunk)
            body = json.dumps({"received": received, "sha256": digest.hexdigest()}).encode()
            await exchange.respond(200, "OK", [("content-type", "application/json")], body)
        elif "/download/" in path:
            size = int(path.rsplit("/", 1)[1])
            headers = [("content-type", "application/octet-stream")]
            if "length" in query:
                headers.append(("content-length", str(size)))
            await exchange.respond(200, "OK", headers, _generate(size))
        elif "/slow" in path:
            await asyncio.sleep(60)
        elif "/mirror" in path:
            data = await exchange.body.read_all() if exchange.body is not None else b""
            media = [value for name, value in raw_headers if name.lower() == "content-type"]
            headers = [("content-type", media[0])] if media else []
            await exchange.respond(200, "OK", headers, data)
        else:
            data = await exchange.body.read_all() if exchange.body is not None else b""
            body = json.dumps(
                {
                    "method": exchange.method,
                    "target": exchange.target,
                    "headers": raw_headers,
                    "length": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            ).encode()
            await exchange.respond(
                200, "OK", [("content-type", "application/json"), ("x-backend", "yes")], body
            )


class _TrackedHTTP1(HTTP1Protocol):
    """The gateway's own protocol as a backend, remembering each request's headers as sent."""

    def __init__(self, handler, backend: Backend) -> None:
        super().__init__(handler)
        self._backend = backend
        self._raw: list[tuple[str, str]] = []
        self.raw_headers: dict[int, list[tuple[str, str]]] = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name.decode("latin-1"), value.decode("latin-1")))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        raw, self._raw = self._raw, []
        super().on_headers_complete()
        self.raw_headers[id(self._parsing)] = raw

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._backend.connections.add(self)

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        self._backend.connections.discard(self)


async def _generate(size: int):
    while size > 0:
        chunk = CHUNK if size >= len(CHUNK) else CHUNK[:size]
        size -= len(chunk)
        yield chunk


@dataclass
class ClientFiles:
    """PEM files of one client identity for curl/openssl (`--cert`, `--key`)."""

    cert: Path
    key: Path


def write_identity(issued: pki.Issued, directory: Path, stem: str) -> ClientFiles:
    cert, key = issued.write(directory, stem)
    return ClientFiles(cert, key)


async def run(
    *argv: str, stdin: bytes | None = None, timeout: float = 30
) -> tuple[int, bytes, bytes]:
    """Runs a real client (curl, openssl) without blocking the loop the gateway serves on."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_PROXY": "*"},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    return proc.returncode, out, err


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    stderr: str

    def json(self):
        return json.loads(self.body)


async def curl(
    port: int,
    path: str,
    *args: str,
    host: str = "localhost",
    ca: Path | None = None,
    identity: ClientFiles | None = None,
    scheme: str = "https",
    tmp: Path,
) -> Reply:
    """One request with the real curl; `identity` presents a client certificate (--cert/--key)."""
    body_file, head_file = tmp / "curl.body", tmp / "curl.head"
    argv = ["curl", "-s", "-S", "--max-time", "30", "-o", str(body_file), "-D", str(head_file)]
    argv += ["-w", "%{http_code}", "--resolve", f"{host}:{port}:127.0.0.1"]
    if ca is not None:
        argv += ["--cacert", str(ca)]
    if identity is not None:
        argv += ["--cert", str(identity.cert), "--key", str(identity.key)]
    argv += [*args, f"{scheme}://{host}:{port}{path}"]
    _, out, err = await run(*argv)
    headers: dict[str, str] = {}
    if head_file.exists():
        block = head_file.read_bytes().decode("latin-1").split("\r\n\r\n")
        final = [b for b in block if b.strip()][-1] if any(b.strip() for b in block) else ""
        for line in final.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = body_file.read_bytes() if body_file.exists() else b""
    for leftover in (body_file, head_file):
        leftover.unlink(missing_ok=True)
    return Reply(int(out or b"0"), headers, body, err.decode(errors="replace"))


def write_file_config(path: Path, revision: int, server: pki.Issued, apis: dict, operations: dict):
    """The configuration a worker process reads (see `file_config`)."""
    pem = (server.cert_pem + server.key_pem).decode()
    path.write_text(
        json.dumps({"revision": revision, "pem": pem, "apis": apis, "operations": operations})
    )


def file_config(path: str, previous):
    """A `build_config` for `WorkerPool`: rebuilds when the file's revision moved."""
    from certgate.certs.material import load_certificate
    from certgate.gateway.config import HostnameConfig, build_gateway_config
    from certgate.policy.engine import compile_pipeline

    data = json.loads(Path(path).read_text())
    if previous is not None and previous.revision == data["revision"]:
        return None
    pipeline = compile_pipeline()
    return build_gateway_config(
        revision=data["revision"],
        hostnames=[HostnameConfig("localhost", load_certificate(data["pem"].encode()), True, True)],
        apis=data["apis"],
        operations=data["operations"],
        pipeline_for=lambda api_id, op_id: pipeline,
        previous=previous,
    )


async def start_verifying_gateway(
    root: pki.Issued, verifier: Any, policy: str, limits: Limits = DEFAULT_LIMITS
) -> GatewayServer:
    """A gateway for `localhost` (certificate from `root`) that asks for client certificates and
    runs `policy` for every request of API `a`, with `verifier` behind Verify()."""
    pipeline = compile_pipeline(None, None, parse_document(policy, "api", MemoryCatalog()), None)
    config = build_gateway_config(
        revision=1,
        hostnames=[
            HostnameConfig(
                "localhost",
                material(pki.server(root, "localhost")),
                negotiate_client_certificate=True,
                default_ssl_binding=True,
            )
        ],
        apis={"a": {"path": "a", "serviceUrl": "http://127.0.0.1:9", "protocols": ["https"]}},
        operations={"a": {"all": {"method": "*", "urlTemplate": "/*"}}},
        pipeline_for=lambda api, op: pipeline,
        verifier=verifier,
        crl_prefetch=verifier.prefetch,
    )
    server = GatewayServer(config, limits=limits)
    await server.start("127.0.0.1", 0, None)
    return server
