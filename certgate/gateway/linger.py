"""Lingering close (nginx's `lingering_close`): ending a connection whose client may still send.

An HTTP/1.1 response that ends the connection before the request was read in full (413, a 403 from
a policy that never read the body, a refused head) must not be followed by a plain close: unread
bytes in the kernel's receive buffer, or bytes still arriving, make it answer with a TCP RST, and a
client that is still uploading then loses the response it had not read yet ("connection reset by
peer" instead of the 413). So the gateway ends its output instead (TLS close_notify, then a TCP
FIN), keeps reading and dropping whatever the client still sends, and closes once the client closes
too, has been silent for `Limits.lingering_timeout`, or after `Limits.lingering_time` at most.

Discarding costs a socket read per chunk: the bytes are never buffered nor decrypted, reading is
never paused, and one timer per connection is re-armed lazily (as the idle timer of `http1`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from certgate.gateway.tls import MemoryTLSProtocol


def close_lingering(transport: Any, lingering_time: float, lingering_timeout: float) -> None:
    """Ends the output of `transport` (a TCP transport or `MemoryTLSProtocol` above one) and lets
    the connection linger; its protocol still sees `connection_lost` when it finally closes."""
    if isinstance(transport, MemoryTLSProtocol):
        transport = transport.end_tls()
    if transport is None or transport.is_closing():
        return
    _Discarder(transport, lingering_time, lingering_timeout)


class _Discarder(asyncio.Protocol):
    """Takes over the TCP transport: drops what arrives, closes at the first bound reached."""

    __slots__ = ("_deadline", "_last", "_loop", "_previous", "_timeout", "_timer", "_transport")

    def __init__(self, transport: Any, lingering_time: float, lingering_timeout: float) -> None:
        self._transport = transport
        self._previous = transport.get_protocol()
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._deadline = self._last + lingering_time
        self._timeout = lingering_timeout
        transport.set_protocol(self)
        if transport.can_write_eof():
            transport.write_eof()  # after what is still buffered: the response goes out whole
        if not transport.is_reading():
            transport.resume_reading()  # the HTTP layer may have paused it (backpressure)
        self._timer = self._loop.call_later(min(lingering_timeout, lingering_time), self._check)

    def data_received(self, data: bytes) -> None:
        self._last = self._loop.time()

    def eof_received(self) -> bool:
        return False  # the client is done too: the transport closes

    def _check(self) -> None:
        now = self._loop.time()
        due = min(self._last + self._timeout, self._deadline)
        if now < due:
            self._timer = self._loop.call_later(due - now, self._check)
            return
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        self._previous.connection_lost(exc)
