"""A backend entity's web `proxy`: HTTP CONNECT tunnels for https backends, absolute-form requests
for http backends, with `Proxy-Authorization: Basic` when a username is set.

Through a tunnel, TLS (and the client certificate) runs end to end with the backend: the proxy
sees neither the certificate's key nor the request.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httptools


class Proxy:
    """Where to send a backend's traffic; `key` separates pools per proxy and account."""

    __slots__ = ("authorization", "host", "key", "port")

    def __init__(self, host: str, port: int, authorization: str | None) -> None:
        self.host = host
        self.port = port
        self.authorization = authorization
        self.key = (host, port, authorization)

    @classmethod
    def from_properties(cls, proxy: Mapping[str, Any]) -> Proxy:
        parts = urlsplit(proxy["url"])
        authorization = None
        if proxy.get("username"):
            pair = f"{proxy['username']}:{proxy.get('password') or ''}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        return cls(parts.hostname or "", parts.port or 80, authorization)

    def header_line(self) -> str:
        return f"Proxy-Authorization: {self.authorization}\r\n" if self.authorization else ""


class ProxyRefused(ConnectionError):
    """The proxy answered CONNECT with something other than 2xx."""


class _Tunnel(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT; the transport then carries TLS to the backend."""

    def __init__(self) -> None:
        self.established: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._status = 0

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProxyRefused(f"invalid proxy response: {exc}"))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if 200 <= self._status < 300 and not self.established.done():
            self.established.set_result(None)
        else:
            self._fail(ProxyRefused(f"the proxy answered CONNECT with {self._status}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ProxyRefused("the proxy closed the connection"))

    def _fail(self, error: BaseException) -> None:
        if not self.established.done():
            self.established.set_exception(error)


async def open_tunnel(proxy: Proxy, host: str, port: int) -> asyncio.Transport:
    """A TCP transport to host:port through the proxy (CONNECT answered 2xx); TLS goes on top."""
    loop = asyncio.get_running_loop()
    transport, tunnel = await loop.create_connection(_Tunnel, proxy.host, proxy.port)
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{proxy.header_line()}\r\n"
        transport.write(request.encode("latin-1"))
        await tunnel.established
    except BaseException:
        transport.abort()
        raise
    return transport
