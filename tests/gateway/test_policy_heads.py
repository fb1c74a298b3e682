"""A policy that computes a CR, LF, NUL or a non-token into a head: a 500 with `LastError`, never
a split response towards the client or a smuggled request towards the backend.

Each operation below has one hostile policy; its `on-error` section reports `context.LastError`
back to the client in a header. The backend records every request it gets.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from h2.connection import H2Connection
from h2.events import ResponseReceived, StreamEnded

from certgate.gateway.exchange import ConnectionInfo
from certgate.gateway.http1 import HTTP1Protocol
from certgate.gateway.http2 import HTTP2Protocol
from certgate.httpsyntax import UnsafeHead
from certgate.policy.context import Headers
from tests.gateway.conftest import operation_pipeline, start_gateway
from tests.gateway.support import curl

SPLIT = r'"ok\r\nX-Injected: yes"'
HOSTILE = {
    # inbound: towards the backend (nothing may reach it)
    "request-value": f'<set-header name="X-In" exists-action="override"><value>@({SPLIT})</value>'
    "</set-header>",
    "request-name": '<set-header name="@(&quot;X-In\\r\\nX-Injected&quot;)" '
    'exists-action="override"><value>v</value></set-header>',
    "request-name-space": '<set-header name="@(&quot;Transfer-Encoding &quot;)" '
    'exists-action="override"><value>chunked</value></set-header>',
    "request-framing": '<set-header name="@(&quot;Content-Length&quot;)" '
    'exists-action="override"><value>0</value></set-header>',
    "host": '<set-header name="Host" exists-action="override">'
    "<value>@(&quot;backend.example\\r\\nX-Injected: yes&quot;)</value></set-header>",
    "host-not-authority": '<set-header name="Host" exists-action="override">'
    "<value>@(&quot;backend.example/x?y&quot;)</value></set-header>",
    "method": r'<set-method>@("GET /x HTTP/1.1\r\nX-Injected: yes\r\n\r\nGET")</set-method>',
    "return-response": '<return-response><set-header name="X-Out" exists-action="override">'
    f"<value>@({SPLIT})</value></set-header></return-response>",
    "return-reason": '<return-response><set-status code="200" '
    'reason="@(&quot;OK\\r\\nX-Injected: yes&quot;)"/></return-response>',
}
HOSTILE_OUTBOUND = {
    # outbound: towards the client (the backend answered; the client gets no split response)
    "response-value": f'<set-header name="X-Out" exists-action="override"><value>@({SPLIT})'
    "</value></set-header>",
    "response-name": '<set-header name="@(&quot;X-Out: a\\r\\nX-Injected&quot;)" '
    'exists-action="override"><value>v</value></set-header>',
    "reason": '<set-status code="200" reason="@(&quot;OK\\r\\nX-Injected: yes&quot;)"/>',
}
ON_ERROR = """<on-error><set-header name="X-Last-Error" exists-action="override"><value>@(
context.LastError.Source + "|" + context.LastError.Reason)</value></set-header></on-error>"""


def _document(inbound: str = "", outbound: str = "") -> str:
    return (
        f"<policies><inbound>{inbound}</inbound><backend><forward-request timeout='5'/>"
        f"</backend><outbound>{outbound}</outbound>{ON_ERROR}</policies>"
    )


@pytest.fixture
async def hostile(certs, backend, forwarder):
    documents = {name: _document(inbound=xml) for name, xml in HOSTILE.items()}
    documents |= {name: _document(outbound=xml) for name, xml in HOSTILE_OUTBOUND.items()}
    base_url = f"{backend.url}/a HTTP/1.1\\r\\nX-Injected: yes\\r\\n\\r\\nGET /b"
    documents["base-url"] = _document(
        inbound=f'<set-backend-service base-url="@(&quot;{base_url}&quot;)"/>'
    )
    pipelines = {name: operation_pipeline(text) for name, text in documents.items()}
    apis = {"api": {"path": "api", "serviceUrl": backend.url, "protocols": ["https"]}}
    operations = {"api": {name: {"method": "GET", "urlTemplate": f"/{name}"} for name in documents}}
    server = await start_gateway(certs, forwarder, apis, operations, pipelines)
    yield server
    await server.close()


VERSIONS = pytest.mark.parametrize("version", ["--http1.1", "--http2"])


def _source(name: str) -> str:
    """The element `LastError.Source` names for each hostile operation."""
    if name == "method":
        return "set-method"
    return "set-status" if "reason" in name else "set-header"


@VERSIONS
@pytest.mark.parametrize("name", sorted(HOSTILE) + sorted(HOSTILE_OUTBOUND))
async def test_a_computed_head_fails_the_request_and_nothing_splits(
    hostile, backend, tmp_path, name, version
):
    reply = await curl(hostile.https_port, f"/api/{name}", version, "-k", tmp=tmp_path)
    assert reply.status == 500
    assert reply.json()["statusCode"] == 500
    assert reply.headers["x-last-error"] == f"{_source(name)}|ExpressionValueEvaluationFailure"
    assert "x-injected" not in reply.headers
    # Towards the backend nothing was sent; towards the client the backend had answered.
    assert backend.requests == (name in HOSTILE_OUTBOUND)


# -- the writers' last guard, for heads no policy element checked --------------------------------
SPLIT_HEADERS = [("X-A", "a\r\nX-Injected: yes")]


async def _split_then_fallback(exchange, outcomes: list) -> None:
    try:
        await exchange.respond(200, "OK", SPLIT_HEADERS, b"split")
    except UnsafeHead as exc:
        outcomes.append(exc)
        await exchange.respond(500, "Internal Server Error", [], b"refused")


async def test_the_http1_writer_sends_nothing_of_a_split_head():
    outcomes: list = []
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(
        lambda: HTTP1Protocol(lambda exchange: _split_then_fallback(exchange, outcomes)), ours
    )
    reader, writer = await asyncio.open_connection(sock=theirs)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(len(b"refused"))
    finally:
        writer.close()
        transport.close()
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"X-Injected" not in head and body == b"refused"
    assert len(outcomes) == 1


async def test_the_http2_writer_sends_nothing_of_a_split_head():
    outcomes: list = []
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(
        lambda: HTTP2Protocol(
            lambda exchange: _split_then_fallback(exchange, outcomes),
            ConnectionInfo("https", None, None),
        ),
        ours,
    )
    reader, writer = await asyncio.open_connection(sock=theirs)
    client = H2Connection()
    client.initiate_connection()
    client.send_headers(
        1, [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")], True
    )
    writer.write(client.data_to_send())
    headers: list = []
    try:
        async with asyncio.timeout(10):
            ended = False
            while not ended:
                for event in client.receive_data(await reader.read(65536)):
                    if isinstance(event, ResponseReceived):
                        headers = event.headers
                    ended = ended or isinstance(event, StreamEnded)
                writer.write(client.data_to_send())
    finally:
        writer.close()
        transport.close()
    assert (b":status", b"500") in headers
    assert not any(b"injected" in name or b"\n" in value for name, value in headers)
    assert len(outcomes) == 1


def test_a_vetted_head_is_scanned_again_once_a_policy_sets_or_adds_a_field():
    """Only fields from a strict parser or the gateway skip the writers' scan: any policy change
    (whatever element made it, checked or not) brings the scan back."""
    for change in (
        lambda headers: headers.set("X-A", ["a\r\nX-Injected: yes"]),
        lambda headers: headers.add("X-A", ["b"]),
    ):
        headers = Headers([("X-A", "a")], vetted=True)
        assert headers.GetValueOrDefault("X-A") == "a" and headers.vetted  # reads keep it
        change(headers)
        assert not headers.vetted


@VERSIONS
async def test_a_computed_backend_url_cannot_split_the_request_line(
    hostile, backend, tmp_path, version
):
    reply = await curl(hostile.https_port, "/api/base-url", version, "-k", tmp=tmp_path)
    assert reply.status == 500
    assert reply.headers["x-last-error"] == "forward-request|BackendConnectionFailure"
    assert backend.requests == 0
