"""The inbound request body as a stream (`certgate.policy.context.BodyStream`), with backpressure.

The HTTP protocol feeds chunks as they arrive; the forwarder (or a buffering policy) consumes them.
When more than `HIGH_WATER` bytes wait unread, the protocol is told to stop reading from the client
(HTTP/1.1: pause the socket; HTTP/2: withhold flow-control credit), so memory stays bounded whatever
the body size and however slow the backend is.
"""

from __future__ import annotations

import asyncio
from collections import deque
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


class InboundBody:
    """One request body: `async for chunk in body` or `await body.read_all()`; read once."""

    __slots__ = (
        "_chunks",
        "_eof",
        "_error",
        "_on_consumed",
        "_on_first_read",
        "_size",
        "_waiter",
        "received",
    )

    def __init__(
        self,
        on_consumed: Callable[[int, int], None],
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_consumed = on_consumed  # (bytes just consumed, bytes still buffered)
        self._on_first_read = on_first_read
        self.received = 0

    # -- protocol side --------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self._size

    @property
    def complete(self) -> bool:
        return self._eof

    @property
    def failed(self) -> bool:
        return self._error is not None

    def feed(self, chunk: bytes) -> None:
        if self._eof or self._error is not None:
            return
        self._chunks.append(chunk)
        self._size += len(chunk)
        self.received += len(chunk)
        self._wake()

    def finish(self) -> None:
        self._eof = True
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

    # -- consumer side (BodyStream) -----------------------------------------------------------
    def __aiter__(self) -> InboundBody:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._size -= len(chunk)
                self._on_consumed(len(chunk), self._size)
                return chunk
            if self._error is not None:
                raise self._error
            if self._eof:
                raise StopAsyncIteration
            if self._on_first_read is not None:
                self._on_first_read()
                self._on_first_read = None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])
