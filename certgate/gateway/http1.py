"""HTTP/1.1 server protocol on httptools (llhttp): keep-alive, pipelining, streamed bodies.

One `H1Exchange` per request holds the request line, header pairs and body stream and writes the
response. Requests on a connection are answered in order; pipelined requests wait in a queue while
their bodies buffer (bounded: reading pauses past the high-water mark or `Limits.max_pipelined`
waiting requests). A client that disconnects cancels the request in flight, so the forwarder
releases its upstream connection.

Hostile input is refused before it reaches a handler (docs/security.md): a request head larger than
`Limits.max_head_bytes`, counted as bytes arrive (httptools buffers an unfinished line itself), or
with more than `Limits.max_header_count` fields gets 431; HTTP/0.9, two Host headers or an
HTTP/1.1 request without Host get 400; both close the connection. Header names containing `_` are
dropped (nginx's `underscores_in_headers off`: `X_Client_Cert` must not alias `X-Client-Cert` at a
backend), and so are chunked trailers, so they can never become fields of another request. A body
that makes no progress for `Limits.body_timeout` gets 408 and the connection closes.

A response that ends the connection while the client may still be sending (an unread request body,
a refused head) is followed by a lingering close (`certgate.gateway.linger`), so that the client
reads the answer instead of a TCP reset.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httptools

from certgate.gateway.body import (
    HIGH_WATER,
    BodyTimeout,
    ClientDisconnected,
    InboundBody,
    watch_body,
)
from certgate.gateway.exchange import ConnectionInfo
from certgate.gateway.framing import response_framing
from certgate.gateway.linger import close_lingering
from certgate.gateway.stripping import DEFAULT_HEADER_RULES, RequestHeaderRules
from certgate.headerkinds import (
    CONNECTION,
    CONTENT_LENGTH,
    EXPECT,
    FORWARDED_FOR,
    HOST,
    RESPONSE_SKIP,
    TRANSFER_ENCODING,
)
from certgate.httpsyntax import UnsafeHead, head_is_clean
from certgate.limits import DEFAULT_LIMITS, Limits

Handler = Callable[[Any], Awaitable[None]]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _closing_response(status: int, reason: str, message: str) -> bytes:
    """A complete JSON error response that ends the connection (sent before any handler ran)."""
    body = b'{"statusCode": %d, "message": "%s"}' % (status, message.encode())
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (status, reason.encode(), len(body), body)
    )


_BAD_REQUEST = _closing_response(400, "Bad Request", "Bad request: malformed HTTP/1.1 message")
_DUPLICATE_HOST = _closing_response(400, "Bad Request", "Bad request: more than one Host header")
_MISSING_HOST = _closing_response(400, "Bad Request", "Bad request: no Host header")
_HTTP09 = _closing_response(400, "Bad Request", "Bad request: HTTP/0.9 is not supported")
_HEAD_TOO_LARGE = _closing_response(
    431, "Request Header Fields Too Large", "Request header fields too large"
)
_BODY_TIMEOUT = _closing_response(408, "Request Timeout", "Request body timed out")
_PLAIN_CONNECTION = frozenset({"keep-alive", "close"})  # names no other header to drop


class _Refused(Exception):
    """Raised inside a parser callback to refuse the request with `response` (httptools turns it
    into a parse error; `HTTP1Protocol.data_received` sends the response and closes)."""


class H1Exchange:
    """One HTTP/1.1 request and its response."""

    __slots__ = (
        "_proto",
        "authority",
        "body",
        "conn",
        "continue_pending",
        "forwarded_for",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "responded",
        "sent",
        "target",
    )

    def __init__(
        self,
        proto: HTTP1Protocol,
        method: str,
        target: str,
        headers: list,
        authority: str,
        forwarded_for: str | None,
        http_version: str,
        keep_alive: bool,
    ) -> None:
        self._proto = proto
        self.method = method
        self.target = target
        self.headers = headers
        self.authority = authority
        self.forwarded_for = forwarded_for
        self.body: InboundBody | None = None
        self.conn = proto.info
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.continue_pending = False
        self.responded = False
        self.sent = 0  # response bytes written: head and body (the access log's ResponseSize)

    def _send_continue(self) -> None:
        if self.continue_pending:
            self.continue_pending = False
            self._proto.write(_CONTINUE)

    async def respond(
        self,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]],
        body: Any,
        vetted: bool = False,
    ) -> None:
        """Writes the response (`Exchange.respond`); its framing is `response_framing`'s."""
        proto = self._proto
        if self.body is not None and not self.body.complete:
            self.keep_alive = False  # unread request body: the connection cannot be reused
        head = [f"HTTP/1.1 {status} {reason}\r\n"]
        declared: str | None = None
        for name, value in headers:
            lname = name.lower()
            if lname not in RESPONSE_SKIP:
                head.append(f"{name}: {value}\r\n")
            elif lname == "content-length":
                declared = value
        whole = isinstance(body, (bytes, bytearray))
        framing, send_body, chunked, keep_alive = response_framing(
            self.method,
            self.http_version,
            self.keep_alive and proto.keep_alive_allowed,
            status,
            declared,
            len(body) if whole else None,
        )
        lines = len(head)
        head.append(framing)
        head.append("\r\n")
        text = "".join(head)
        # the status and header lines, the framing's (well-formed) lines and the blank line
        if not vetted and not head_is_clean(text, lines + framing.count("\n") + 1):
            raise UnsafeHead("a response header or the reason phrase has a CR, LF or NUL")
        self.responded = True
        self.continue_pending = False
        data = text.encode("latin-1")
        if whole:
            if send_body and body:
                data += body
            self.sent = len(data)
            proto.write(data)
            proto.exchange_done(self, keep_alive)
            return
        proto.write(data)
        self.sent = len(data)
        if send_body:
            async for chunk in body:
                if not chunk:
                    continue
                self.sent += len(chunk)
                if chunked:
                    proto.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    proto.write(chunk)
                if proto.write_paused:
                    await proto.drain()
            if chunked:
                proto.write(b"0\r\n\r\n")
        proto.exchange_done(self, keep_alive)


class HTTP1Protocol(asyncio.Protocol):
    """HTTP/1.1 over any transport-like object (a plain TCP transport or `TLSServerProtocol`)."""

    def __init__(
        self,
        handler: Handler,
        info: ConnectionInfo | None = None,
        header_rules: RequestHeaderRules = DEFAULT_HEADER_RULES,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._handler = handler
        self.info = info
        self._header_kinds, self._drop_prefixes = header_rules
        self._idle_timeout = limits.idle_timeout
        self._max_head = limits.max_head_bytes
        self._max_headers = limits.max_header_count
        self._max_pipelined = limits.max_pipelined
        self._body_timeout = limits.body_timeout
        self._lingering = (limits.lingering_time, limits.lingering_timeout)
        self._unparsed = 0  # bytes received since the last complete head or body
        self._refusal = _BAD_REQUEST
        self._parser = httptools.HttpRequestParser(self)
        self._transport: Any = None
        self._next_message()
        self._parsing: H1Exchange | None = None
        self._active: H1Exchange | None = None
        self._task: asyncio.Task | None = None
        self._next: asyncio.Future | None = None  # the idle task waits here for a request
        self._queue: deque[H1Exchange] = deque()
        self._reading_paused = False
        self._closed = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future | None = None
        self.keep_alive_allowed = True
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- transport events ---------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        if self.info is None:
            self.info = ConnectionInfo(
                "http", transport.get_extra_info("peername"), transport.get_extra_info("sockname")
            )
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._idle_timer = self._loop.call_later(self._idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        # Heads and body bytes reset the count, so what is left after feeding is (at most one
        # read more than) the unfinished head or trailer section httptools is buffering: a line
        # that never ends is cut off.
        self._unparsed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades (WebSocket, h2c) are not proxied: the request is answered as plain
            # HTTP/1.1 and the connection closes after it, since the parser stops there.
            self.keep_alive_allowed = False
            if self._active is None and self._parsing is None:
                self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        if self._unparsed > self._max_head:
            self._refusal = _HEAD_TOO_LARGE
            self._bad_request()

    def _check_idle(self) -> None:
        """One timer per connection, re-armed lazily: no per-request timer cost."""
        if self._closed:
            return
        left = self._last_activity + self._idle_timeout - self._loop.time()
        if self._active is not None or left > 0:
            self._idle_timer = self._loop.call_later(max(left, 1.0), self._check_idle)
            return
        self._closed = True
        self._transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        disconnected = ClientDisconnected("client disconnected")
        for exchange in (self._parsing, self._active, *self._queue):
            if exchange is not None and exchange.body is not None:
                exchange.body.fail(disconnected)
        self._queue.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()
        if self._active is None and not self._closed:  # answering stopped in `exchange_done`
            if self._queue:
                self._start(self._queue.popleft())
            if len(self._queue) < self._max_pipelined:
                self._resume_reading()

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        if self._closed:
            raise ClientDisconnected("client disconnected")
        if self.write_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
            if self._closed:
                raise ClientDisconnected("client disconnected")

    def write(self, data: bytes) -> None:
        if not self._closed:
            self._transport.write(data)

    # -- parser callbacks ---------------------------------------------------------------------
    def _next_message(self) -> None:
        """Fresh state for the next request head (no on_message_begin: one callback less)."""
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._authority: str | None = None
        self._has_body = False
        self._expect_continue = False
        self._connection_tokens: list[str] | None = None
        self._forwarded_for: str | None = None
        self._head_size = 0

    def _refuse(self, response: bytes) -> None:
        self._refusal = response
        raise _Refused

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self._max_head:
            self._refuse(_HEAD_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > self._max_head:
            self._refuse(_HEAD_TOO_LARGE)
        key = name.decode("latin-1")
        if "_" in key:  # (a str test: `b"_" in name` costs ten times more)
            return  # nginx drops them too: X_Client_Cert must not alias X-Client-Cert
        text = value.decode("latin-1")
        lower = key.lower()
        kind = self._header_kinds.get(lower)
        if kind is None:
            if not lower.startswith(self._drop_prefixes):
                self._headers.append((key, text))
        elif kind == CONTENT_LENGTH:
            self._has_body = text.strip() != "0"
            self._headers.append((key, text))
        elif kind == HOST:
            if self._authority is not None:
                self._refuse(_DUPLICATE_HOST)
            self._authority = text
            self._headers.append((key, text))
        elif kind == TRANSFER_ENCODING:
            self._has_body = True
        elif kind == EXPECT:
            self._expect_continue = text.lower() == "100-continue"
        elif kind == CONNECTION:
            if text.lower() in _PLAIN_CONNECTION:
                return
            tokens = [t.strip().lower() for t in text.split(",")]
            extra = [t for t in tokens if t not in ("close", "keep-alive")]
            if extra:
                self._connection_tokens = extra
        elif kind == FORWARDED_FOR:
            self._forwarded_for = (
                text if self._forwarded_for is None else (f"{self._forwarded_for}, {text}")
            )

    def on_headers_complete(self) -> None:
        self._unparsed = 0
        parser = self._parser
        headers = self._headers
        version = parser.get_http_version()
        authority = self._authority
        if authority is None:
            if version != "1.0":
                self._refuse(_HTTP09 if version == "0.9" else _MISSING_HOST)
            authority = ""
        if len(headers) > self._max_headers:
            self._refuse(_HEAD_TOO_LARGE)
        if self._connection_tokens:
            drop = self._connection_tokens
            headers = [(n, v) for n, v in headers if n.lower() not in drop]
        exchange = H1Exchange(
            self,
            parser.get_method().decode("ascii"),
            self._url.decode(),
            headers,
            authority,
            self._forwarded_for,
            version,
            parser.should_keep_alive(),
        )
        if self._has_body:
            body = exchange.body = InboundBody(self._body_consumed, exchange._send_continue)
            exchange.continue_pending = self._expect_continue
            watch_body(
                self._loop,
                body,
                self._body_timeout,
                self._is_reading_paused,
                lambda: self._body_stalled(exchange),
            )
        self._next_message()
        self._parsing = exchange
        if self._active is None:
            self._start(exchange)
        else:
            self._queue.append(exchange)
            if len(self._queue) >= self._max_pipelined:
                self._pause_reading()

    def on_body(self, body: bytes) -> None:
        self._unparsed = 0  # (what follows the last body bytes is a trailer section, counted)
        exchange = self._parsing
        if exchange is None or exchange.body is None:
            return
        if exchange.body.feed(body) or self._queue:
            self._pause_reading()

    def on_message_complete(self) -> None:
        exchange = self._parsing
        self._parsing = None
        if exchange is not None and exchange.body is not None:
            exchange.body.finish()
            self._unparsed = 0  # (the body's bytes)
            # A chunked body's trailers went through `on_header` into the next head's state
            # (counted against its size limit): dropped here, never a field of another request.
            self._next_message()

    # -- request lifecycle --------------------------------------------------------------------
    def _start(self, exchange: H1Exchange) -> None:
        self._active = exchange
        waiter = self._next
        if waiter is not None:
            self._next = None
            waiter.set_result(None)
        elif self._task is None:
            # The connection's own loop: asyncio.get_running_loop() costs a getpid() system call.
            self._task = self._loop.create_task(self._serve())

    async def _serve(self) -> None:
        """The connection's one task, answering its requests in order: a keep-alive request
        costs a future, not a new Task (whose creation and weak registration cost more)."""
        try:
            while not self._closed:
                exchange = self._active
                if exchange is None:
                    self._next = self._loop.create_future()
                    await self._next
                    continue
                await self._handler(exchange)
                if not exchange.responded:
                    break
        except (Exception, asyncio.CancelledError):
            pass  # failed mid-response, or the client went away: the connection is aborted
        self._abort()

    def exchange_done(self, exchange: H1Exchange, keep_alive: bool) -> None:
        """Called by the exchange once its response is fully written."""
        self._active = None
        self._last_activity = self._loop.time()
        if self._closed:
            return
        if not keep_alive:
            self._closed = True
            body = exchange.body
            if body is None or body.complete:
                self._transport.close()
            else:  # the client may still be sending it: a plain close would reset the answer
                body.discard()  # (also ends its progress watch)
                close_lingering(self._transport, *self._lingering)
            return
        if self.write_paused:
            return  # the client reads no responses: answer (so read) no more until it does
        queue = self._queue
        if queue:
            self._active = queue.popleft()
            if len(queue) >= self._max_pipelined:
                return
        if self._reading_paused:  # (tested here: a call less per keep-alive request)
            self._resume_reading()

    def _is_reading_paused(self) -> bool:
        return self._reading_paused

    def _body_stalled(self, exchange: H1Exchange) -> None:
        """The client stopped sending `exchange`'s body: 408 when nothing was answered yet, and
        the request's handler is cancelled (the forwarder gives its backend connection back)."""
        if self._closed:
            return
        assert exchange.body is not None  # only a body stalls
        exchange.body.fail(BodyTimeout("request body timed out"))
        if exchange is self._active and not exchange.responded:
            self._transport.write(_BODY_TIMEOUT)
            self._closed = True
            self._transport.close()
            if self._task is not None:
                self._task.cancel()
        else:
            self._abort()

    def _body_consumed(self, consumed: int, buffered: int) -> None:
        if self._reading_paused and buffered < HIGH_WATER // 2 and not self._queue:
            self._resume_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self._closed:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and not self._closed:
            self._reading_paused = False
            self._transport.resume_reading()

    def _bad_request(self) -> None:
        if self._closed:
            return
        if self._active is None and self._parsing is None:
            self._transport.write(self._refusal)
            self._closed = True
            close_lingering(self._transport, *self._lingering)  # the head may still be arriving
            return
        for exchange in (self._parsing, *self._queue):
            if exchange is not None and exchange.body is not None:
                exchange.body.fail(ValueError("malformed request body"))
        self._abort()

    def _abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.abort()
