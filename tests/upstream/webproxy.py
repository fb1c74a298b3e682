"""A minimal forward proxy for tests: CONNECT tunnels and absolute-form HTTP, recording requests."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class WebProxy:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []  # (request line, Proxy-Authorization)
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    async def start(cls) -> WebProxy:
        self = cls()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *fields = head.decode("latin-1").split("\r\n")
            auth = next(
                (f.split(":", 1)[1].strip() for f in fields if f.lower().startswith("proxy-auth")),
                None,
            )
            self.requests.append((line, auth))
            method, target, _ = line.split(" ")
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                parts = urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
                up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(asyncio.current_task())


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
