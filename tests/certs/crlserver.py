"""A real HTTP server on 127.0.0.1 that serves a CRL, fails, redirects or hangs: the CRL
distribution point the revocation tests talk to."""

from __future__ import annotations

import asyncio


class CrlServer:
    """A tiny HTTP/1.1 server: serves `body` with `status` at any path, redirects the paths in
    `redirects` (path -> Location), or holds every request until `release` is set when `hang`.
    `trickle` (seconds) sends a long body one byte at a time at that pace, each byte well within
    any read timeout. `paths` lists what was asked, in order."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.hang = False
        self.trickle: float | None = None
        self.redirects: dict[str, str] = {}
        self.hits = 0
        self.active = 0
        self.most_active = 0  # the most requests in progress at once
        self.paths: list[str] = []
        self.hit = asyncio.Event()
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/ca.crl"

    async def stop(self) -> None:
        self.release.set()
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        path = request.split(b" ", 2)[1].decode("latin-1")
        self.paths.append(path)
        self.hits += 1
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        self.hit.set()
        if self.hang:
            await self.release.wait()
        self.active -= 1
        if self.trickle is not None:
            await self._trickle(writer)
            return
        if path in self.redirects:
            location = self.redirects[path]
            head = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
        else:
            head = f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(self.body)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + self.body)
        await writer.drain()
        writer.close()

    async def _trickle(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        try:
            while not self.release.is_set():
                writer.write(b"0")
                await writer.drain()
                await asyncio.sleep(self.trickle)  # the pace of the attack, not synchronisation
        except ConnectionError:
            pass
        writer.close()
