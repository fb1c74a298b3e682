"""Attack helpers for the backend leg: a raw backend that misbehaves on purpose, a gateway in front
of it with small limits, and a TLS client that reads one response.

`RawBackend(behave)` accepts connections on 127.0.0.1 and runs `behave(conn)` for each: the test
decides byte by byte what the backend sends. It counts accepted and open connections (and the
most open at once), and `conn.sent` counts what the backend managed to write.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httptools

from certgate.gateway.config import build_gateway_config
from certgate.gateway.server import GatewayServer
from certgate.gateway.upstream.forwarder import Forwarder
from certgate.limits import Limits
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.engine import compile_pipeline
from certgate.policy.loader import parse_document
from tests.gateway.conftest import hostnames

# on-error tells the client which LastError the gateway recorded.
ON_ERROR = (
    "<on-error><set-header name='X-Reason' exists-action='override'>"
    "<value>@(context.LastError.Reason)</value></set-header></on-error>"
)


class RawConnection:
    """One accepted backend connection: read the request head, write whatever the test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int):
        self.reader = reader
        self.writer = writer
        self.number = number
        self.sent = 0

    async def read_head(self) -> bytes:
        return await self.reader.readuntil(b"\r\n\r\n")

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()
        self.sent += len(data)

    async def until_closed(self) -> None:
        """Reads (and drops) until the gateway closes the connection."""
        while await self.reader.read(65536):
            pass


Behaviour = Callable[[RawConnection], Awaitable[None]]


class RawBackend:
    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self.connections: list[RawConnection] = []
        self.changed = asyncio.Event()  # set on every accept and close
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> RawBackend:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        conn = RawConnection(reader, writer, self.accepted)
        self.connections.append(conn)
        self._tasks.add(asyncio.current_task())
        self.changed.set()
        try:
            await self.behave(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the gateway closed the connection: what these attacks expect
        except asyncio.CancelledError:
            pass  # `close()`: ends quietly (asyncio logs a cancelled connection callback)
        finally:
            self._tasks.discard(asyncio.current_task())
            self.open -= 1
            writer.transport.abort()
            self.changed.set()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        self._server.close()
        for conn in self.connections:
            conn.writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks)
        await self._server.wait_closed()


def pipeline(inbound: str = "", backend: str = "<forward-request/>", outbound: str = ""):
    text = (
        f"<policies><inbound>{inbound}</inbound><backend>{backend}</backend>"
        f"<outbound>{outbound}</outbound>{ON_ERROR}</policies>"
    )
    return compile_pipeline(None, None, parse_document(text, "api", MemoryCatalog()))


@dataclass
class Gateway:
    server: GatewayServer
    forwarder: Forwarder

    @property
    def port(self) -> int:
        return self.server.https_port

    def pool_queue(self) -> int:
        return sum(len(pool.queue) for pool in self.forwarder.pools.pools())

    async def close(self) -> None:
        await self.server.close()
        self.forwarder.close()


async def start_gateway(certs, backend_url: str, limits: Limits, **sections: str) -> Gateway:
    """A gateway whose API `h` (every method and path) forwards to `backend_url`."""
    compiled = pipeline(**sections)
    config = build_gateway_config(
        hostnames=hostnames(certs),
        apis={"h": {"path": "h", "serviceUrl": backend_url, "protocols": ["https"]}},
        operations={"h": {"all": {"method": "*", "urlTemplate": "/*"}}},
        pipeline_for=lambda api_id, op_id: compiled,
    )
    forwarder = Forwarder(limits)
    server = GatewayServer(config, forwarder=forwarder, limits=limits)
    await server.start("127.0.0.1", 0)
    return Gateway(server, forwarder)


@contextlib.asynccontextmanager
async def attacked(
    certs, behave: Behaviour, limits: Limits, **sections: str
) -> AsyncIterator[tuple[Gateway, RawBackend]]:
    """A raw backend behaving as `behave` and a gateway in front of it, closed afterwards."""
    backend = await RawBackend(behave).start()
    try:
        gateway = await start_gateway(certs, backend.url, limits, **sections)
        try:
            yield gateway, backend
        finally:
            await gateway.close()
    finally:
        await backend.close()


async def h2_connect(certs, port: int):
    """An HTTP/2 client connection (the `h2` library over real TLS): reader, writer, h2."""
    from h2.connection import H2Connection

    context = ssl.create_default_context(cafile=str(certs.ca_file))
    context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    h2 = H2Connection()
    h2.initiate_connection()
    return reader, writer, h2


@dataclass
class Reply:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed: bool = False  # the gateway closed the connection after the response

    def json(self):
        import json

        return json.loads(self.body)


class _ReplyParser:
    def __init__(self, head_only: bool) -> None:
        self.reply = Reply()
        self.complete = False
        self.head_only = head_only
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        if self.head_only:  # a response to HEAD: no body follows
            self.on_message_complete()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.reply.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.reply.body += body

    def on_message_complete(self) -> None:
        self.complete = True
        self.reply.status = self.parser.get_status_code()


def client_context(certs) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    context.set_alpn_protocols(["http/1.1"])
    return context


async def connect(certs, port: int):
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(certs), server_hostname="localhost"
    )


async def read_reply(
    reader: asyncio.StreamReader, timeout: float = 10.0, head_only: bool = False
) -> Reply:
    """One response; then whether the gateway closes the connection (EOF or reset)."""
    parsed = _ReplyParser(head_only)
    async with asyncio.timeout(timeout):
        while not parsed.complete:
            data = await reader.read(65536)
            if not data:
                raise AssertionError("connection closed before a complete response")
            parsed.parser.feed_data(data)
        if parsed.reply.headers.get("connection") == "close":
            try:
                parsed.reply.closed = not await reader.read(1)
            except ConnectionError:
                parsed.reply.closed = True
    return parsed.reply


async def fetch(certs, port: int, head: bytes, body: bytes = b"") -> Reply:
    """Sends `head` + `body` on a new TLS connection and reads the response."""
    reader, writer = await connect(certs, port)
    try:
        writer.write(head + body)
        await writer.drain()
        return await read_reply(reader, head_only=head.startswith(b"HEAD "))
    finally:
        writer.transport.abort()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def rss_kib() -> int:
    """The resident set of this process (gateway and backend run in it), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")
