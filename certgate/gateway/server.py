"""The gateway server of one process: HTTPS (and optionally plain HTTP) listeners on uvloop.

API (for `certgate serve` and tests):

    server = GatewayServer(config, forwarder=forwarder, access_log=AccessLog.open("-"))
    await server.start(host="127.0.0.1", https_port=8443, http_port=8080, reuse_port=False)
    server.https_port, server.http_port      # the bound ports (useful with port 0)
    server.update(new_config)                # atomic swap: new connections/requests use it,
                                             # in-flight requests finish on the old one
    await server.close()                     # also flushes the access log

`forwarder` is the default `Forwarder` (`await forwarder.forward(context, options)`), used unless
the config carries its own. Several processes: see `certgate.gateway.workers`.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

from certgate.expressions import apply_limits as apply_expression_limits
from certgate.gateway.config import GatewayConfig
from certgate.gateway.exchange import ConnectionInfo
from certgate.gateway.handler import RequestHandler
from certgate.gateway.http1 import HTTP1Protocol
from certgate.gateway.http2 import HTTP2Protocol
from certgate.gateway.stripping import request_header_rules
from certgate.gateway.tls import ALPN_H2, TLSServerProtocol
from certgate.gateway.upstream.forwarder import Forwarder
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.observe.accesslog import AccessLog
from certgate.observe.metrics import emit_metric
from certgate.policy import stores
from certgate.policy.elements.utility import set_metric_sink


class _RefusedProtocol(asyncio.Protocol):
    """TLS listener without any server certificate configured: close at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


class GatewayServer:
    """Serves one `GatewayConfig` at a time; `update()` swaps it atomically."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        forwarder: Any = None,
        limits: Limits = DEFAULT_LIMITS,
        access_log: AccessLog | None = None,
    ) -> None:
        self._config = config
        self.limits = limits
        apply_expression_limits(limits)  # expressions read them per process (expressions/budget.py)
        set_metric_sink(emit_metric)  # emit-metric policies feed this process's Prometheus values
        self.header_rules = request_header_rules(limits.strip_request_headers)
        self.stores = stores.configure(limits)  # the cache and counters policies use
        self.stores.use(config.cache_url)
        # A policy's body limit and backend calls come from the forwarder: there is always one.
        self.handler = RequestHandler(self._current, forwarder or Forwarder(limits), access_log)
        self._servers: list[asyncio.AbstractServer] = []
        self.https_port: int | None = None
        self.http_port: int | None = None

    @property
    def config(self) -> GatewayConfig:
        return self._config

    def _current(self) -> GatewayConfig:
        return self._config

    def update(self, config: GatewayConfig) -> None:
        """Swap the configuration; takes effect for the next connection or request."""
        if config.cache_url != self._config.cache_url:
            self.stores.use(config.cache_url)
        self._config = config

    # -- protocol factories -------------------------------------------------------------------
    def _https_protocol(self) -> asyncio.Protocol:
        sni = self._config.sni
        if sni is None:
            return _RefusedProtocol()
        return TLSServerProtocol(sni, self._app_protocol, self.limits.handshake_timeout)

    def _app_protocol(self, tls: TLSServerProtocol) -> asyncio.Protocol:
        info = ConnectionInfo(
            "https", tls.get_extra_info("peername"), tls.get_extra_info("sockname"), tls
        )
        name = tls.server_name
        info.server_name = name.decode("ascii", "replace") if name else None
        if tls.alpn == ALPN_H2:
            return HTTP2Protocol(self.handler, info, self.header_rules, self.limits)
        return HTTP1Protocol(self.handler, info, self.header_rules, self.limits)

    def _http_protocol(self) -> asyncio.Protocol:
        return HTTP1Protocol(self.handler, None, self.header_rules, self.limits)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(
        self,
        host: str = "127.0.0.1",
        https_port: int | None = 0,
        http_port: int | None = None,
        *,
        reuse_port: bool = False,
    ) -> None:
        loop = asyncio.get_running_loop()
        backlog = self.limits.listen_backlog
        if https_port is not None:
            server = await loop.create_server(
                self._https_protocol,
                sock=_listen_socket(host, https_port, reuse_port, backlog),
                backlog=backlog,  # uvloop listens again with this value (its default is 100)
            )
            self._servers.append(server)
            self.https_port = server.sockets[0].getsockname()[1]
        if http_port is not None:
            server = await loop.create_server(
                self._http_protocol,
                sock=_listen_socket(host, http_port, reuse_port, backlog),
                backlog=backlog,
            )
            self._servers.append(server)
            self.http_port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        await stores.release(self.stores)
        self.handler.metrics.flush()
        if self.handler.access_log is not None:
            self.handler.access_log.flush()


def _listen_socket(host: str, port: int, reuse_port: bool, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock
