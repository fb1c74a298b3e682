"""HTTP/2 attacks replayed against a real gateway with `h2` as the attacking client (issue 11):
malformed requests, streams past the concurrency limit, rapid reset (CVE-2023-44487), PING and
SETTINGS floods, stalled bodies and idle connections. Counts and times are bounded."""

from __future__ import annotations

import asyncio
import json
import ssl

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.settings import SettingCodes

from tests.gateway.test_failures import until


class Attacker:
    """A raw HTTP/2 client over real TLS that sends whatever it is told (no header checks)."""

    def __init__(self, reader, writer) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = H2Connection(
            H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        self.h2.initiate_connection()
        self.events: list = []
        self.closed = False
        self.flush()

    @classmethod
    async def connect(cls, certs, port: int) -> Attacker:
        context = ssl.create_default_context(cafile=str(certs.ca_file))
        context.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        return cls(reader, writer)

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def request(self, stream_id: int, path: str = "/echo/users/1", *, end: bool = True, **extra):
        headers = [
            (b":method", extra.pop("method", b"GET")),
            (b":path", path.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            *extra.pop("headers", []),
        ]
        self.h2.send_headers(stream_id, headers, end_stream=end)
        self.flush()

    async def until(self, done, timeout: float = 10) -> list:
        """Reads events until `done(events)` or the gateway closes; returns all events so far."""
        async with asyncio.timeout(timeout):
            while not done(self.events) and not self.closed:
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    self.closed = True
                    break
                for event in self.h2.receive_data(data):
                    self.events.append(event)
                    if isinstance(event, DataReceived):
                        self.h2.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                self.flush()
        return self.events

    def of(self, kind, stream_id: int | None = None) -> list:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (stream_id is None or e.stream_id == stream_id)
        ]

    def answer(self, stream_id: int) -> tuple[int, bytes]:
        [response] = self.of(ResponseReceived, stream_id)
        status = int(dict(response.headers)[b":status"])
        return status, b"".join(e.data for e in self.of(DataReceived, stream_id))

    async def answered(self, stream_id: int) -> tuple[int, bytes]:
        await self.until(
            lambda _: self.of(StreamEnded, stream_id) or self.of(StreamReset, stream_id)
        )
        return self.answer(stream_id)

    def close(self) -> None:
        self.writer.close()


def terminated(events) -> ConnectionTerminated | None:
    found = [e for e in events if isinstance(e, ConnectionTerminated)]
    return found[0] if found else None


@pytest.mark.parametrize(
    "extra",
    [
        {"method": b"GE T"},
        {"method": "GÉT".encode()},
        {"headers": [(b"host", b"elsewhere.test")]},
        {"headers": [(b"x-a", b"1\r\nx-injected: 1")]},
        {"headers": [(b"x-a", b"1\x002")]},
        {"headers": [(b"connection", b"keep-alive")]},
        {"headers": [(b":protocol", b"websocket")]},
    ],
    ids=[
        "space-method",
        "non-ascii-method",
        "host-conflict",
        "crlf",
        "nul",
        "connection",
        "pseudo",
    ],
)
async def test_a_malformed_request_is_a_stream_error_and_the_connection_lives_on(
    gateway, certs, backend, extra
):
    client = await Attacker.connect(certs, gateway.https_port)
    client.request(1, **extra)
    await client.until(lambda _: client.of(StreamReset, 1))
    [reset] = client.of(StreamReset, 1)
    assert reset.error_code == ErrorCodes.PROTOCOL_ERROR
    assert backend.requests == 0
    client.request(3)  # the same connection still serves a good request
    status, body = await client.answered(3)
    assert status == 200 and json.loads(body)["target"] == "/users/1"
    client.close()


async def test_header_names_with_underscores_are_dropped(gateway, certs):
    client = await Attacker.connect(certs, gateway.https_port)
    client.request(1, headers=[(b"x_client_cert", b"forged"), (b"x-kept", b"yes")])
    status, body = await client.answered(1)
    seen = {name.lower() for name, _ in json.loads(body)["headers"]}
    assert status == 200 and "x-kept" in seen
    assert not any("_" in name for name in seen)
    client.close()


async def test_too_many_header_fields_get_431(limited_gateway, certs, backend):
    gateway = await limited_gateway(max_header_count=10)
    client = await Attacker.connect(certs, gateway.https_port)
    client.request(1, headers=[(b"x-f%d" % n, b"v") for n in range(11)])
    status, body = await client.answered(1)
    assert status == 431 and json.loads(body)["statusCode"] == 431
    assert backend.requests == 0
    client.close()


async def test_streams_past_the_limit_are_refused_not_the_connection(limited_gateway, certs):
    gateway = await limited_gateway(h2_max_streams=2)
    client = await Attacker.connect(certs, gateway.https_port)
    # the gateway enforces its limit once its SETTINGS are acknowledged; this client ignores it
    await client.until(lambda _: client.of(RemoteSettingsChanged))
    client.h2.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 1000
    client.h2.remote_settings.acknowledge()
    for stream_id in (1, 3):  # two uploads held open: their bodies are still to come
        client.request(stream_id, "/echo/upload", method=b"POST", end=False)
    client.request(5)
    await client.until(lambda _: client.of(StreamReset, 5))
    [refused] = client.of(StreamReset, 5)
    assert refused.error_code == ErrorCodes.REFUSED_STREAM
    for stream_id in (1, 3):
        client.h2.send_data(stream_id, b"abc", end_stream=True)
    client.flush()
    for stream_id in (1, 3):
        status, body = await client.answered(stream_id)
        assert status == 200 and json.loads(body)["received"] == 3
    assert terminated(client.events) is None
    client.close()


async def test_rapid_reset_ends_the_connection_and_spares_the_backend(
    limited_gateway, certs, backend
):
    gateway = await limited_gateway(h2_max_resets=50)
    client = await Attacker.connect(certs, gateway.https_port)
    reading = asyncio.ensure_future(client.until(lambda events: terminated(events), timeout=30))
    resets = 0
    for stream_id in range(1, 2 * 5000, 2):  # 5,000 open + reset pairs at most
        client.request(stream_id, "/echo/slow")
        # each stream gets as far as the backend (where its work would stay) before its reset
        await until(lambda n=resets + 1: backend.requests >= n or reading.done())
        if reading.done():
            break
        client.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        client.flush()
        resets += 1
    await reading
    goaway = terminated(client.events)
    assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert resets == 51  # the 51st reset crossed the limit
    assert backend.requests <= 52  # (the next stream may have started before the GOAWAY)
    await until(lambda: not backend.connections)  # every reset stream's backend work was cut
    other = await Attacker.connect(certs, gateway.https_port)
    other.request(1)
    assert (await other.answered(1))[0] == 200
    other.close()
    client.close()


@pytest.mark.parametrize("frame", ["ping", "settings"])
async def test_ping_and_settings_floods_end_the_connection(limited_gateway, certs, frame):
    gateway = await limited_gateway(h2_max_control_frames=50)
    client = await Attacker.connect(certs, gateway.https_port)
    for n in range(1000):
        if frame == "ping":
            client.h2.ping(n.to_bytes(8, "big"))
        else:
            client.h2.update_settings({SettingCodes.ENABLE_PUSH: 0})
    client.flush()
    await client.until(lambda events: terminated(events) is not None)
    goaway = terminated(client.events)
    assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    other = await Attacker.connect(certs, gateway.https_port)
    other.request(1)
    assert (await other.answered(1))[0] == 200
    other.close()
    client.close()


async def test_pings_between_answered_requests_are_fine(limited_gateway, certs):
    gateway = await limited_gateway(h2_max_control_frames=50)
    client = await Attacker.connect(certs, gateway.https_port)
    for stream_id in (1, 3, 5):  # 120 pings in all, 40 between two answered requests
        for n in range(40):
            client.h2.ping(n.to_bytes(8, "big"))
        client.request(stream_id)
        assert (await client.answered(stream_id))[0] == 200
    assert terminated(client.events) is None
    client.close()


async def test_a_stalled_request_body_resets_its_stream_and_releases_the_backend(
    limited_gateway, certs, backend
):
    gateway = await limited_gateway(body_timeout=0.3)
    client = await Attacker.connect(certs, gateway.https_port)
    client.request(1, "/echo/upload", method=b"POST", end=False)
    client.h2.send_data(1, b"x" * 1000)  # ... and nothing more
    client.flush()
    await client.until(lambda _: client.of(StreamReset, 1), timeout=10)
    [reset] = client.of(StreamReset, 1)
    assert reset.error_code == ErrorCodes.CANCEL
    await until(lambda: not backend.connections)
    client.request(3)  # the connection itself is fine
    assert (await client.answered(3))[0] == 200
    client.close()


async def test_a_connection_without_streams_is_closed_even_while_it_pings(limited_gateway, certs):
    gateway = await limited_gateway(idle_timeout=0.5, h2_max_control_frames=1_000_000)
    client = await Attacker.connect(certs, gateway.https_port)
    client.request(1)
    assert (await client.answered(1))[0] == 200
    async with asyncio.timeout(10):
        while terminated(client.events) is None and not client.closed:
            client.h2.ping(b"keepopen")
            client.flush()
            pongs = len(client.of(PingAckReceived)) + 1
            await client.until(
                lambda _, pongs=pongs: (
                    len(client.of(PingAckReceived)) >= pongs or terminated(client.events)
                )
            )
    goaway = terminated(client.events)
    assert goaway is not None and goaway.error_code == ErrorCodes.NO_ERROR
    client.close()


async def test_a_header_block_that_never_ends_is_cut_by_the_idle_timeout(limited_gateway, certs):
    from hyperframe.frame import HeadersFrame

    gateway = await limited_gateway(idle_timeout=0.3)
    client = await Attacker.connect(certs, gateway.https_port)
    frame = HeadersFrame(1)  # no END_HEADERS: a CONTINUATION is due, and never comes
    frame.data = client.h2.encoder.encode([(b":method", b"GET"), (b":path", b"/echo/x")])
    client.writer.write(frame.serialize())
    await client.until(lambda events: terminated(events) is not None)
    assert client.closed or terminated(client.events) is not None
    client.close()


async def test_a_header_block_over_the_head_limit_ends_the_connection(limited_gateway, certs):
    gateway = await limited_gateway(max_head_bytes=4096)
    client = await Attacker.connect(certs, gateway.https_port)
    client.request(1, headers=[(b"x-big", b"b" * 8192)])
    await client.until(lambda events: terminated(events) is not None)
    goaway = terminated(client.events)
    assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    client.close()
