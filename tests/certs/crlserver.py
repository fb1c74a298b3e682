"""A real HTTP server on 127.0.0.1 that serves a CRL, fails, or hangs: the CRL distribution point
the revocation tests talk to."""

from __future__ import annotations

import asyncio


class CrlServer:
    """A tiny HTTP/1.1 server: serves `body` with `status`, or never answers when `hang`."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.hang = False
        self.hits = 0
        self.hit = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/ca.crl"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.hits += 1
        self.hit.set()
        if self.hang:
            await asyncio.sleep(30)
        head = f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(self.body)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + self.body)
        await writer.drain()
        writer.close()
