"""Policy bypass by path tricks, replayed against a real gateway over TLS (HTTP/1.1 and HTTP/2).

API `api` has operations `/internal/*` and `/admin/*` whose policy answers 403 itself, and `/*`
which forwards to a real backend that records every request it gets. A request the gateway
routes to the lax operation must reach the backend with exactly the path the router matched; a
request that tried to hide a guarded path must get 403 or 400 and reach no backend at all.
"""

from __future__ import annotations

import asyncio
import json
import ssl

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded

from certgate.gateway.paths import NO_CLIMB, PathError, normalize
from tests.gateway.conftest import operation_pipeline, start_gateway
from tests.gateway.support import curl

GUARD = """<policies><inbound><return-response>
<set-status code="403" reason="Forbidden"/></return-response></inbound>
<backend><forward-request timeout="5"/></backend><outbound/><on-error/></policies>"""
# The lax operation tells the backend the path the policies saw.
LAX = """<policies><inbound>
<set-header name="X-Url-Path" exists-action="override"><value>@(context.Request.Url.Path)</value>
</set-header></inbound><backend><forward-request timeout="5"/></backend><outbound/><on-error/>
</policies>"""


@pytest.fixture
async def guarded(certs, backend, forwarder):
    api = {"path": "api", "serviceUrl": f"{backend.url}/base", "protocols": ["https"]}
    apis = {"api": api, "other": {**api, "path": "other"}, "deep": {**api, "path": "v1/deep"}}
    guarded_ops = {
        "internal": {"method": "*", "urlTemplate": "/internal/*"},
        "admin": {"method": "*", "urlTemplate": "/admin/*"},
        "lax": {"method": "*", "urlTemplate": "/*"},
    }
    operations = {"api": guarded_ops, "other": {"lax": guarded_ops["lax"]}, "deep": guarded_ops}
    guard = operation_pipeline(GUARD)
    pipelines = {"internal": guard, "admin": guard, "lax": operation_pipeline(LAX)}
    server = await start_gateway(certs, forwarder, apis, operations, pipelines)
    yield server
    await server.close()


VERSIONS = pytest.mark.parametrize("version", ["--http1.1", "--http2"])


async def _send(gateway, path: str, version: str, tmp, *extra: str):
    reply = await curl(gateway.https_port, path, version, "--path-as-is", "-k", *extra, tmp=tmp)
    assert not reply.stderr, reply.stderr
    return reply


# -- hidden guarded paths and ambiguous paths --------------------------------------------------
HIDDEN = [
    "/api/%69nternal/x",
    "/api/%69%6E%74%65%72%6E%61%6C/x",
    "/api/INTERNAL/x",
    "/api/public/../admin/x",
    "/api/public/%2e%2e/admin/x",
    "/api/public/%2E%2E/admin/x",
    "/api/public/.%2e/admin/x",
    "/api/public/./../admin/x",
    "/api/./admin/x",
    "/api//admin/x",
    "/api/public//..//admin/x",
    "/v1/deep/x/../internal/y",
]


REFUSED = [
    "/api/internal%2fx",
    "/api/internal%2Fx",
    "/api/public%2f..%2fadmin/x",
    "/api/internal%5cx",
    "/api/public/%00/x",
    "/api/public/%zz",
    "/api/../other/x",  # climbs above the API's root, even though `other` exists
    "/api/public/../../other/x",
    "/v1/deep/../../api/internal/x",
    "/v1/deep/%2e%2e/deep/x",  # left the two-segment API `v1/deep`, even if only briefly
    "/../api/internal/x",
    "/api/public/..;/admin/x",
    "/api/public/%2e%2e;x/admin/x",
]


@VERSIONS
@pytest.mark.parametrize(
    ("path", "status"), [(p, 403) for p in HIDDEN] + [(p, 400) for p in REFUSED]
)
async def test_a_path_trick_meets_the_guard_or_a_400(
    guarded, backend, tmp_path, path, status, version
):
    """Hidden guarded paths meet their operation's policy (403); ambiguous ones are refused."""
    reply = await _send(guarded, path, version, tmp_path)
    assert reply.status == status
    if status == 400:
        assert reply.json()["message"].startswith("Bad request: ")
    assert backend.requests == 0


# -- the path matched is the path forwarded ------------------------------------------------------
FORWARDED = [
    ("/api/public/%41b%63", "/base/public/Abc"),
    ("/api/public/a/./b/../c", "/base/public/a/c"),
    ("/api/public/%252e%252e/admin/x", "/base/public/%252e%252e/admin/x"),  # decoded once only
    ("/api/public/a%3bb%2c", "/base/public/a%3Bb%2C"),  # reserved escapes stay escapes
    ("/api/public/a;b/c", "/base/public/a;b/c"),  # `;` is data, on both sides
    ("/api/public/%c3%a9t%C3%A9/", "/base/public/%C3%A9t%C3%A9/"),
    ("/api/public/x?q=%2e%2e/a&b=%2f", "/base/public/x?q=%2e%2e/a&b=%2f"),  # query untouched
]


@VERSIONS
@pytest.mark.parametrize(("path", "expected"), FORWARDED)
async def test_the_backend_gets_the_path_the_router_matched(
    guarded, backend, tmp_path, path, expected, version
):
    reply = await _send(guarded, path, version, tmp_path)
    assert reply.status == 200
    assert reply.json()["target"] == expected
    assert backend.requests == 1


async def test_a_remembered_route_answers_as_the_first_time(guarded, backend, tmp_path):
    """The route cache keys on scheme, method and raw path: a repeated trick meets the guard
    again, a repeated lax path reaches the backend at the same normalised path."""
    for _ in range(3):
        hidden = await _send(guarded, "/api/%69nternal/x", "--http1.1", tmp_path)
        lax = await _send(guarded, "/api/public/%69tem?q=1", "--http1.1", tmp_path)
        assert (hidden.status, lax.status) == (403, 200)
        assert lax.json()["target"] == "/base/public/item?q=1"
    assert backend.requests == 3
    cached = guarded.config.router.cache.entries
    assert ("https", "GET", "/api/%69nternal/x") in cached
    assert cached[("https", "GET", "/api/public/%69tem")][0] == "/api/public/item"


@pytest.mark.parametrize("host", ["localhost", "localhost:443", "example.com:abc", "[::1]"])
async def test_the_backend_gets_its_own_host_whatever_the_client_sent(
    guarded, backend, tmp_path, host
):
    """No policy set a Host: the backend gets its own, as APIM sends it (a client Host that is no
    authority used to fail the request at the backend writer)."""
    reply = await _send(guarded, "/api/public/x", "--http1.1", tmp_path, "-H", f"Host: {host}")
    assert reply.status == 200
    sent = [value for name, value in reply.json()["headers"] if name.lower() == "host"]
    assert sent == [f"127.0.0.1:{backend.port}"]


@VERSIONS
async def test_policies_see_the_normalised_path(guarded, backend, tmp_path, version):
    reply = await _send(guarded, "/api/public/./y/%2E%2E/%78", version, tmp_path)
    assert reply.status == 200
    headers = {name.lower(): value for name, value in reply.json()["headers"]}
    assert headers["x-url-path"] == "/api/public/x"


async def _raw_tls(port: int, path: bytes) -> bytes:
    """A GET of `path` written byte for byte over TLS (curl would re-encode these paths); the
    whole response."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(b"GET %b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path)
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize(
    "path", [b"/api/internal\\x", b"/api/public\\..\\admin\\x", b"/api/public/%2e%2e\\admin/x"]
)
async def test_a_raw_backslash_is_refused_over_http1(guarded, backend, path):
    answer = await _raw_tls(guarded.https_port, path)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert backend.requests == 0


async def _raw_h2(port: int, path: bytes) -> tuple[int, bytes]:
    """One HTTP/2 request whose `:path` goes out byte for byte; the response status and body."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    client = H2Connection(H2Configuration(validate_outbound_headers=False))
    client.initiate_connection()
    fields = [(b":method", b"GET"), (b":path", path), (b":scheme", b"https"), (b":authority", b"a")]
    client.send_headers(1, fields, end_stream=True)
    writer.write(client.data_to_send())
    status, body = 0, b""
    try:
        async with asyncio.timeout(10):
            while data := await reader.read(65536):
                for event in client.receive_data(data):
                    if isinstance(event, ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, DataReceived):
                        body += event.data
                    elif isinstance(event, StreamEnded):
                        return status, body
                writer.write(client.data_to_send())
    finally:
        writer.close()
    raise AssertionError("the gateway closed the connection without a response")


async def test_raw_non_ascii_bytes_are_forwarded_percent_encoded(guarded, backend):
    status, body = await _raw_h2(guarded.https_port, b"/api/public/caf\xc3\xa9/\xff")
    assert status == 200
    assert json.loads(body)["target"] == "/base/public/caf%C3%A9/%FF"


@pytest.mark.parametrize(
    "path",
    [
        b"/api/internal\\x",
        b"/api/public\\..\\admin\\x",
        b"/api/public/\x01/x",
        b"/api/public/x?a b",
    ],
)
async def test_raw_h2_paths_with_backslashes_or_controls_are_refused(guarded, backend, path):
    assert (await _raw_h2(guarded.https_port, path))[0] == 400
    assert backend.requests == 0


# -- the normaliser on its own ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 5.2.4's example
        ("/mid/content=5/../6", "/mid/6"),
        ("/a//b///c", "/a/b/c"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a/..b/.c", "/a/..b/.c"),
        ("/%7Euser/%2d%5F", "/~user/-_"),
        ("/a%20b/%e2%82%ac", "/a%20b/%E2%82%AC"),
        ('/a"b<c>', "/a%22b%3Cc%3E"),
        ("/caf\u00c3\u00a9", "/caf%C3%A9"),  # the bytes as received (Latin-1 text)
    ],
)
def test_normalised_form(raw: str, expected: str) -> None:
    assert normalize(raw)[0] == expected


def test_plain_paths_take_the_fast_path_unchanged() -> None:
    path = "/api/users/42/orders;v=1"
    assert normalize(path) == (path, NO_CLIMB)
    assert normalize(path)[0] is path  # no copy: the handler keeps the original target


def test_the_climb_floor_is_the_shallowest_depth_a_dot_dot_reached() -> None:
    assert normalize("/a/b/../c")[1] == 1
    assert normalize("/a/b/../../c/d")[1] == 0
    assert normalize("/a/b/c/../../d/../e")[1] == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/a%2fb", "encoded '/'"),
        ("/a%5Cb", "encoded '/'"),
        ("/a\\b", "backslash"),
        ("/a%00", "NUL"),
        ("/a\x01b", "control character"),
        ("/a%4", "two hex digits"),
        ("/a%g0", "two hex digits"),
        ("/..", "above '/'"),
        ("/a/../..", "above '/'"),
        ("/a/%2E%2E/%2e%2E", "above '/'"),
        ("/a/.;x/b", "dot segment with parameters"),
    ],
)
def test_refused_paths_say_why(raw: str, reason: str) -> None:
    with pytest.raises(PathError, match=reason):
        normalize(raw)


# -- values a policy puts into the backend path -----------------------------------------------
REWRITE = """<policies><inbound><rewrite-uri template="/users/{id}/profile?view={view}"
copy-unmatched-params="false"/></inbound><backend><forward-request timeout="5"/></backend>
<outbound/><on-error/></policies>"""


@pytest.fixture
async def rewriting(certs, backend, forwarder):
    apis = {"api": {"path": "api", "serviceUrl": f"{backend.url}/base", "protocols": ["https"]}}
    operations = {"api": {"profile": {"method": "GET", "urlTemplate": "/profile?id={id}"}}}
    pipelines = {"profile": operation_pipeline(REWRITE)}
    server = await start_gateway(certs, forwarder, apis, operations, pipelines)
    yield server
    await server.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("id=..%2F..%2Fadmin&view=x", "/base/users/..%2F..%2Fadmin/profile?view=x"),
        ("id=..&view=x", "/base/users/%2E%2E/profile?view=x"),
        ("id=7&view=x%26admin%3Dtrue", "/base/users/7/profile?view=x%26admin%3Dtrue"),
    ],
)
async def test_rewrite_uri_values_stay_inside_their_segment(
    rewriting, backend, tmp_path, query, expected
):
    """A request value that rewrite-uri puts into the backend path can neither climb out of the
    template's path (`../`) nor add a query parameter: the backend gets it escaped."""
    reply = await _send(rewriting, f"/api/profile?{query}", "--http1.1", tmp_path)
    assert reply.status == 200
    assert reply.json()["target"] == expected
