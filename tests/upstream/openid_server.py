"""A real OpenID Connect discovery server for validate-jwt tests: HTTPS on 127.0.0.1.

Any path ending in `openid-configuration` answers the configuration document (`issuer`,
`jwks_uri`); `/keys` answers the current key set (`keys`, replaceable to rotate keys). `fetches`
counts the requests per path.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import Counter
from typing import Any

import httptools

from tests.upstream.echo import _load_pair


class OpenIdServer:
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.keys: list[dict] = []
        self.fetches: Counter[str] = Counter()
        self.server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    async def start(cls, server_cert: Any, issuer: str, keys: list[dict]) -> OpenIdServer:
        self = cls(issuer)
        self.keys = keys
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _load_pair(context, server_cert)
        self.server = await asyncio.get_running_loop().create_server(
            lambda: _Protocol(self), "127.0.0.1", 0, ssl=context
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def answer(self, path: str) -> tuple[int, bytes]:
        self.fetches[path] += 1
        if path.endswith("openid-configuration"):
            document = {"issuer": self.issuer, "jwks_uri": f"{self.url}/keys"}
            return 200, json.dumps(document).encode()
        if path == "/keys":
            return 200, json.dumps({"keys": self.keys}).encode()
        return 404, b"{}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class _Protocol(asyncio.Protocol):
    def __init__(self, server: OpenIdServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.url = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        path = self.url.decode().partition("?")[0]
        self.url = b""
        status, body = self.server.answer(path)
        self.transport.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            % (status, len(body), body)
        )
