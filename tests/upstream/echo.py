"""A real HTTP/1.1 backend for upstream tests: stdlib `ssl` (or plain TCP) on 127.0.0.1.

Answers JSON naming what it saw: the SHA-1 thumbprint of the client certificate (or null), the
request line, headers, body size and a connection number. Special paths:
- `/slow` never answers; `/stall` sends half its body, then nothing;
- `/bytes/N` streams N bytes; `/echo` streams the request body back (chunked);
- `/close` answers with Connection: close; `/early` answers 413 before reading the body;
- `/eof` is an HTTP/1.0 response ended by closing; `/continue` sends an interim 100 first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
from typing import Any

import httptools

from tests.pki import Issued


class EchoBackend:
    """Start with `await EchoBackend.start(server_cert, client_ca)`; `url` is its base URL."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tls = False
        self.connections = 0  # ever accepted
        self.open: dict[asyncio.Transport, str | None] = {}  # open connection -> thumbprint
        self.closed = asyncio.Event()  # set whenever a connection closes
        self.thumbprints_by_connection: dict[int, str | None] = {}

    @classmethod
    async def start(
        cls, server_cert: Issued | None = None, client_ca: Issued | None = None
    ) -> EchoBackend:
        self = cls()
        context = None
        if server_cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            _load_pair(context, server_cert)
            if client_ca is not None:
                context.load_verify_locations(cadata=client_ca.cert_pem.decode())
                context.verify_mode = ssl.CERT_OPTIONAL
            self.tls = True
        self.server = await asyncio.get_running_loop().create_server(
            lambda: _EchoProtocol(self), "127.0.0.1", 0, ssl=context
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, host: str = "localhost") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for transport in list(self.open):
                transport.abort()
            await self.server.wait_closed()


def _load_pair(context: ssl.SSLContext, issued: Issued) -> None:
    fd = os.memfd_create("echo-server", os.MFD_CLOEXEC)
    try:
        os.write(fd, issued.cert_pem + issued.chain_pem + issued.key_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


class _EchoProtocol(asyncio.Protocol):
    def __init__(self, backend: EchoBackend) -> None:
        self.backend = backend
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.thumbprint: str | None = None
        self.number = 0
        self.streaming: asyncio.Future | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body_len = 0
        self.body_sha = hashlib.sha256()
        self.echo = False
        self.echo_chunks: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        backend = self.backend
        backend.connections += 1
        self.number = backend.connections
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            self.thumbprint = hashlib.sha1(der).hexdigest().upper() if der else None
        backend.thumbprints_by_connection[self.number] = self.thumbprint
        backend.open[transport] = self.thumbprint

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        self.backend.open.pop(self.transport, None)
        self.backend.closed.set()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode(), value.decode()))

    def on_headers_complete(self) -> None:
        if self.url == b"/early":  # refuses the upload before reading it
            self.transport.write(
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            self.transport.close()
            return
        self.echo = self.url == b"/echo"
        if self.echo:
            self.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_len += len(body)
        self.body_sha.update(body)
        if self.echo:
            self.transport.write(b"%x\r\n%b\r\n" % (len(body), body))

    def on_message_complete(self) -> None:
        path = self.url.decode()
        if self.echo:
            self.transport.write(b"0\r\n\r\n")
        elif path == "/slow":
            pass
        elif path == "/stall":  # half a body, then silence
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        elif path == "/eof":  # HTTP/1.0 style: the body ends with the connection
            self.transport.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-eof")
            self.transport.close()
        elif path.startswith("/bytes/"):
            self.streaming = asyncio.ensure_future(self._stream(int(path.rsplit("/", 1)[1])))
        else:
            payload = {
                "thumbprint": self.thumbprint,
                "connection": self.number,
                "method": self.parser.get_method().decode(),
                "path": path,
                "headers": self.headers,
                "body_len": self.body_len,
                "body_sha256": self.body_sha.hexdigest(),
            }
            body = json.dumps(payload).encode()
            extra = b"Connection: close\r\n" if path == "/close" else b""
            if path == "/continue":
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if payload["method"] == "HEAD":
                body = b""  # the length of the GET response, no content (RFC 9110 9.3.2)
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%b"
                b"Content-Length: %d\r\n\r\n%b" % (extra, len(json.dumps(payload)), body)
            )
            if extra:
                self.transport.close()
        self._reset()

    async def _stream(self, size: int) -> None:
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * 65536
        while size > 0:
            piece = block[: min(size, len(block))]
            self.transport.write(piece)
            size -= len(piece)
            await self.writable.wait()
            if self.transport.is_closing():
                return
