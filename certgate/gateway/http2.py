"""HTTP/2 server protocol on `h2`: one task per stream, bodies streamed under flow control.

Inbound backpressure is HTTP/2 flow control: received DATA is acknowledged (window credit returned)
only when the consumer reads it, so a slow backend stalls the client, not memory. Outbound data is
sent as the peer's window allows. A reset stream or a lost connection cancels the request.

Hostile clients (docs/security.md): a stream past `Limits.h2_max_streams` is refused with
RST_STREAM REFUSED_STREAM and a malformed request (CR/LF/NUL in a field, bad pseudo-headers,
connection-specific fields, Host against `:authority`, a `:method` that is not a token) is reset
with PROTOCOL_ERROR: stream errors, where h2 alone would end the connection. Floods end the
connection with GOAWAY ENHANCE_YOUR_CALM, as nginx and Envoy do, by counts rather than rates (no
clock involved): streams the client resets, or that were refused, once more than
`Limits.h2_max_resets` of them outnumber the streams answered (Envoy's rule; CVE-2023-44487, rapid
reset), and more than `Limits.h2_max_control_frames` PING/SETTINGS frames between two answered
streams. Header names with `_` are dropped (as HTTP/1.1); more than `Limits.max_header_count`
fields get 431. A body that makes no progress for `Limits.body_timeout` resets its stream (CANCEL);
a stream answered in full before its body arrived is reset with NO_ERROR (RFC 9113 8.1);
a connection with no open stream for `Limits.idle_timeout` is closed with GOAWAY (pings do not keep
it open).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection, _decode_headers
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    PingReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes, Settings
from h2.stream import StreamClosedBy
from hyperframe.frame import RstStreamFrame

from certgate.gateway.body import HIGH_WATER, ClientDisconnected, InboundBody, watch_body
from certgate.gateway.exchange import ConnectionInfo
from certgate.gateway.http1 import Handler
from certgate.gateway.stripping import DEFAULT_HEADER_RULES, RequestHeaderRules
from certgate.headerkinds import CONTENT_LENGTH, FORWARDED_FOR, HOST, RESPONSE_SKIP
from certgate.httpsyntax import UnsafeHead, name_problem, value_problem
from certgate.limits import DEFAULT_LIMITS, Limits

_CONNECTION_WINDOW = 4 * 1024 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch  # RFC 9110 5.6.2 (a method)
_TOO_LARGE = [("content-type", "application/json")]
_TOO_LARGE_BODY = b'{"statusCode": 431, "message": "Request header fields too large"}'


class _Connection(H2Connection):
    """h2's connection, except for two stream errors h2 turns into connection errors (ending
    every other stream of the connection too): a stream opened past MAX_CONCURRENT_STREAMS is
    refused with RST_STREAM REFUSED_STREAM (RFC 9113 5.1.2), and a malformed request (h2's header
    validation: CR/LF/NUL, pseudo-headers, connection-specific fields, Host against :authority)
    is reset with PROTOCOL_ERROR (RFC 9113 8.1.1). `refused` counts both for the reset budget."""

    refused = 0

    def _receive_headers_frame(self, frame: Any) -> Any:
        stream_id = frame.stream_id
        if (
            stream_id not in self.streams
            and stream_id > self.highest_inbound_stream_id
            and stream_id % 2
            and self.open_inbound_streams >= self.local_settings.max_concurrent_streams
        ):
            _decode_headers(self.decoder, frame.data)  # the HPACK state must stay in step
            self.highest_inbound_stream_id = stream_id
            self._closed_streams[stream_id] = StreamClosedBy.SEND_RST_STREAM
            self.refused += 1
            refusal = RstStreamFrame(stream_id)
            refusal.error_code = ErrorCodes.REFUSED_STREAM
            return [refusal], []
        known = stream_id in self.streams
        try:
            return super()._receive_headers_frame(frame)
        except ProtocolError as error:
            stream = self.streams.get(stream_id)
            if known or stream is None or type(error) is not ProtocolError:
                raise  # not a new stream's header validation (HPACK or framing): connection error
            self.refused += 1
            return stream.reset_stream(ErrorCodes.PROTOCOL_ERROR), []


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
        self,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]],
        body: Any,
        vetted: bool = False,
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
            if not vetted and (name_problem(lname) or value_problem(value)):
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
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._header_kinds, self._drop_prefixes = header_rules
        self._handler = handler
        self.info = info
        self._limits = limits
        self._resets = 0  # streams reset by the client or refused
        self._answered = 0  # streams answered in full
        self._control = 0  # PING and SETTINGS frames since the last stream answered
        self._h2 = _Connection(
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
                SettingCodes.MAX_CONCURRENT_STREAMS: self._limits.h2_max_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: HIGH_WATER,
                SettingCodes.MAX_HEADER_LIST_SIZE: self._limits.max_head_bytes,
            },
        )
        # h2 applies its own MAX_HEADER_LIST_SIZE only on a change acknowledged later: enforced
        # from the first frame here (a larger block ends the connection: ENHANCE_YOUR_CALM)
        h2.decoder.max_header_list_size = self._limits.max_head_bytes
        h2.initiate_connection()
        h2.increment_flow_control_window(_CONNECTION_WINDOW)
        self._flush()
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._idle_timer = self._loop.call_later(self._limits.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        """The clock runs from the last stream's end: frames without a stream (PING) do not
        keep a connection open, nor does a header block that never completes."""
        if self._closed:
            return
        left = self._last_activity + self._limits.idle_timeout - self._loop.time()
        if self._streams or left > 0:
            self._idle_timer = self._loop.call_later(max(left, 1.0), self._check_idle)
            return
        self._h2.close_connection()
        self._flush()
        self._close()

    def data_received(self, data: bytes) -> None:
        h2 = self._h2
        try:
            events = h2.receive_data(data)
        except H2Error:
            self._flush()
            self._close()
            return
        if h2.refused:
            self._resets += h2.refused
            h2.refused = 0
            if self._flooded():
                return
        event: Any  # dispatched on its exact class, which mypy does not narrow on
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
                self._resets += 1
                if self._flooded():
                    return
            elif kind is WindowUpdated:
                self._wake_writers()
            elif kind is RemoteSettingsChanged or kind is PingReceived or kind is PingAckReceived:
                self._control += 1
                if self._flooded():
                    return
                self._wake_writers()
            elif kind is ConnectionTerminated:
                self._flush()
                self._close()
                return
        self._flush()

    def _flooded(self) -> bool:
        """A flood ends the connection: GOAWAY ENHANCE_YOUR_CALM, every stream cancelled."""
        limits = self._limits
        if self._control <= limits.h2_max_control_frames and (
            self._resets <= limits.h2_max_resets or self._resets <= self._answered
        ):
            return False
        self._h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
        self._flush()
        self._close()
        for stream_id in list(self._streams):
            self._reset(stream_id)
        return True

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
        stream_id = event.stream_id
        exchange = H2Exchange(self, stream_id)
        regular = exchange.headers
        kinds, drop_prefixes = self._header_kinds, self._drop_prefixes
        for name, value in event.headers:
            if name[0] == 58:  # b":"
                if name == b":method":
                    if _TOKEN(value) is None:
                        self._reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
                        self._resets += 1
                        return
                    exchange.method = value.decode("ascii")
                elif name == b":path":
                    exchange.target = value.decode("latin-1")
                elif name == b":authority":
                    exchange.authority = value.decode("latin-1")
                continue
            key = name.decode("latin-1")
            if "_" in key:
                continue  # as HTTP/1.1 (nginx's underscores_in_headers off)
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
        handler = self._handler if len(regular) <= self._limits.max_header_count else _too_large
        if event.stream_ended is None:
            body = exchange.body = InboundBody(exchange._consumed)
            watch_body(
                self._loop,
                body,
                self._limits.body_timeout,
                lambda: self._h2.remote_flow_control_window(stream_id) <= 0,
                lambda: self._body_stalled(stream_id),
            )
        self._streams[stream_id] = exchange
        exchange.task = self._loop.create_task(self._run(exchange, handler))

    def _body_stalled(self, stream_id: int) -> None:
        """The client stopped sending this stream's body: reset it (CANCEL), cancelling its
        handler so the forwarder gives its backend connection back."""
        if not self._closed and stream_id in self._streams:
            self._reset_stream(stream_id, ErrorCodes.CANCEL)
            self._reset(stream_id)

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

    async def _run(self, exchange: H2Exchange, handler: Handler) -> None:
        stream_id = exchange.stream_id
        try:
            await handler(exchange)
        except asyncio.CancelledError:
            pass
        except Exception:
            if not self._closed and stream_id in self._streams:
                self._reset_stream(stream_id)
        else:
            if stream_id in self._streams:
                if exchange.responded:
                    self._answered += 1
                    self._control = 0
                    if exchange.body is not None and not exchange.body.complete:
                        # Answered in full while its body still arrives: RST_STREAM NO_ERROR
                        # tells the client to stop sending it (RFC 9113 8.1); DATA already
                        # under way is dropped and credited to the connection by h2.
                        self._reset_stream(stream_id, ErrorCodes.NO_ERROR)
                else:
                    self._reset_stream(stream_id)
        finally:
            self._streams.pop(stream_id, None)
            self._last_activity = self._loop.time()
            body = exchange.body
            if body is not None and (body.buffered or not body.complete):  # ends its watch too
                self.acknowledge(stream_id, body.discard())

    def _reset_stream(self, stream_id: int, code: ErrorCodes = ErrorCodes.INTERNAL_ERROR) -> None:
        try:
            self._h2.reset_stream(stream_id, code)
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


async def _too_large(exchange: H2Exchange) -> None:
    await exchange.respond(431, "Request Header Fields Too Large", _TOO_LARGE, _TOO_LARGE_BODY)
