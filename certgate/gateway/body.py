"""Message bodies as streams (`certgate.policy.context.BodyStream`), with backpressure.

The HTTP protocols (and the backend connection, for responses) feed chunks as they arrive; the
forwarder, the response writer or a buffering policy consumes them. When more than `HIGH_WATER`
bytes wait unread, the producer stops reading (HTTP/1.1 and backends: pause the socket; HTTP/2:
withhold flow-control credit), so memory stays bounded whatever the body size and however slow the
other side is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

HIGH_WATER = 256 * 1024


class ClientDisconnected(ConnectionError):
    """The client went away before its request body was complete."""


class BodyTimeout(ClientDisconnected):
    """The client stopped sending its request body (nginx `client_body_timeout`)."""


def watch_body(
    loop: asyncio.AbstractEventLoop,
    body: InboundBody,
    timeout: float,
    blocked: Callable[[], bool],
    on_stall: Callable[[], None],
) -> None:
    """Calls `on_stall` once `body` received nothing for `timeout` seconds while the client was free
    to send (`blocked()` is true while the gateway itself withholds reading). One timer per body,
    re-armed once per `timeout`, so streaming a body costs nothing per chunk; a stall is noticed
    between one and two timeouts after the last byte."""

    def check(seen: int) -> None:
        if body.complete or body.failed:
            return
        if body.received != seen or blocked():
            loop.call_later(timeout, check, body.received)
            return
        on_stall()

    loop.call_later(timeout, check, body.received)


class BodyBuffer:
    """Body bytes received and not yet read: the one buffer of request bodies (HTTP/1.1, HTTP/2)
    and backend response bodies (`certgate.policy.context.BodyStream`), read once.

    The producer calls `feed`, then `finish` or `fail`; `feed` says when more than `HIGH_WATER`
    bytes wait unread, so the producer stops reading until the consumer catches up (reported to
    `_taken`). A read returns everything buffered at once: one write downstream per read. The
    subclasses say how a read waits and what a read releases.
    """

    __slots__ = ("_chunks", "_eof", "_error", "_size", "_waiter", "received")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []  # (appended, then taken whole: no deque needed)
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.received = 0

    # -- producer side --------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self._size

    @property
    def complete(self) -> bool:
        return self._eof

    @property
    def failed(self) -> bool:
        return self._error is not None

    def feed(self, chunk: bytes) -> bool:
        """Adds received bytes; true when more than `HIGH_WATER` bytes now wait unread."""
        if self._eof or self._error is not None:
            return False
        self._chunks.append(chunk)
        size = len(chunk)
        self._size += size
        self.received += size
        if self._waiter is not None:
            self._wake()
        return self._size > HIGH_WATER

    def finish(self) -> None:
        self._eof = True
        if self._waiter is not None:
            self._wake()

    def fail(self, error: BaseException) -> None:
        if not self._eof:
            self._error = error
            self._wake()

    def discard(self) -> int:
        """Drops what was received but never read (the handler answered without it); returns the
        byte count so HTTP/2 can hand that flow-control credit back."""
        dropped, self._size = self._size, 0
        self._chunks.clear()
        self._eof = True
        return dropped

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- consumer side --------------------------------------------------------------------------
    def __aiter__(self) -> BodyBuffer:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                raise StopAsyncIteration
            await self._wait()
        data = self._take()
        self._taken(len(data))
        return data

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        return data

    async def _wait(self) -> None:
        """Until the producer feeds, finishes or fails."""
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def _taken(self, size: int) -> None:
        """`size` bytes were read: the producer may read again."""


class InboundBody(BodyBuffer):
    """One request body: `async for chunk in body` or `await body.read_all()`.

    `on_consumed(consumed, still buffered)` lets the protocol read again (HTTP/1.1: resume the
    socket; HTTP/2: return flow-control credit); `on_first_read` runs when a reader first waits
    for bytes (HTTP/1.1 sends 100 Continue then)."""

    __slots__ = ("_on_consumed", "_on_first_read")

    def __init__(
        self,
        on_consumed: Callable[[int, int], None],
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._on_consumed = on_consumed
        self._on_first_read = on_first_read

    async def _wait(self) -> None:
        if self._on_first_read is not None:
            self._on_first_read()
            self._on_first_read = None
        await super()._wait()

    def _taken(self, size: int) -> None:
        self._on_consumed(size, self._size)
