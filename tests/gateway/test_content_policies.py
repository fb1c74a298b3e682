"""xsl-transform, jsonp, cross-domain and redirect-content-urls through a real gateway, a real
backend and real curl.

Every operation has one document; its `on-error` reports `context.LastError` in a header. The
backend's `/mirror` answers the request body with the request's Content-Type, so what the backend
received is what the client reads.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from certgate.gateway.upstream.forwarder import Forwarder
from certgate.limits import Limits
from tests.gateway.conftest import operation_pipeline, start_gateway
from tests.gateway.support import curl

ON_ERROR = """<on-error><set-header name="X-Last-Error" exists-action="override"><value>@(
context.LastError.Source + "|" + context.LastError.Reason + "|" + context.LastError.Message)</value>
</set-header></on-error>"""

LIMITS = Limits(backend_timeout=5.0, xslt_max_depth=50)


def _document(inbound: str = "", outbound: str = "") -> str:
    return (
        f"<policies><inbound>{inbound}</inbound><backend><forward-request timeout='5'/>"
        f"</backend><outbound>{outbound}</outbound>{ON_ERROR}</policies>"
    )


def _xslt(body: str, parameters: str = "") -> str:
    return (
        f"<xsl-transform>{parameters}<xsl:stylesheet version='1.0' "
        f"xmlns:xsl='http://www.w3.org/1999/XSL/Transform'>{body}</xsl:stylesheet></xsl-transform>"
    )


USER_AGENT = _xslt(
    '<xsl:output method="xml" omit-xml-declaration="yes"/><xsl:param name="User-Agent"/>'
    '<xsl:template match="/*"><order agent="{$User-Agent}" items="{count(item)}">'
    "<xsl:value-of select='item[1]'/></order></xsl:template>",
    '<parameter name="User-Agent">@(context.Request.Headers.GetValueOrDefault('
    '"X-Agent", "non-specified"))</parameter>',
)
TEXT_OUTPUT = _xslt(
    '<xsl:output method="text"/><xsl:template match="/">'
    "<xsl:for-each select='//item'><xsl:value-of select='.'/>;</xsl:for-each></xsl:template>"
)
READ_FILE = _xslt(
    "<xsl:template match='/'><r><xsl:value-of select=\"document('file:///etc/passwd')\"/></r>"
    "</xsl:template>"
)
# lxml's regular expressions (Python's `re`, patterns from the body) are not registered.
REGEXP = _xslt(
    "<xsl:template match='/' xmlns:re='http://exslt.org/regular-expressions'>"
    "<r><xsl:value-of select=\"re:test(., '(a+)+b')\"/></r></xsl:template>"
)
RECURSION = _xslt(
    "<xsl:template match='/'><xsl:call-template name='down'/></xsl:template>"
    "<xsl:template name='down'><d><xsl:call-template name='down'/></d></xsl:template>"
)
# Counts, for each item, the items equal to it: quadratic, seconds for a few thousand items.
QUADRATIC = _xslt(
    "<xsl:template match='/'><r><xsl:for-each select='//i'>"
    "<xsl:value-of select='count(//i[. = current()])'/></xsl:for-each></r></xsl:template>"
)
CROSS_DOMAIN = (
    '<cross-domain><cross-domain-policy><allow-access-from domain="*.example.com" secure="true"/>'
    '<allow-http-request-headers-from domain="*" headers="X-*"/></cross-domain-policy>'
    "</cross-domain>"
)

DOCUMENTS = {
    "xslt-in": _document(inbound=USER_AGENT),
    "xslt-out": _document(outbound=TEXT_OUTPUT),
    "xslt-file": _document(inbound=READ_FILE),
    "xslt-recursion": _document(inbound=RECURSION),
    "xslt-regexp": _document(inbound=REGEXP),
    "jsonp": _document(outbound='<jsonp callback-parameter-name="cb"/>'),
    "urls-out": _document(outbound="<redirect-content-urls/>"),
    "urls-in": _document(inbound="<redirect-content-urls/>"),
    "crossdomain": _document(inbound=CROSS_DOMAIN),
}
ORDER = b"<order><item>pen</item><item>ink</item></order>"


async def _start(certs, backend, limits: Limits, documents: dict[str, str]):
    forwarder = Forwarder(limits)
    pipelines = {name: operation_pipeline(text) for name, text in documents.items()}
    service = {"serviceUrl": f"{backend.url}/mirror", "protocols": ["https"]}
    apis = {"api": {"path": "api", **service}}
    operations = {
        "api": {
            name: {"method": "POST", "urlTemplate": f"/{name}"}
            for name in documents
            if name != "crossdomain"
        }
    }
    if "crossdomain" in documents:  # an API at the host's root
        apis["root"] = {"path": "", **service}
        operations["root"] = {"crossdomain": {"method": "*", "urlTemplate": "/*"}}
    return await start_gateway(certs, forwarder, apis, operations, pipelines), forwarder


@pytest.fixture
async def server(certs, backend):
    running, forwarder = await _start(certs, backend, LIMITS, DOCUMENTS)
    yield running
    await running.close()
    forwarder.close()


async def _call(
    server, tmp_path, path: str, body: bytes | str | None, *headers: str, method="POST"
):
    argv = ["-k", "--http1.1", "-X", method]
    if body is not None:
        argv += ["--data-binary", body if isinstance(body, str) else body.decode()]
    for header in headers:
        argv += ["-H", header]
    return await curl(server.https_port, path, *argv, tmp=tmp_path)


# -- xsl-transform ---------------------------------------------------------------------------------
async def test_xsl_transform_changes_the_request_with_a_parameter_from_an_expression(
    server, tmp_path
):
    reply = await _call(
        server, tmp_path, "/api/xslt-in", ORDER, "Content-Type: application/xml", "X-Agent: cli"
    )
    assert reply.status == 200, reply.headers
    assert reply.body == b'<order agent="cli" items="2">pen</order>\n'
    unnamed = await _call(server, tmp_path, "/api/xslt-in", ORDER, "Content-Type: text/xml")
    assert unnamed.body == b'<order agent="non-specified" items="2">pen</order>\n'


async def test_xsl_transform_changes_the_response_outbound(server, tmp_path):
    reply = await _call(server, tmp_path, "/api/xslt-out", ORDER, "Content-Type: application/xml")
    assert (reply.status, reply.body) == (200, b"pen;ink;")


async def test_xsl_transform_refuses_a_body_that_is_not_xml_or_has_a_doctype(server, tmp_path):
    reply = await _call(server, tmp_path, "/api/xslt-in", "{}", "Content-Type: application/json")
    assert reply.status == 500
    assert reply.headers["x-last-error"].startswith("xsl-transform||The body is not XML")
    bomb = '<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>'
    reply = await _call(server, tmp_path, "/api/xslt-in", bomb, "Content-Type: text/xml")
    assert reply.status == 500
    assert "DOCTYPE" in reply.headers["x-last-error"]


async def test_xsl_transform_reads_no_file(server, tmp_path):
    reply = await _call(server, tmp_path, "/api/xslt-file", ORDER, "Content-Type: text/xml")
    assert reply.status == 500
    assert "file read for file:///etc/passwd refused" in reply.headers["x-last-error"]
    assert b"root:" not in reply.body


async def test_xsl_transform_has_no_regular_expression_extension(server, tmp_path):
    reply = await _call(server, tmp_path, "/api/xslt-regexp", ORDER, "Content-Type: text/xml")
    assert reply.status == 500
    assert reply.headers["x-last-error"].startswith("xsl-transform||The XSL transformation failed")


async def test_xsl_transform_template_recursion_stops_at_the_depth_limit(server, tmp_path):
    reply = await _call(server, tmp_path, "/api/xslt-recursion", ORDER, "Content-Type: text/xml")
    assert reply.status == 500
    assert reply.headers["x-last-error"].startswith("xsl-transform||The XSL transformation failed")
    assert "recursion" in reply.headers["x-last-error"]


async def test_xsl_transform_time_and_threads_are_bounded(certs, backend, tmp_path):
    limits = dataclasses.replace(LIMITS, xslt_timeout=0.3, xslt_threads=1)
    documents = {"slow": _document(inbound=QUADRATIC), "fast": _document(inbound=TEXT_OUTPUT)}
    running, forwarder = await _start(certs, backend, limits, documents)
    try:
        large = tmp_path / "items.xml"
        large.write_bytes(b"<a>" + b"<i>1</i>" * 3000 + b"</a>")
        slow = await _call(running, tmp_path, "/api/slow", f"@{large}", "Content-Type: text/xml")
        # The one XSLT thread still works on the slow body: the next transformation waits.
        fast = await _call(running, tmp_path, "/api/fast", ORDER, "Content-Type: text/xml")
    finally:
        await running.close()
        forwarder.close()
    for reply in (slow, fast):
        assert reply.status == 500
        assert reply.headers["x-last-error"] == (
            "xsl-transform|XsltTransformLimit|The XSL transformation took longer than 0.3 s."
        )


async def test_xsl_transform_output_is_bounded(certs, backend, tmp_path):
    limits = dataclasses.replace(LIMITS, max_buffered_body_bytes=64)
    copies = _xslt(
        "<xsl:template match='/'><r><xsl:for-each select='//item'><xsl:for-each select='//item'>"
        "<xsl:copy-of select='/'/></xsl:for-each></xsl:for-each></r></xsl:template>"
    )
    running, forwarder = await _start(certs, backend, limits, {"big": _document(inbound=copies)})
    try:
        reply = await _call(running, tmp_path, "/api/big", ORDER, "Content-Type: text/xml")
    finally:
        await running.close()
        forwarder.close()
    assert reply.status == 500
    assert reply.headers["x-last-error"] == (
        "xsl-transform|XsltTransformLimit|The XSL transformation wrote more than 64 bytes."
    )


# -- jsonp -----------------------------------------------------------------------------------------
async def test_jsonp_wraps_the_response_in_the_named_callback(server, tmp_path):
    reply = await _call(
        server, tmp_path, "/api/jsonp?cb=app.show", '{"id": 1}', "Content-Type: application/json"
    )
    assert reply.status == 200
    assert reply.body == b'app.show({"id": 1});'
    assert reply.headers["content-type"] == "application/javascript; charset=utf-8"


@pytest.mark.parametrize("query", ["", "?cb=", "?other=x", "?cb=alert(1)%2F%2F", "?cb=a%3Bb"])
async def test_jsonp_leaves_plain_json_without_a_callback_identifier(server, tmp_path, query):
    reply = await _call(
        server, tmp_path, f"/api/jsonp{query}", '{"id": 1}', "Content-Type: application/json"
    )
    assert (reply.status, reply.body) == (200, b'{"id": 1}')
    assert reply.headers["content-type"] == "application/json"


# -- redirect-content-urls -------------------------------------------------------------------------
async def test_redirect_content_urls_points_backend_links_at_the_gateway(server, backend, tmp_path):
    body = f'{{"next": "{backend.url}/mirror/items?page=2"}}'
    reply = await _call(server, tmp_path, "/api/urls-out", body, "Content-Type: application/json")
    assert reply.status == 200
    gateway = f"https://localhost:{server.https_port}/api"
    assert reply.json() == {"next": f"{gateway}/items?page=2"}


async def test_redirect_content_urls_inbound_points_gateway_links_at_the_backend(
    server, backend, tmp_path
):
    gateway = f"https://localhost:{server.https_port}/api"
    body = f"see {gateway}/items/1 and {gateway}/items/2"
    reply = await _call(server, tmp_path, "/api/urls-in", body, "Content-Type: text/plain")
    assert reply.status == 200
    assert (
        reply.body.decode() == f"see {backend.url}/mirror/items/1 and {backend.url}/mirror/items/2"
    )


# -- cross-domain ----------------------------------------------------------------------------------
async def test_cross_domain_serves_the_flash_policy_file_at_the_root(server, backend, tmp_path):
    reply = await _call(server, tmp_path, "/crossdomain.xml", None, method="GET")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/x-cross-domain-policy"
    assert reply.body == (
        b'<?xml version="1.0"?>\n<cross-domain-policy>'
        b'<allow-access-from domain="*.example.com" secure="true"></allow-access-from>'
        b'<allow-http-request-headers-from domain="*" headers="X-*">'
        b"</allow-http-request-headers-from></cross-domain-policy>"
    )
    assert backend.requests == 0


async def test_cross_domain_passes_other_requests_on(server, backend, tmp_path):
    reply = await _call(server, tmp_path, "/other", "body", "Content-Type: text/plain")
    assert (reply.status, reply.body) == (200, b"body")
    assert backend.requests == 1


async def test_the_gateway_keeps_serving_while_a_transformation_runs(certs, backend, tmp_path):
    limits = dataclasses.replace(LIMITS, xslt_timeout=0.3, xslt_threads=1)
    documents = {"slow": _document(inbound=QUADRATIC), "jsonp": DOCUMENTS["jsonp"]}
    running, forwarder = await _start(certs, backend, limits, documents)
    try:
        large = tmp_path / "items.xml"
        large.write_bytes(b"<a>" + b"<i>1</i>" * 3000 + b"</a>")
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
        slow, plain = await asyncio.gather(
            _call(running, tmp_path / "a", "/api/slow", f"@{large}", "Content-Type: text/xml"),
            _call(running, tmp_path / "b", "/api/jsonp?cb=f", "1", "Content-Type: text/plain"),
        )
    finally:
        await running.close()
        forwarder.close()
    assert slow.status == 500
    assert (plain.status, plain.body) == (200, b"f(1);")
