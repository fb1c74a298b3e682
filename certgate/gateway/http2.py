"""HTTP/2 server protocol on `h2`: one task per stream, bodies streamed under flow control.

Inbound backpressure is HTTP/2 flow control: received DATA is acknowledged (window credit returned)
only when the consumer reads it, so a slow backend stalls the client, not memory. Outbound data is
sent as the peer's window allows. A reset stream or a lost connection cancels the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings

from certgate.gateway.body import HIGH_WATER, ClientDisconnected, InboundBody
from certgate.gateway.exchange import (
    CONTENT_LENGTH,
    FORWARDED_FOR,
    HOST,
    RESPONSE_SKIP,
    ConnectionInfo,
)
from certgate.gateway.http1 import IDLE_TIMEOUT, Handler
from certgate.gateway.stripping import DEFAULT_HEADER_RULES, RequestHeaderRules
from certgate.httpsyntax import UnsafeHead, name_problem, value_problem

_CONNECTION_WINDOW = 4 * 1024 * 1024
_MAX_STREAMS = 128
_NO_BODY_STATUS = frozenset({204, 304})


class H2Exchange:
    """One HTTP/2 stream: request and response."""

    __slots__ = (
        "_proto",
        "authority",
        "body",
        "conn",
        "forwarded_for",
        "headers",
        "http_version",
        "method",
        "responded",
        "sent",
        "stream_id",
        "target",
        "task",
    )

    def __init__(self, proto: HTTP2Protocol, stream_id: int) -> None:
        self._proto = proto
        self.stream_id = stream_id
        self.method = "GET"
        self.target = "/"
        self.authority = ""
        self.forwarded_for: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: InboundBody | None = None
        self.conn = proto.info
        self.http_version = "2"
        self.responded = False
        self.sent = 0  # response body bytes sent (the access log's ResponseSize; HPACK heads aside)
        self.task: asyncio.Task | None = None

    def _consumed(self, consumed: int, buffered: int) -> None:
        self._proto.acknowledge(self.stream_id, consumed)

    async def respond(
        self, status: int, reason: str, headers: Iterable[tuple[str, str]], body: Any
    ) -> None:
        proto = self._proto
        body_allowed = self.method != "HEAD" and status not in _NO_BODY_STATUS
        fields = [(b":status", str(status).encode())]
        length: str | None = None
        for name, value in headers:
            lname = name.lower()
            if lname in RESPONSE_SKIP:
                if lname == "content-length":
                    length = value
                continue
            if name_problem(lname) or value_problem(value):
                raise UnsafeHead("a response header is not a token or has a CR, LF or NUL")
            fields.append((lname.encode("latin-1"), value.encode("latin-1")))
        self.responded = True
        is_bytes = isinstance(body, (bytes, bytearray))
        if is_bytes and (body_allowed or length is None):
            length = str(len(body))
        if length is not None and status not in _NO_BODY_STATUS:
            fields.append((b"content-length", length.encode()))
        empty = not body_allowed or body is None or (is_bytes and not body)
        proto.send_headers(self.stream_id, fields, empty)
        if empty:
            return
        if is_bytes:
            self.sent = len(body)
            await proto.send_data(self.stream_id, body, True)
            return
        async for chunk in body:
            if chunk:
                self.sent += len(chunk)
                await proto.send_data(self.stream_id, chunk, False)
        await proto.send_data(self.stream_id, b"", True)


class HTTP2Protocol(asyncio.Protocol):
    """HTTP/2 over `TLSServerProtocol` (ALPN h2)."""

    def __init__(
        self,
        handler: Handler,
        info: ConnectionInfo,
        header_rules: RequestHeaderRules = DEFAULT_HEADER_RULES,
    ) -> None:
        self._header_kinds, self._drop_prefixes = header_rules
        self._handler = handler
        self.info = info
        self._h2 = H2Connection(
            H2Configuration(client_side=False, header_encoding=None, validate_inbound_headers=True)
        )
        self._transport: Any = None
        self._streams: dict[int, H2Exchange] = {}
        self._window_waiters: list[asyncio.Future] = []
        self._write_paused = False
        self._closed = False
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- transport events ---------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        h2 = self._h2
        h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: _MAX_STREAMS,
                SettingCodes.INITIAL_WINDOW_SIZE: HIGH_WATER,
            },
        )
        h2.initiate_connection()
        h2.increment_flow_control_window(_CONNECTION_WINDOW)
        self._flush()
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._idle_timer = self._loop.call_later(IDLE_TIMEOUT, self._check_idle)

    def _check_idle(self) -> None:
        if self._closed:
            return
        left = self._last_activity + IDLE_TIMEOUT - self._loop.time()
        if self._streams or left > 0:
            self._idle_timer = self._loop.call_later(max(left, 1.0), self._check_idle)
            return
        self._h2.close_connection()
        self._flush()
        self._close()

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        try:
            events = self._h2.receive_data(data)
        except H2Error:
            self._flush()
            self._close()
            return
        for event in events:
            kind = type(event)
            if kind is RequestReceived:
                self._request(event)
            elif kind is DataReceived:
                self._data(event)
            elif kind is StreamEnded:
                exchange = self._streams.get(event.stream_id)
                if exchange is not None and exchange.body is not None:
                    exchange.body.finish()
            elif kind is StreamReset:
                self._reset(event.stream_id)
            elif kind is WindowUpdated or kind is RemoteSettingsChanged:
                self._wake_writers()
            elif kind is ConnectionTerminated:
                self._flush()
                self._close()
                return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for stream_id in list(self._streams):
            self._reset(stream_id)
        self._wake_writers()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writers()

    # -- streams ------------------------------------------------------------------------------
    def _request(self, event: RequestReceived) -> None:
        exchange = H2Exchange(self, event.stream_id)
        regular = exchange.headers
        kinds, drop_prefixes = self._header_kinds, self._drop_prefixes
        for name, value in event.headers:
            if name[0] == 58:  # b":"
                if name == b":method":
                    exchange.method = value.decode("ascii")
                elif name == b":path":
                    exchange.target = value.decode("latin-1")
                elif name == b":authority":
                    exchange.authority = value.decode("latin-1")
                continue
            key = name.decode("latin-1")
            kind = kinds.get(key)
            if kind is None:
                if not key.startswith(drop_prefixes):
                    regular.append((key, value.decode("latin-1")))
            elif kind == CONTENT_LENGTH:
                regular.append((key, value.decode("latin-1")))
            elif kind == HOST:
                exchange.authority = exchange.authority or value.decode("latin-1")
            elif kind == FORWARDED_FOR:
                text = value.decode("latin-1")
                previous = exchange.forwarded_for
                exchange.forwarded_for = text if previous is None else f"{previous}, {text}"
        if event.stream_ended is None:
            exchange.body = InboundBody(exchange._consumed)
        self._streams[event.stream_id] = exchange
        exchange.task = self._loop.create_task(self._run(exchange))

    def _data(self, event: DataReceived) -> None:
        exchange = self._streams.get(event.stream_id)
        padding = event.flow_controlled_length - len(event.data)
        if exchange is None or exchange.body is None:
            self.acknowledge(event.stream_id, event.flow_controlled_length)
            return
        if padding:
            self.acknowledge(event.stream_id, padding)
        exchange.body.feed(event.data)

    def _reset(self, stream_id: int) -> None:
        exchange = self._streams.pop(stream_id, None)
        if exchange is None:
            return
        if exchange.body is not None:
            exchange.body.fail(ClientDisconnected("stream reset by the client"))
        if exchange.task is not None and not exchange.task.done():
            exchange.task.cancel()

    async def _run(self, exchange: H2Exchange) -> None:
        stream_id = exchange.stream_id
        try:
            await self._handler(exchange)
        except asyncio.CancelledError:
            pass
        except Exception:
            if not self._closed and stream_id in self._streams:
                self._reset_stream(stream_id)
        else:
            if not exchange.responded and stream_id in self._streams:
                self._reset_stream(stream_id)
        finally:
            self._streams.pop(stream_id, None)
            if exchange.body is not None and exchange.body.buffered:
                self.acknowledge(stream_id, exchange.body.discard())

    def _reset_stream(self, stream_id: int) -> None:
        try:
            self._h2.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
        except H2Error:
            return
        self._flush()

    # -- output -------------------------------------------------------------------------------
    def acknowledge(self, stream_id: int, size: int) -> None:
        if self._closed or size <= 0:
            return
        try:
            self._h2.acknowledge_received_data(size, stream_id)
        except H2Error:
            return
        self._flush()

    def send_headers(self, stream_id: int, fields: list, end_stream: bool) -> None:
        if self._closed or stream_id not in self._streams:
            raise ClientDisconnected("stream closed")
        self._h2.send_headers(stream_id, fields, end_stream=end_stream)
        self._flush()

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        h2 = self._h2
        view = memoryview(data)
        while True:
            if self._closed or stream_id not in self._streams:
                raise ClientDisconnected("stream closed")
            if self._write_paused:
                await self._wait_writable()
                continue
            if not view:
                if end_stream:
                    h2.end_stream(stream_id)
                    self._flush()
                return
            window = min(h2.local_flow_control_window(stream_id), h2.max_outbound_frame_size)
            if window <= 0:
                await self._wait_writable()
                continue
            size = min(window, len(view))
            last = end_stream and size == len(view)
            h2.send_data(stream_id, view[:size].tobytes(), end_stream=last)
            view = view[size:]
            self._flush()
            if last:
                return

    async def _wait_writable(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._window_waiters.append(waiter)
        await waiter

    def _wake_writers(self) -> None:
        waiters, self._window_waiters = self._window_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._closed:
            self._transport.write(data)

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.close()
