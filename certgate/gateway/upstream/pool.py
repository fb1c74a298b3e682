"""Keep-alive connection pools, one per (origin, client TLS identity, web proxy).

A connection opened with certificate A lives in A's pool only, so it can never carry a request
that must present B or no certificate. When a configuration change retires an identity (its
certificate replaced, the CA store changed), its pool leaves the table: idle connections close at
once, busy ones close when their response ends, and new requests build a fresh pool.
Idle connections close after `idle_timeout` seconds (one sweep timer for all pools), and waits
for a backend expire through one deadline ticker (`TICK`), not a timer per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from certgate.gateway.upstream.connection import UpstreamConnection
from certgate.gateway.upstream.proxy import Proxy, open_tunnel
from certgate.gateway.upstream.tls import ClientIdentity, TLSClientProtocol
from certgate.policy.errors import BackendError

log = logging.getLogger("certgate.upstream")
TICK = 0.05  # seconds between deadline checks: the precision of backend timeouts


class Origin:
    """scheme://host:port of a backend, parsed once per distinct base URL."""

    __slots__ = ("host", "host_header", "key", "port", "prefix_len", "tls")

    def __init__(self, scheme: str, host: str, port: int, host_header: str, prefix_len: int):
        self.tls = scheme == "https"
        self.host = host
        self.port = port
        self.host_header = host_header
        self.prefix_len = prefix_len  # len("scheme://netloc") in the base URL
        self.key = (scheme, host, port)


class Pool:
    """Idle connections of one (origin, identity), most recently used first out."""

    __slots__ = ("connections", "identity", "idle", "manager", "origin", "proxy", "retired")

    def __init__(
        self,
        manager: Pools,
        origin: Origin,
        identity: ClientIdentity | None,
        proxy: Proxy | None = None,
    ) -> None:
        self.manager = manager
        self.origin = origin
        self.identity = identity
        self.proxy = proxy
        self.idle: list[UpstreamConnection] = []
        self.connections: set[UpstreamConnection] = set()
        self.retired = False

    def take_idle(self) -> UpstreamConnection | None:
        """The most recently used live idle connection, or None (then `connect`)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def connect(self, timeout: float) -> UpstreamConnection:
        origin = self.origin
        where = f"{origin.host}:{origin.port}"
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # races with the connection completing, and the request would outlive its client.
            async with asyncio.timeout(timeout):
                return await self._open()
        except TimeoutError:
            log.warning("backend %s: connection not established within %.3g s", where, timeout)
            raise BackendError("Timeout", f"Connecting to the backend {where} timed out.") from None
        except OSError as exc:  # TLS handshake, refused, unreachable, DNS, the proxy refused
            reason = exc.strerror or str(exc)
            log.warning("backend %s: connection failed: %s", where, reason)
            raise BackendError(
                "BackendConnectionFailure", f"Connecting to the backend {where} failed: {reason}"
            ) from None

    async def _open(self) -> UpstreamConnection:
        """A connected `UpstreamConnection`: TCP, through the web proxy if any, then TLS."""
        origin, proxy = self.origin, self.proxy
        loop = asyncio.get_running_loop()
        conn = UpstreamConnection(self)
        if not origin.tls:
            host, port = (origin.host, origin.port) if proxy is None else (proxy.host, proxy.port)
            await loop.create_connection(lambda: conn, host, port)
            return conn
        tls = TLSClientProtocol(self.identity, origin.host, conn)
        if proxy is None:
            await loop.create_connection(lambda: tls, origin.host, origin.port)
        else:
            tunnel = await open_tunnel(proxy, origin.host, origin.port)
            tunnel.set_protocol(tls)
            tls.connection_made(tunnel)
        try:
            await tls.handshake
        except BaseException:
            tls.abort()
            raise
        return conn

    # -- called by connections ------------------------------------------------------------------
    def opened(self, conn: UpstreamConnection) -> None:
        self.connections.add(conn)

    def release(self, conn: UpstreamConnection) -> None:
        manager = self.manager
        if self.retired or len(self.idle) >= manager.max_idle_per_pool:
            conn.close()
            return
        conn.idle_since = manager.loop.time()
        self.idle.append(conn)
        if manager._sweeper is None:
            manager._arm()

    def lost(self, conn: UpstreamConnection) -> None:
        self.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def retire(self) -> None:
        """Drain: close the idle connections now, the busy ones when they are released."""
        self.retired = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class Pools:
    """Every pool of a gateway process, keyed by (origin key, identity key)."""

    def __init__(self, idle_timeout: float = 15.0, max_idle_per_pool: int = 64) -> None:
        self.idle_timeout = idle_timeout
        self.max_idle_per_pool = max_idle_per_pool
        self.loop: Any = None
        self._pools: dict[tuple, Pool] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.watching: set[Any] = set()  # connections and bodies waiting, with `deadline`
        self.read_buffer = memoryview(bytearray(64 * 1024))  # shared by this loop's connections
        self._ticker: asyncio.TimerHandle | None = None

    def get(
        self, origin: Origin, identity: ClientIdentity | None, proxy: Proxy | None = None
    ) -> Pool:
        key = (
            origin.key,
            identity.key if identity is not None else None,
            proxy.key if proxy is not None else None,
        )
        pool = self._pools.get(key)
        if pool is None:
            if self.loop is None:
                self.loop = asyncio.get_running_loop()
            pool = self._pools[key] = Pool(self, origin, identity, proxy)
        return pool

    def retire(self, keep: Callable[[ClientIdentity | None], bool]) -> int:
        """Retire every pool whose identity `keep` refuses; returns how many were retired."""
        doomed = [key for key, pool in self._pools.items() if not keep(pool.identity)]
        for key in doomed:
            self._pools.pop(key).retire()
        return len(doomed)

    def pools(self) -> list[Pool]:
        return list(self._pools.values())

    def watch(self, waiting: Any) -> None:
        """Expire `waiting` (`.deadline`, `.expire()`) when its deadline passes."""
        self.watching.add(waiting)
        if self._ticker is None:
            self._ticker = self.loop.call_later(TICK, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        for waiting in [waiting for waiting in self.watching if waiting.deadline <= now]:
            self.watching.discard(waiting)
            waiting.expire()
        self._ticker = self.loop.call_later(TICK, self._tick) if self.watching else None

    def _arm(self) -> None:
        self._sweeper = self.loop.call_later(self.idle_timeout / 2, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = self.loop.time() - self.idle_timeout
        busy = False
        for key, pool in list(self._pools.items()):
            stale = [conn for conn in pool.idle if conn.idle_since <= deadline]
            for conn in stale:
                pool.idle.remove(conn)
                conn.close()
            if pool.idle:
                busy = True
            elif all(conn.closed for conn in pool.connections):
                del self._pools[key]  # nothing busy either: forget the pool
                pool.retired = True  # the Forwarder's cached routes to it are rebuilt
        if busy:
            self._arm()

    def close(self) -> None:
        """Close every connection (shutdown)."""
        for timer in (self._sweeper, self._ticker):
            if timer is not None:
                timer.cancel()
        self._sweeper = self._ticker = None
        for pool in self._pools.values():
            pool.retire()
            for conn in list(pool.connections):
                conn.abort()
        self._pools.clear()
