"""The memory-BIO TLS client under failures: every broken handshake is a clear 500 or 504."""

from __future__ import annotations

import asyncio

import pytest

from certgate.limits import Limits
from certgate.policy.errors import BackendError
from certgate.policy.forwarding import ForwardOptions
from tests.upstream.conftest import make_context, send, snapshot, wait_for


class RawServer:
    """A TCP server on 127.0.0.1 that treats each connection with `behaviour(reader, writer)`."""

    def __init__(self, behaviour) -> None:
        self.behaviour = behaviour
        self.server: asyncio.Server | None = None
        self.accepted = 0

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"https://127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            await self.behaviour(reader, writer)
        finally:
            writer.close()


async def _close_at_once(reader, writer) -> None:
    await reader.read(1)


async def _speak_plain_http(reader, writer) -> None:
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    await writer.drain()
    await reader.read(65536)


async def _stay_silent(reader, writer) -> None:
    await reader.read()


async def _fail(certs, url, options=None) -> BackendError:
    from certgate.gateway.upstream import Forwarder

    forwarder = Forwarder()
    try:
        with pytest.raises(BackendError) as failure:
            await forwarder.forward(make_context(url, snapshot(certs)), options)
    finally:
        forwarder.close()
    return failure.value


async def test_backend_closing_during_the_handshake_is_a_connection_failure(certs, caplog):
    async with RawServer(_close_at_once) as url:
        error = await _fail(certs, url)
    assert error.reason == "BackendConnectionFailure"
    assert "closed during the TLS handshake" in error.message
    assert "closed during the TLS handshake" in caplog.text


async def test_backend_answering_plain_http_to_tls_is_a_connection_failure(certs):
    async with RawServer(_speak_plain_http) as url:
        error = await _fail(certs, url)
    assert error.reason == "BackendConnectionFailure"
    assert "TLS handshake failed: wrong version number" in error.message  # OpenSSL's reason


async def test_handshake_that_never_completes_times_out(certs):
    async with RawServer(_stay_silent) as url:
        error = await _fail(certs, url, ForwardOptions(timeout=0.3))
    assert error.reason == "Timeout"


async def test_pool_forgotten_by_the_idle_sweep_is_rebuilt_for_the_next_request(certs, backend):
    from certgate.gateway.upstream import Forwarder

    forwarder = Forwarder(Limits(backend_idle_timeout=0.2))
    try:
        snap = snapshot(certs)
        await send(forwarder, make_context(backend.url(), snap))
        await wait_for(lambda: not backend.open and forwarder.pools.pools() == [])
        # The same route again: a fresh pool that the sweep knows about, not the forgotten one.
        seen = await send(forwarder, make_context(backend.url(), snap))
        assert seen["connection"] == 2
        assert len(forwarder.pools.pools()) == 1
        await wait_for(lambda: not backend.open and forwarder.pools.pools() == [])
    finally:
        forwarder.close()
