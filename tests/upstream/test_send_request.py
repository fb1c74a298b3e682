"""`send-request` / `send-one-way-request` through a real gateway to a real mTLS backend."""

from __future__ import annotations

import logging
import socket

import pytest

from certgate.gateway.upstream import Forwarder
from certgate.limits import Limits
from certgate.policy.catalog import PlaceholderCatalog
from certgate.policy.errors import PolicyValidationError
from certgate.policy.loader import parse_document
from certgate.policy.sidecall import process_state
from tests.upstream.conftest import make_context, snapshot, wait_for
from tests.upstream.policy_gateway import client, document, start_gateway
from tests.upstream.webproxy import WebProxy

LIMIT = 4096
ERROR = (
    "<return-response><set-status code='599'/><set-body>@(context.LastError.Source + \"|\" + "
    'context.LastError.Reason + "|" + context.LastError.Message)</set-body></return-response>'
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _documents(base: str) -> dict[str, str]:
    stored = '((IResponse)context.Variables["r"])'
    answer = (
        "<return-response><set-header name='X-Status'><value>"
        f"@({stored}.StatusCode.ToString())</value></set-header>"
        f"<set-body>@({stored}.Body.As&lt;string&gt;())</set-body></return-response>"
    )
    call = (
        "<send-request mode='new' response-variable-name='r' timeout='{timeout}' "
        "ignore-error='{ignore}'><set-url>{url}</set-url>{extra}</send-request>"
    )
    path = 'context.Request.Headers.GetValueOrDefault("X-Path", "/slow")'
    return {
        "side": document(
            call.format(
                timeout=10,
                ignore="false",
                url=f"{base}/side?q=1",
                extra=(
                    "<set-method>POST</set-method><set-header name='X-From'>"
                    '<value>@(context.Request.Headers.GetValueOrDefault("X-In", ""))</value>'
                    "</set-header><set-body>hello</set-body>"
                    "<authentication-certificate certificate-id='a'/>"
                ),
            )
            + answer
        ),
        "anonymous": document(
            call.format(timeout=10, ignore="false", url=f"{base}/anon", extra="") + answer
        ),
        "down": document(
            call.format(
                timeout=10, ignore="false", url=f"https://localhost:{_closed_port()}/", extra=""
            ),
            on_error=ERROR,
        ),
        "ignored": document(
            call.format(
                timeout=10, ignore="true", url=f"https://localhost:{_closed_port()}/", extra=""
            )
            + '<return-response><set-body>@(context.Variables["r"] == null ? "null" : '
            '"set")</set-body></return-response>'
        ),
        "slow": document(
            call.format(timeout=1, ignore="false", url=f"{base}/slow", extra=""), on_error=ERROR
        ),
        "big": document(
            call.format(timeout=10, ignore="false", url=f"{base}/bytes/{LIMIT + 1}", extra=""),
            on_error=ERROR,
        ),
        "inject": document(
            call.format(
                timeout=10,
                ignore="false",
                url=f"{base}/x",
                extra=(
                    '<set-header name="X-A"><value>@("a\\r\\nX-Injected: 1")</value></set-header>'
                ),
            ),
            on_error=ERROR,
        ),
        "badurl": document(
            call.format(
                timeout=10, ignore="false", url=f'@("{base}/a b\\r\\nX-Injected: 1")', extra=""
            ),
            on_error=ERROR,
        ),
        "copy": document(
            "<send-request mode='copy' response-variable-name='r'>"
            f"<set-url>{base}/copied</set-url><set-header name='X-Extra'><value>1</value>"
            "</set-header></send-request>" + answer
        ),
        "oneway": document(
            f"<send-one-way-request mode='new' timeout='60'><set-url>@(\"{base}\" + {path})"
            "</set-url></send-one-way-request><return-response><set-status code='202'/>"
            "</return-response>"
        ),
    }


@pytest.fixture
async def side_forwarder():
    forwarder = Forwarder(
        Limits(backend_timeout=10, max_buffered_body_bytes=LIMIT, max_one_way_requests=1)
    )
    yield forwarder
    forwarder.close()


@pytest.fixture
async def gateway(certs, backend, side_forwarder):
    snap = snapshot(certs, a=certs.a)
    documents = _documents(backend.url())
    server = await start_gateway(certs, side_forwarder, snap, documents, backend.url())
    yield server
    await server.close()


async def test_side_call_presents_the_client_certificate_and_stores_the_response(
    certs, backend, gateway
):
    async with client(certs, gateway) as http:
        response = await http.get("/side/x", headers={"X-In": "from-client"})
    assert response.status_code == 200, response.text
    assert response.headers["x-status"] == "200"
    seen = response.json()  # what the mTLS backend saw, relayed through the variable
    assert seen["thumbprint"] == certs.a.thumbprint
    assert seen["method"] == "POST"
    assert seen["path"] == "/side?q=1"
    assert ["X-From", "from-client"] in seen["headers"]
    assert seen["body_len"] == 5


async def test_side_call_without_certificate_uses_its_own_connection(certs, backend, gateway):
    async with client(certs, gateway) as http:
        first = await http.get("/side/x")
        second = await http.get("/anonymous/x")
    assert first.json()["thumbprint"] == certs.a.thumbprint
    assert second.json()["thumbprint"] is None
    assert second.json()["connection"] != first.json()["connection"]


async def test_side_call_goes_through_its_proxy_with_the_certificate_end_to_end(
    certs, backend, side_forwarder
):
    web_proxy = await WebProxy.start()
    call = (
        "<send-request mode='new' response-variable-name='r'>"
        f"<set-url>{backend.url()}/via-proxy</set-url><authentication-certificate "
        f"certificate-id='a'/><proxy url='{web_proxy.url}' "
        'username=\'@(context.Request.Headers.GetValueOrDefault("X-User", ""))\' '
        "password='pw'/></send-request>"
    )
    answer = (
        '<return-response><set-body>@(((IResponse)context.Variables["r"]).Body.As&lt;string&gt;())'
        "</set-body></return-response>"
    )
    documents = {
        "proxied": document(call + answer),
        "direct": document(call.split("<proxy")[0] + "</send-request>" + answer),
    }
    server = await start_gateway(
        certs, side_forwarder, snapshot(certs, a=certs.a), documents, backend.url()
    )
    try:
        async with client(certs, server) as http:
            proxied = await http.get("/proxied/x", headers={"X-User": "svc"})
            direct = await http.get("/direct/x")
    finally:
        await server.close()
        await web_proxy.stop()
    assert proxied.status_code == 200, proxied.text
    seen = proxied.json()
    assert (seen["path"], seen["thumbprint"]) == ("/via-proxy", certs.a.thumbprint)
    assert direct.json()["connection"] != seen["connection"]  # no pool shared with the tunnel
    assert web_proxy.requests == [(f"CONNECT localhost:{backend.port} HTTP/1.1", "Basic c3ZjOnB3")]


async def test_copy_mode_sends_the_current_request(certs, gateway):
    async with client(certs, gateway) as http:
        response = await http.post("/copy/x", content=b"0123456789", headers={"X-In": "v"})
    seen = response.json()
    assert (seen["method"], seen["path"], seen["body_len"]) == ("POST", "/copied", 10)
    assert ["X-In", "v"] in seen["headers"]
    assert ["X-Extra", "1"] in seen["headers"]
    assert dict(seen["headers"])["Host"].startswith("localhost:")
    assert dict(seen["headers"])["Host"] != f"localhost:{gateway.https_port}"


async def test_connection_failure_raises_with_last_error(certs, gateway):
    async with client(certs, gateway) as http:
        response = await http.get("/down/x")
    assert response.status_code == 599
    source, reason, _ = response.text.split("|", 2)
    assert (source, reason) == ("send-request", "BackendConnectionFailure")


async def test_ignore_error_leaves_the_variable_null(certs, gateway):
    async with client(certs, gateway) as http:
        response = await http.get("/ignored/x")
    assert response.status_code == 200
    assert response.text == "null"


async def test_timeout_raises_timeout(certs, gateway):
    async with client(certs, gateway) as http:
        response = await http.get("/slow/x")
    source, reason, message = response.text.split("|", 2)
    assert (source, reason) == ("send-request", "Timeout")
    assert "1 s" in message


async def test_response_body_over_the_buffer_limit_fails(certs, gateway):
    async with client(certs, gateway) as http:
        response = await http.get("/big/x")
    source, reason, message = response.text.split("|", 2)
    assert (source, reason) == ("send-request", "BackendConnectionFailure")
    assert f"{LIMIT} bytes" in message


async def test_computed_header_with_line_break_is_never_sent(certs, backend, gateway):
    async with client(certs, gateway) as http:
        response = await http.get("/inject/x")
    source, reason, _ = response.text.split("|", 2)
    assert (source, reason) == ("send-request", "ExpressionValueEvaluationFailure")
    assert backend.connections == 0


async def test_computed_url_with_space_or_line_break_is_never_sent(certs, backend, gateway):
    async with client(certs, gateway) as http:
        response = await http.get("/badurl/x")
    source, reason, message = response.text.split("|", 2)
    assert (source, reason) == ("send-request", "BackendConnectionFailure")
    assert "Invalid URL" in message
    assert backend.connections == 0


async def test_one_way_requests_are_capped_per_process(
    certs, backend, gateway, side_forwarder, caplog
):
    caplog.set_level(logging.WARNING, "certgate.policy")
    context = make_context(backend.url())
    context.forwarder = side_forwarder  # what the gateway's pipeline runs with
    in_flight = process_state(context, "one-way", set)
    async with client(certs, gateway) as http:
        first = await http.get("/oneway/x", headers={"X-Path": "/slow"})
        assert first.status_code == 202  # answered without waiting for the side call
        await wait_for(lambda: backend.connections == 1)
        assert len(in_flight) == 1  # the backend never answers, the call stays in flight
        second = await http.get("/oneway/x", headers={"X-Path": "/fast"})
        assert second.status_code == 202
        assert any("dropped" in r.getMessage() for r in caplog.records)
        for transport in list(backend.open):  # the backend hangs up: the first call ends
            transport.abort()
        await wait_for(lambda: not in_flight)
        third = await http.get("/oneway/x", headers={"X-Path": "/fast"})
        assert third.status_code == 202
        await wait_for(lambda: backend.connections == 2)
        await wait_for(lambda: not in_flight)
    assert any("send-one-way-request failed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        ("", "Element 'set-url' is required."),
        ("<set-url>ftp://x/</set-url>", "is not an absolute http(s) URL"),
        ("<set-url>https://x/a b</set-url>", "space or control character"),
        ("<set-url>https://x/</set-url><set-header name='a b'/>", "not a valid header name"),
        ("<set-url>https://x/</set-url><set-method>GE T</set-method>", "not a valid HTTP method"),
        ("<set-url>https://x/</set-url><forward-request/>", "not allowed inside 'send-request'"),
        ("<set-url>https://x/</set-url><proxy url='https://p:1'/>", "not a valid proxy URL"),
        (
            "<set-url>https://x/</set-url><authentication-managed-identity resource='r'/>",
            "Azure managed identity",
        ),
    ],
)
def test_refused_when_saved(inner, message):
    text = f"<policies><inbound><send-request response-variable-name='r'>{inner}</send-request>"
    with pytest.raises(PolicyValidationError) as caught:
        parse_document(text + "</inbound></policies>", "api", PlaceholderCatalog())
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ("mode='clone' response-variable-name='r'", "'new' or 'copy'"),
        ("response-variable-name='r' timeout='0'", "positive number of seconds"),
        ("response-variable-name='r' ignore-error='maybe'", "'true' or 'false'"),
        ("timeout='5'", "Required attribute 'response-variable-name'"),
    ],
)
def test_attributes_refused_when_saved(attributes, message):
    text = (
        f"<policies><inbound><send-request {attributes}><set-url>https://x/</set-url>"
        "</send-request></inbound></policies>"
    )
    with pytest.raises(PolicyValidationError) as caught:
        parse_document(text, "api", PlaceholderCatalog())
    assert message in str(caught.value)


def test_in_any_section_with_a_certificate():
    """authentication-certificate inside a call is allowed beyond inbound: it is the call's."""
    text = (
        "<policies><outbound><send-request response-variable-name='r'>"
        "<set-url>https://x/</set-url><authentication-certificate thumbprint='AB'/>"
        "</send-request></outbound></policies>"
    )
    assert parse_document(text, "api", PlaceholderCatalog()).sections["outbound"]
