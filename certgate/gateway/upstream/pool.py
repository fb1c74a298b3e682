"""Keep-alive connection pools, one per (origin, client TLS identity, web proxy).

A connection opened with certificate A lives in A's pool only, so it can never carry a request
that must present B or no certificate. When a configuration change retires an identity (its
certificate replaced, the CA store changed), its pool leaves the table: idle connections close at
once, busy ones close when their response ends, and new requests build a fresh pool.
Idle connections close after `idle_timeout` seconds (one sweep timer for all pools), and waits
for a backend expire through one deadline ticker (`TICK`), not a timer per request.

A pool holds at most `Limits.backend_max_connections` connections (open or opening). A request
finding it full waits in a bounded queue (`backend_queue_length`; beyond it 503 at once) for a
connection released by another request or a freed slot, at most `backend_queue_timeout` seconds
(503) and never past its forward-request deadline (504, reason Timeout), as Envoy's circuit
breakers (max_connections, max_pending_requests) and nginx's upstream queue do.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from certgate.gateway.upstream.connection import UpstreamConnection
from certgate.gateway.upstream.proxy import Proxy, open_tunnel
from certgate.gateway.upstream.tls import ClientIdentity, TLSClientProtocol
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.observe.metrics import POOL_WAITS, UPSTREAM_CONNECTIONS
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


class _Ticket:
    """A request waiting for a connection of a full pool (`deadline` for the shared ticker)."""

    __slots__ = ("_waiter", "deadline")

    def __init__(self, waiter: asyncio.Future, deadline: float) -> None:
        self._waiter = waiter
        self.deadline = deadline

    def expire(self) -> None:
        waiter = self._waiter
        if not waiter.done():
            waiter.set_exception(TimeoutError())


class Pool:
    """Connections of one (origin, identity): the idle ones most recently used first out, at
    most `max_connections` in all, and the requests queued for one."""

    __slots__ = (
        "connections",
        "identity",
        "idle",
        "manager",
        "origin",
        "proxy",
        "queue",
        "reserved",
        "retired",
    )

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
        self.connections: set[UpstreamConnection] = set()  # open or opening: the slots in use
        self.queue: deque[asyncio.Future] = deque()
        self.reserved = 0  # slots promised to woken queued requests that have not connected yet
        self.retired = False

    def take_idle(self) -> UpstreamConnection | None:
        """The most recently used live idle connection, or None (then `acquire`)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def acquire(self, deadline: float, fresh: bool = False) -> UpstreamConnection:
        """An idle connection (unless `fresh`), a new one while the pool has room, else one
        released while this request waits in the queue. `deadline` is the loop time the
        forward-request timeout ends at."""
        if not fresh:
            conn = self.take_idle()
            if conn is not None:
                return conn
        manager = self.manager
        if len(self.connections) + self.reserved < manager.max_connections:
            return await self.connect(deadline)
        where = f"{self.origin.host}:{self.origin.port}"
        if len(self.queue) >= manager.queue_length:
            POOL_WAITS.labels("queue_full").inc()
            log.warning("backend %s: connection pool and queue full", where)
            raise BackendError(
                "BackendConnectionFailure",
                f"All connections to the backend {where} are busy and the queue is full.",
                503,
            )
        loop = manager.loop
        waiter = loop.create_future()
        ticket = _Ticket(waiter, min(deadline, loop.time() + manager.queue_timeout))
        self.queue.append(waiter)
        manager.watch(ticket)
        try:
            conn = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._pass_on(waiter.result())  # handed over as this request went away
            else:
                self._forget(waiter)
            if not isinstance(exc, TimeoutError):
                raise
            POOL_WAITS.labels("timeout").inc()
            if loop.time() >= deadline:
                raise BackendError(
                    "Timeout", f"No connection to the backend {where} became free in time."
                ) from None
            log.warning("backend %s: no connection became free in the queue time", where)
            raise BackendError(
                "BackendConnectionFailure",
                f"No connection to the backend {where} became free in time.",
                503,
            ) from None
        finally:
            manager.watching.discard(ticket)
        POOL_WAITS.labels("served").inc()
        if conn is None:
            self.reserved -= 1
            return await self.connect(deadline)  # a slot was freed for this request
        if conn.closed:  # the backend closed it before this request ran: its slot is free
            return await self.acquire(deadline, fresh)
        return conn

    def _forget(self, waiter: asyncio.Future) -> None:
        try:
            self.queue.remove(waiter)
        except ValueError:
            pass

    def _pass_on(self, conn: UpstreamConnection | None) -> None:
        """A connection or slot given to a request that no longer wants it goes to the next."""
        if conn is None:
            self.reserved -= 1
            self._wake()
        elif not conn.closed:
            self.release(conn)

    def _wake(self) -> None:
        """Slots are free: let the first queued requests open connections (each reserves one)."""
        queue = self.queue
        limit = self.manager.max_connections
        while queue and len(self.connections) + self.reserved < limit:
            waiter = queue.popleft()
            if not waiter.done():
                self.reserved += 1
                waiter.set_result(None)

    async def connect(self, deadline: float) -> UpstreamConnection:
        origin = self.origin
        where = f"{origin.host}:{origin.port}"
        conn = UpstreamConnection(self)
        self.connections.add(conn)
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # races with the connection completing, and the request would outlive its client.
            async with asyncio.timeout_at(deadline):
                await self._open(conn)
        except TimeoutError:
            self._failed(conn)
            UPSTREAM_CONNECTIONS.labels("timeout").inc()
            log.warning("backend %s: connection not established in time", where)
            raise BackendError("Timeout", f"Connecting to the backend {where} timed out.") from None
        except OSError as exc:  # TLS handshake, refused, unreachable, DNS, the proxy refused
            self._failed(conn)
            UPSTREAM_CONNECTIONS.labels("failed").inc()
            reason = exc.strerror or str(exc)
            log.warning("backend %s: connection failed: %s", where, reason)
            raise BackendError(
                "BackendConnectionFailure", f"Connecting to the backend {where} failed: {reason}"
            ) from None
        except BaseException:
            self._failed(conn)
            raise
        UPSTREAM_CONNECTIONS.labels("ok").inc()
        return conn

    def _failed(self, conn: UpstreamConnection) -> None:
        conn.abort()
        self.lost(conn)

    async def _open(self, conn: UpstreamConnection) -> None:
        """Connect `conn`: TCP, through the web proxy if any, then TLS."""
        origin, proxy = self.origin, self.proxy
        loop = asyncio.get_running_loop()
        if not origin.tls:
            host, port = (origin.host, origin.port) if proxy is None else (proxy.host, proxy.port)
            await loop.create_connection(lambda: conn, host, port)
            return
        identity = self.identity
        assert identity is not None  # every TLS origin's pool has one
        tls = TLSClientProtocol(identity, origin.host, conn)
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

    # -- called by connections ------------------------------------------------------------------
    def release(self, conn: UpstreamConnection) -> None:
        """`conn` finished its exchange cleanly: to the first queued request, else idle."""
        queue = self.queue
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                conn.reused = True
                waiter.set_result(conn)
                return
        manager = self.manager
        if self.retired or len(self.idle) >= manager.max_idle_per_pool:
            conn.close()
            return
        conn.idle_since = manager.loop.time()
        self.idle.append(conn)
        if manager._sweeper is None:
            manager._arm()

    def lost(self, conn: UpstreamConnection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if self.queue:
            self._wake()

    def retire(self) -> None:
        """Drain: close the idle connections now, the busy ones when they are released."""
        self.retired = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class Pools:
    """Every pool of a gateway process, keyed by (origin key, identity key)."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.idle_timeout = limits.backend_idle_timeout
        self.max_idle_per_pool = limits.backend_max_idle
        self.max_connections = limits.backend_max_connections
        self.queue_length = limits.backend_queue_length
        self.queue_timeout = limits.backend_queue_timeout
        self.max_head_bytes = limits.max_response_head_bytes
        self.max_headers = limits.max_response_headers
        self.loop: Any = None
        self._pools: dict[tuple, Pool] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.watching: set[Any] = set()  # connections and bodies waiting, with `deadline`
        self.read_buffer = memoryview(bytearray(64 * 1024))  # shared by this loop's connections
        self.ticker: asyncio.TimerHandle | None = None  # None while nothing is watched

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
        if self.ticker is None:
            self.ticker = self.loop.call_later(TICK, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        for waiting in [waiting for waiting in self.watching if waiting.deadline <= now]:
            self.watching.discard(waiting)
            waiting.expire()
        self.ticker = self.loop.call_later(TICK, self._tick) if self.watching else None

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
        for timer in (self._sweeper, self.ticker):
            if timer is not None:
                timer.cancel()
        self._sweeper = self.ticker = None
        for pool in self._pools.values():
            pool.retire()
            for conn in list(pool.connections):
                conn.abort()
        self._pools.clear()
