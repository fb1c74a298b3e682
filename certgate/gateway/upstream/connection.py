"""One HTTP/1.1 connection to a backend: writes a request, parses the response with httptools.

Bodies stream both ways with backpressure: an upload waits while the transport's write buffer is
full (`pause_writing`), and a download stops reading from the backend while more than
`HIGH_WATER` bytes wait unread in the `ResponseBody`. Memory per exchange stays bounded whatever
the body size. Body bytes that arrive before the exchange collects the head are kept in a list;
a response that is complete by then is handed over as bytes, with no stream object at all (the
usual small response, which arrives in the read that brings its head). When a response completes
on a connection that can be reused, the connection goes back to its pool once the bytes that
completed it are parsed and the exchange collected its head; its body bytes stay with the
exchange.

A hostile or broken backend is bounded and never desynchronises the connection:
- the response head (status line, headers, interim 1xx heads, trailers) is limited in bytes and
  header count while it arrives (`Limits.max_response_head_bytes`, `max_response_headers`): bytes
  the parser holds without completing a header count too, so an endless line cannot grow;
- a byte that starts a message when no request is waiting for one (after a complete response, on
  an idle pooled connection, a body after a HEAD response) closes the connection: it is never
  parsed as the response to the next request;
- every wait of an exchange ends at one absolute deadline (the forward-request timeout).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import httptools

from certgate.gateway.body import HIGH_WATER, BodyBuffer
from certgate.headerkinds import CONNECTION_SPECIFIC_BYTES
from certgate.policy.errors import BackendError

if TYPE_CHECKING:
    from certgate.gateway.upstream.pool import Pool

log = logging.getLogger("certgate.upstream")


class ConnectionClosed(ConnectionError):
    """The backend closed the connection before the response was complete."""


class _Refused(Exception):
    """Raised inside a parser callback: the backend sent what this side will not parse."""


_HEAD_TOO_LARGE = "The backend response head is larger than the gateway accepts."
_TOO_MANY_HEADERS = "The backend response has more header fields than the gateway accepts."
_UNEXPECTED = "The backend sent data after a complete response."
_NUL_REASON = "The backend response's reason phrase has a NUL character."


class ResponseBody(BodyBuffer):
    """A backend response body: `async for chunk in body`, `await read_all()`, or `take_ready()`.

    Reading pauses past `HIGH_WATER` unread bytes (`hold`) and resumes when the consumer reads;
    each read waits at most the forward-request timeout. A consumer that stops early must call
    `close()`: the connection, left in the middle of a response, is then closed instead of
    leaking. Finished or failed, the body lets go of its connection (which may serve another
    exchange meanwhile).
    """

    __slots__ = ("_conn", "_paused", "_timeout", "deadline")

    def __init__(self, conn: UpstreamConnection, timeout: float) -> None:
        BodyBuffer.__init__(self)  # (one per response: cheaper than super())
        self._conn: UpstreamConnection | None = conn
        self._paused = False
        self._timeout = timeout
        self.deadline = 0.0

    # -- connection side ------------------------------------------------------------------------
    def hold(self) -> None:
        """Stop reading from the backend until the consumer reads (`feed` returned true)."""
        if not self._paused and self._conn is not None:
            self._paused = True
            self._conn.transport.pause_reading()

    def finish(self) -> None:
        conn, self._conn = self._conn, None
        if self._paused and conn is not None:  # held by the read that completed it: the
            self._paused = False  # connection must read again for its next exchange
            conn.transport.resume_reading()
        BodyBuffer.finish(self)

    def fail(self, error: BaseException) -> None:
        if not self._eof:
            self._conn = None
            super().fail(error)

    # -- consumer side --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop reading: an unfinished response closes its connection (it cannot be reused)."""
        conn, self._conn = self._conn, None
        if conn is not None and not self._eof:
            self._eof = True
            conn.abort()
        self._chunks.clear()

    def _taken(self, size: int) -> None:
        if self._paused and self._conn is not None:
            self._paused = False
            self._conn.transport.resume_reading()

    async def _wait(self) -> None:
        conn = self._conn
        assert conn is not None  # only called while the response is still arriving
        manager = conn.pool.manager
        try:
            await _arm(self, manager, manager.loop.time() + self._timeout)
        except TimeoutError:
            self.close()
            raise BackendError(
                "Timeout", "The backend did not send the response body in time."
            ) from None
        finally:
            _disarm(self, manager)

    def expire(self) -> None:
        """Called by the pools' deadline ticker once `deadline` passed."""
        _expire(self._waiter)


def _arm(owner: Any, manager: Any, deadline: float) -> asyncio.Future[None]:
    """A fresh `owner._waiter` that the pools' deadline ticker fails with TimeoutError once the
    loop time `deadline` passed; the caller awaits it, then calls `_disarm`.

    One shared ticker instead of a timer per wait: uvloop's call_later + cancel costs more than
    the rest of a keep-alive exchange's bookkeeping.
    """
    waiter = owner._waiter = manager.loop.create_future()
    owner.deadline = deadline
    if manager.ticker is None:
        manager.watch(owner)  # (starts the ticker)
    else:
        manager.watching.add(owner)  # (what `watch` does once the ticker runs: a call less)
    return waiter


def _disarm(owner: Any, manager: Any) -> None:
    manager.watching.discard(owner)
    owner._waiter = None


def _expire(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_exception(TimeoutError())


class UpstreamConnection(asyncio.BufferedProtocol):
    """A pooled connection, one exchange at a time: `start` (with `complete` for a request
    written whole), else `write`* and `finish_request`; then `response_head`. The connection
    returns to its pool when the response has fully arrived."""

    def __init__(self, pool: Pool) -> None:
        manager = pool.manager
        self.pool = pool
        self._buffer = manager.read_buffer
        self._max_head = manager.max_head_bytes
        self._max_headers = manager.max_headers
        self.transport: Any = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.deadline = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future | None = None
        self._write_paused = False
        self._error: BaseException | None = None
        self._reset(False, 0.0, 300.0, False)
        self._expecting = False  # no request written yet: nothing may arrive

    def _reset(self, head_only: bool, deadline: float, timeout: float, sent: bool) -> None:
        self._head_only = head_only
        self._head_deadline = deadline  # every wait until the response head ends then
        self._timeout = timeout  # each body read waits at most this
        self._request_sent = sent
        self._headers: list[tuple[str, str]] = []
        self._reason = b""
        self._head: tuple[int, str, list[tuple[str, str]]] | None = None
        self._body: ResponseBody | None = None  # the stream, while it is being fed
        self._early: list[bytes] | None = None  # body bytes before the head is collected
        self._early_size = 0
        self._stream: ResponseBody | None = None  # what `response_head` hands over, once made
        self._framed = False
        self._received = False
        self._finished = False
        self._expecting = True  # a response may begin (cleared once it is complete)
        self._release = False  # complete and reusable: back to the pool after this read
        self._head_size = 0  # bytes of the header fields of this exchange (interim heads too)
        self._unparsed = 0  # bytes received since the last head or body byte was delivered
        self._head_taken = False  # the exchange collected its head; only then may the pool reuse
        self._release_pending = False

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    # Plain http backends: a BufferedProtocol on uvloop's TCP transport reads into the pools'
    # shared buffer instead of a new bytes object per read. The parser consumes it synchronously
    # and httptools copies what it keeps. Over TLS, `TLSClientProtocol` calls `data_received`.
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        self._received = True
        self._unparsed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            refused = exc.__context__ if isinstance(exc.__context__, _Refused) else None
            message = str(refused) if refused else f"Invalid backend response: {exc}"
            self._refuse(message, status=502 if refused is not None else None)
            return
        if self._unparsed > self._max_head:  # a head (or trailer) line that never ends
            self._refuse(_HEAD_TOO_LARGE, status=502)
            return
        if self._release:
            self._release = False
            if self._head_taken:
                self.pool.release(self)
            else:
                self._release_pending = True  # another start() would wipe the unread head
        if self._head_only and self._finished:
            self._head_only = False
            self._parser = httptools.HttpResponseParser(self)  # HEAD: no body follows

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)
        if self._head is not None and not self._framed and exc is None and not self._finished:
            self._finished = True  # a response delimited by the end of the connection
            body, self._body = self._body, None
            if body is not None:
                body.finish()
            return
        self._lose(ConnectionClosed(str(exc) if exc else "connection closed by the backend"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks --------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if not self._expecting:
            raise _Refused(_UNEXPECTED)

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head is not None:
            return  # a trailer field of a chunked body (bounded by `_unparsed`): never passed on
        # Checked once the head is complete: a single read bounds what arrives meanwhile, and
        # `_unparsed` bounds what a head spread over many reads holds.
        self._head_size += len(name) + len(value)
        lower = name.lower()
        if lower in CONNECTION_SPECIFIC_BYTES:
            if lower == b"transfer-encoding" and b"chunked" in value.lower():
                self._framed = True
            return  # framing and connection management are this leg's business only
        if lower == b"content-length":
            self._framed = True
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200 and status != 101:
            self._headers = []  # interim response (100 Continue, 103 Early Hints): skip
            self._reason = b""
            self._framed = False
            return  # its bytes still count towards the head limit
        headers = self._headers
        if b"\x00" in self._reason:  # (llhttp refuses CR, LF and NUL in fields, not there)
            raise _Refused(_NUL_REASON)
        if self._head_size > self._max_head:
            raise _Refused(_HEAD_TOO_LARGE)
        if len(headers) > self._max_headers:
            raise _Refused(_TOO_MANY_HEADERS)
        self._unparsed = 0
        if not (self._head_only or status in (204, 304)):
            self._early = []
        self._head = (status, self._reason.decode("latin-1"), headers)
        if self._head_only:
            self._complete()  # the parser would wait for a body that never comes
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, data: bytes) -> None:
        self._unparsed = 0
        early = self._early
        if early is not None:
            early.append(data)
            self._early_size += len(data)
            if self._early_size > HIGH_WATER:  # the exchange is slow to collect it
                self._make_stream().hold()
            return
        body = self._body
        if body is None:
            raise _Refused(_UNEXPECTED)  # a body after a HEAD response's head
        if body.feed(data):
            body.hold()

    def _make_stream(self) -> ResponseBody:
        """The response body as a stream, holding the bytes gathered so far."""
        body = self._stream = self._body = ResponseBody(self, self._timeout)
        for chunk in self._early or ():
            body.feed(chunk)
        self._early = None
        return body

    def on_message_complete(self) -> None:
        if self._head is None or self._finished:
            return  # the end of an interim response, or of a HEAD response already handled
        body, self._body = self._body, None
        if body is not None:
            body.finish()
        self._complete()  # (bytes still in `_early` are the whole body now)

    def _complete(self) -> None:
        self._finished = True
        self._expecting = False
        if self._request_sent and self._parser.should_keep_alive() and not self.closed:
            self._release = True
        else:
            self.close()

    # -- the exchange ---------------------------------------------------------------------------
    def start(
        self, head: bytes, head_only: bool, deadline: float, timeout: float, complete: bool
    ) -> None:
        """Write the request head (and a small body already joined to it: `complete`, else
        `finish_request` follows the body); every wait until the response head ends at the loop
        time `deadline`, each body read after `timeout` seconds."""
        self._reset(head_only, deadline, timeout, complete)
        self.transport.write(head)

    def finish_request(self) -> None:
        self._request_sent = True

    @property
    def response_started(self) -> bool:
        return self._head is not None

    async def write(self, data: bytes) -> None:
        """Write a body piece, waiting while the backend is not reading."""
        if self.closed:
            raise self._error or ConnectionClosed("connection closed by the backend")
        self.transport.write(data)
        if self._write_paused:
            await self._wait()

    async def response_head(self) -> tuple[int, str, list[tuple[str, str]], ResponseBody | bytes]:
        """Status, reason, header pairs and the body: bytes when it has fully arrived (b"" for a
        response without one), else a stream.

        A failure or cancellation while waiting closes the connection: it is never half-reused.
        """
        try:
            while self._head is None:
                if self._error is not None:
                    raise self._error
                await self._wait()
        except BaseException:
            self.abort()
            raise
        status, reason, headers = self._head
        early = self._early
        if early is None:
            body: ResponseBody | bytes = b"" if self._stream is None else self._stream
        elif self._finished:
            body = early[0] if len(early) == 1 else b"".join(early)
        else:
            body = self._make_stream()  # the rest is still arriving
        self._early = None
        self._head_taken = True
        if self._release_pending:
            self._release_pending = False
            if not self.closed:
                self.pool.release(self)
        return status, reason, headers, body

    async def _wait(self) -> None:
        manager = self.pool.manager
        try:
            await _arm(self, manager, self._head_deadline)
        except TimeoutError:
            self.abort()
            raise BackendError(
                "Timeout", "The backend did not respond within the configured timeout."
            ) from None
        finally:
            _disarm(self, manager)

    def expire(self) -> None:
        """Called by the pools' deadline ticker once `deadline` passed."""
        _expire(self._waiter)

    @property
    def received_nothing(self) -> bool:
        """No response byte arrived: a failure here is a stale keep-alive connection."""
        return not self._received

    def _refuse(self, message: str, status: int | None) -> None:
        where = f"{self.pool.origin.host}:{self.pool.origin.port}"
        log.warning("backend %s: %s Connection closed.", where, message)
        self._lose(BackendError("BackendConnectionFailure", message, status))

    def _lose(self, error: BaseException) -> None:
        self._error = error
        self._release = self._release_pending = False
        if self._early is not None and not self._finished:
            self._make_stream()  # the exchange reads what arrived, then this error
        body, self._body = self._body, None
        if body is not None:
            failure = error
            if not isinstance(error, BackendError):
                message = f"Backend response incomplete: {error}"
                failure = BackendError("BackendConnectionFailure", message)
            body.fail(failure)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if not self.closed:
            self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:  # None: still connecting (pools shutting down)
                self.transport.abort()

    def close(self) -> None:
        """Close gracefully (an idle connection being drained)."""
        if not self.closed:
            self.closed = True
            self.transport.close()
