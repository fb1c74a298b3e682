"""A request answered before its body was read: the client gets the answer, not a TCP reset.

HTTP/1.1 ends its output (close_notify, FIN), then reads and drops what the client still sends
until the client closes, falls silent for `lingering_timeout`, or `lingering_time` passes. HTTP/2
resets the answered stream with NO_ERROR (RFC 9113 8.1) and keeps crediting its DATA to the
connection, so other streams carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import pytest

from certgate.gateway.config import build_gateway_config
from certgate.gateway.server import GatewayServer
from certgate.gateway.upstream.forwarder import Forwarder
from certgate.limits import Limits
from tests.gateway.conftest import hostnames
from tests.gateway.hostile import client_context, h2_connect, pipeline, read_reply
from tests.gateway.support import run

BUFFERED = 64 * 1024
# /u/read reads the body (413 past BUFFERED) and answers its size; /u/deny answers 403 before
# reading a byte. No backend is ever involved.
READ = (
    "<set-variable name='size' value='@(context.Request.Body.As&lt;string&gt;().Length)'/>"
    "<return-response><set-status code='200' reason='OK'/>"
    "<set-body>@(context.Variables[&quot;size&quot;].ToString())</set-body></return-response>"
)
DENY = "<return-response><set-status code='403' reason='Forbidden'/></return-response>"
ENDLESS = "POST /u/deny HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000000\r\n\r\n"


@pytest.fixture
async def gateways(certs):
    """`await gateways(lingering_time=..., ...)`: a gateway (HTTPS and HTTP) with those limits."""
    servers: list[GatewayServer] = []
    pipelines = {"read": pipeline(READ), "deny": pipeline(DENY)}
    config = build_gateway_config(
        hostnames=hostnames(certs),
        apis={
            "u": {"path": "u", "serviceUrl": "http://127.0.0.1:9", "protocols": ["https", "http"]}
        },
        operations={"u": {op: {"method": "*", "urlTemplate": f"/{op}"} for op in pipelines}},
        pipeline_for=lambda api_id, op_id: pipelines[op_id],
    )

    async def start(**limits: float) -> GatewayServer:
        chosen = Limits(max_buffered_body_bytes=BUFFERED, **limits)
        server = GatewayServer(config, forwarder=Forwarder(chosen), limits=chosen)
        await server.start("127.0.0.1", 0, 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def gateway_holds(gateway_port: int, client_port: int) -> bool:
    """Whether this process (the gateway runs in it) still holds the connection from
    `client_port`: a socket it closed is gone from the table or left to the kernel (inode 0)."""
    with open("/proc/net/tcp") as table:
        rows = [row.split() for row in table.readlines()[1:]]
    return any(
        int(row[1].split(":")[1], 16) == gateway_port
        and int(row[2].split(":")[1], 16) == client_port
        and row[9] != "0"
        for row in rows
    )


async def closed_by_gateway(gateway_port: int, client_port: int, within: float) -> float:
    """Waits until the gateway has closed the connection from `client_port`; returns when."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(within):
        while gateway_holds(gateway_port, client_port):
            await asyncio.sleep(0.01)
    return loop.time()


class TLSClient:
    """A TLS client over memory BIOs on a plain TCP stream. Unlike asyncio's, it neither answers
    the server's close_notify nor stops there: it goes on sending, as a client still uploading
    (or an attacker) would. `read` returns b"" once close_notify arrived."""

    def __init__(self, certs, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader = reader
        self.transport = writer.transport
        self._writer = writer
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = client_context(certs)
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._receive()
        self._send()

    async def _receive(self) -> None:
        self._send()
        data = await self._reader.read(65536)
        if not data:
            raise ConnectionError("closed")
        self._incoming.write(data)

    def _send(self) -> None:
        if self._outgoing.pending:
            self._writer.write(self._outgoing.read())

    async def read(self, size: int) -> bytes:
        while True:
            try:
                return self._tls.read(size)
            except ssl.SSLWantReadError:
                await self._receive()
            except ssl.SSLZeroReturnError:
                return b""

    def write(self, data: bytes) -> None:
        self._tls.write(data)
        self._send()

    async def drain(self) -> None:
        await self._writer.drain()


async def open_client(certs, server: GatewayServer, scheme: str):
    """A raw HTTP/1.1 client connection: something to read, something to write, its local port."""
    port = server.https_port if scheme == "https" else server.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client_port = writer.get_extra_info("sockname")[1]
    if scheme == "http":
        return reader, writer, client_port
    client = TLSClient(certs, reader, writer)
    await client.handshake()
    return client, client, client_port


def port_of(server: GatewayServer, scheme: str) -> int:
    return server.https_port if scheme == "https" else server.http_port


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize(("path", "status"), [("/u/read", 413), ("/u/deny", 403)])
async def test_curl_uploading_a_large_body_gets_the_early_answer(
    certs, gateways, tmp_path, scheme, path, status
):
    """20 MiB uploaded in chunks, without Expect: 100-continue: the answer comes while curl is
    sending (413 once 64 KiB were read, 403 before any). A plain close used to make one run in
    eight to two in three fail ("Send failure: Connection reset by peer", or a 20 s hang over
    TLS). The gateway closes once curl has (long before the lingering bounds)."""
    server = await gateways(lingering_time=60.0, lingering_timeout=30.0)
    port = port_of(server, scheme)
    upload = tmp_path / "upload"
    upload.write_bytes(b"u" * 20 * 1024 * 1024)
    for _ in range(25):
        code, out, err = await run(
            *("curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-X", "POST"),
            *("-H", "Expect:", "-H", "Transfer-Encoding: chunked", "--upload-file", str(upload)),
            *("-w", "%{http_code} %{local_port}"),
            *("--cacert", str(certs.ca_file), "--resolve", f"localhost:{port}:127.0.0.1"),
            f"{scheme}://localhost:{port}{path}",
        )
        assert (code, err.decode()) == (0, "")
        answered, client_port = out.decode().split()
        assert int(answered) == status
        await closed_by_gateway(port, int(client_port), within=5.0)


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_client_that_keeps_sending_is_cut_off_after_lingering_time(certs, gateways, scheme):
    server = await gateways(lingering_time=1.5, lingering_timeout=0.5)
    reader, writer, client_port = await open_client(certs, server, scheme)
    loop = asyncio.get_running_loop()

    async def trickle() -> None:  # 1 KiB every 50 ms, for ever: never silent for 0.5 s
        writer.write(ENDLESS.encode())
        while True:
            writer.write(b"t" * 1024)
            await writer.drain()
            await asyncio.sleep(0.05)

    sending = asyncio.ensure_future(trickle())
    try:
        reply = await read_reply(reader)
        answered = loop.time()
        assert (reply.status, reply.closed) == (403, True)  # answer, then the gateway's EOF
        closed = await closed_by_gateway(port_of(server, scheme), client_port, within=4.0)
        assert not sending.done()  # the client was still sending all along
        assert closed - answered > 1.5 - 0.3  # not cut by the silence timeout (0.5 s)
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        writer.transport.abort()


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_client_that_stops_sending_is_closed_after_lingering_timeout(
    certs, gateways, scheme
):
    server = await gateways(lingering_time=30.0, lingering_timeout=0.5)
    reader, writer, client_port = await open_client(certs, server, scheme)
    writer.write(ENDLESS.encode() + b"s" * 512 * 1024)  # then nothing: unread bytes, no end
    reply = await read_reply(reader)
    answered = asyncio.get_running_loop().time()
    assert (reply.status, reply.closed) == (403, True)
    closed = await closed_by_gateway(port_of(server, scheme), client_port, within=3.0)
    assert closed - answered > 0.5 - 0.2  # silent since before the answer: 0.5 s after it
    writer.transport.abort()


async def test_http2_stream_answered_early_is_reset_with_no_error_and_others_carry_on(
    certs, gateways
):
    """Each of 100 streams sends 48 KiB that are never read: 4.8 MiB, more than the connection
    window the gateway grants, so the connection stalls unless their DATA is credited."""
    from h2.errors import ErrorCodes
    from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset

    server = await gateways()
    reader, writer, h2 = await h2_connect(certs, server.https_port)
    writer.write(h2.data_to_send())
    statuses: dict[int, int] = {}
    bodies: dict[int, bytes] = {}
    ended: set[int] = set()
    resets: dict[int, ErrorCodes] = {}

    async def receive() -> None:
        data = await reader.read(65536)
        assert data, "the gateway closed the connection"
        for event in h2.receive_data(data):
            if isinstance(event, ResponseReceived):
                statuses[event.stream_id] = int(dict(event.headers)[b":status"])
            elif isinstance(event, DataReceived):
                bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                ended.add(event.stream_id)
            elif isinstance(event, StreamReset):
                resets[event.stream_id] = event.error_code
        writer.write(h2.data_to_send())

    def request(path: str, end_stream: bool = False) -> int:
        stream_id = h2.get_next_available_stream_id()
        fields = [(":method", "POST"), (":path", path), (":scheme", "https")]
        h2.send_headers(stream_id, [*fields, (":authority", "localhost")], end_stream=end_stream)
        return stream_id

    size = 48 * 1024
    async with asyncio.timeout(20):
        for _ in range(100):
            while h2.outbound_flow_control_window < size or (
                h2.remote_settings.initial_window_size < size
            ):
                await receive()
            stream_id = request("/u/deny")
            for offset in range(0, size, 16384):
                h2.send_data(stream_id, b"d" * min(16384, size - offset))
            writer.write(h2.data_to_send())
            while stream_id not in resets:
                await receive()
            assert statuses[stream_id] == 403
            assert stream_id in ended  # the response was complete before the reset
            assert resets[stream_id] == ErrorCodes.NO_ERROR
        stream_id = request("/u/read")
        h2.send_data(stream_id, b"r" * 1000, end_stream=True)
        writer.write(h2.data_to_send())
        while stream_id not in ended:
            await receive()
    assert (statuses[stream_id], bodies[stream_id]) == (200, b"1000")
    assert stream_id not in resets
    writer.transport.abort()
