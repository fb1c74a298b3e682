"""Transformation and utility policies through a real gateway, real backend, real curl:
find-and-replace, xml-to-json, json-to-xml, set-body Liquid, mock-response examples,
emit-metric, wait, proxy.

Every operation has one document; its `on-error` reports `context.LastError` in a header. The
backend's `/mirror` answers the request body with the request's Content-Type, so what the backend
received is what the client reads.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from certgate.gateway.upstream.forwarder import Forwarder
from certgate.limits import Limits
from certgate.policy.elements.utility import set_metric_sink
from tests.gateway.conftest import operation_pipeline, start_gateway
from tests.gateway.support import curl
from tests.upstream.webproxy import WebProxy

ON_ERROR = """<on-error><set-header name="X-Last-Error" exists-action="override"><value>@(
context.LastError.Source + "|" + context.LastError.Reason + "|" + context.LastError.Message)</value>
</set-header></on-error>"""

LIMITS = Limits(
    backend_timeout=5.0,
    transform_max_depth=8,
    liquid_max_output_chars=1000,
    liquid_loop_iterations=50,
    emit_metric_max_series=2,
)


def _document(inbound: str = "", outbound: str = "") -> str:
    return (
        f"<policies><inbound>{inbound}</inbound><backend><forward-request timeout='5'/>"
        f"</backend><outbound>{outbound}</outbound>{ON_ERROR}</policies>"
    )


EXAMPLES = [
    {
        "statusCode": 200,
        "representations": [
            {
                "contentType": "application/json",
                "examples": {"first": {"value": {"id": 1}}, "second": {"value": {"id": 2}}},
            },
            {"contentType": "application/xml", "examples": {"one": {"value": "<id>1</id>"}}},
        ],
    },
    {"statusCode": 404, "representations": [{"contentType": "text/plain", "sample": "gone"}]},
]

LIQUID = """<set-body template="liquid">{% assign total = 0 -%}
<order id="{{ body.id }}" path="{{ context.Request.Url.Path }}">
{%- for item in body.items %}<item n="{{ forloop.index }}">{{ item.name | Upcase }}</item>
{%- endfor -%}
{%- if body.rush %}<rush/>{% elsif body.items.size > 1 %}<many/>{% else %}<one/>{% endif -%}
<who>{{ context.Request.Headers["X-Who"] | Default: "nobody" }}</who>
<var>{{ context.Variables.tag | Prepend: "#" }}</var>
<html>{{ body.note | StripHtml | Truncate: 8 }}</html>
{%- case body.kind %}{% when "a" %}<kind>A</kind>{% else %}<kind>?</kind>{% endcase -%}
{% capture c %}{{ body.items | Map: "name" | Join: "+" }}{% endcapture %}<names>{{ c }}</names>
{% comment %}not rendered{% endcomment %}{% raw %}{{ raw }}{% endraw %}</order>
</set-body>"""

DOCUMENTS = {
    "replace-request": _document(inbound='<find-and-replace from="cat" to="dog"/>'),
    "replace-response": _document(
        outbound='<find-and-replace from="dog" to="@(&quot;cow&quot;)"/>'
    ),
    "xml-to-json": _document(
        outbound='<xml-to-json kind="direct" apply="content-type-xml" '
        'consider-accept-header="true"/>'
    ),
    "xml-to-json-friendly": _document(
        outbound='<xml-to-json kind="javascript-friendly" apply="always" '
        'consider-accept-header="false" always-array-child-elements="true"/>'
    ),
    "json-to-xml": _document(
        inbound='<json-to-xml apply="content-type-json" consider-accept-header="false" '
        'namespace-separator=":" attribute-block-name="#attrs"/>'
    ),
    "liquid": _document(inbound=f'<set-variable name="tag" value="vip"/>{LIQUID}'),
    "liquid-xml": _document(
        outbound='<set-body template="liquid">{"to": "{{ body.to }}", '
        '"nil": "{{ body.gone }}", "ruby": "{{ body.to | upcase }}"}</set-body>'
    ),
    "liquid-loop": _document(
        inbound='<set-body template="liquid">{% for i in (1..1000) %}{{ i }}{% endfor %}</set-body>'
    ),
    "liquid-output": _document(
        inbound='<set-body template="liquid">{% for i in (1..40) %}'
        "012345678901234567890123456789{% endfor %}</set-body>"
    ),
    "liquid-assign": _document(
        inbound='<set-body template="liquid">{% assign s = "0123456789" %}{% for i in (1..30) %}'
        "{% assign s = s | Append: s %}{% endfor %}{{ s | Size }}</set-body>"
    ),
    "liquid-slow": _document(
        inbound='<set-body template="liquid">{% for i in (1..40) %}'
        '{{ body | Replace: "a", "b" | Size }}{% endfor %}</set-body>'
    ),
    "mock": _document(inbound="<mock-response/>"),
    "mock-second": _document(
        inbound='<mock-response status-code="200" content-type="application/json" index="1"/>'
    ),
    "mock-xml": _document(inbound='<mock-response content-type="application/xml"/>'),
    "mock-404": _document(inbound='<mock-response status-code="404"/>'),
    "mock-none": _document(inbound='<mock-response status-code="201" content-type="text/csv"/>'),
    "metric": _document(
        inbound='<emit-metric name="orders" value="@(context.Request.Headers.GetValueOrDefault('
        '&quot;X-Count&quot;, &quot;1&quot;))" namespace="shop"><dimension name="API ID"/>'
        '<dimension name="Caller" value="@(context.Request.Headers.GetValueOrDefault('
        '&quot;X-Who&quot;, &quot;-&quot;))"/></emit-metric>'
    ),
    "wait-all": _document(
        inbound='<wait for="all">'
        '<choose><when condition="@(true)"><set-variable name="a" value="1"/></when></choose>'
        '<choose><when condition="@(true)"><set-variable name="b" value="2"/></when></choose>'
        "</wait>",
        outbound='<set-header name="X-Vars" exists-action="override"><value>@('
        'context.Variables.GetValueOrDefault&lt;string&gt;("a", "-") + '
        'context.Variables.GetValueOrDefault&lt;string&gt;("b", "-"))</value></set-header>',
    ),
    "wait-fail": _document(
        inbound='<wait for="all"><choose><when condition="@(true)">'
        '<set-status code="@(1000)" reason="x"/></when></choose></wait>'
    ),
    # The second child would wait a minute before its retry: `any` continues with the first.
    "wait-any": _document(
        inbound='<wait for="any">'
        '<choose><when condition="@(true)"><set-variable name="a" value="1"/></when></choose>'
        '<choose><when condition="@(true)"><retry condition="@(true)" count="1" interval="60">'
        '<set-variable name="b" value="@(context.Variables.ContainsKey(&quot;b&quot;) ? '
        '&quot;again&quot; : &quot;once&quot;)"/></retry></when></choose>'
        "</wait>",
        outbound='<set-header name="X-Vars" exists-action="override"><value>@('
        'context.Variables.GetValueOrDefault&lt;string&gt;("a", "-") + "," + '
        'context.Variables.GetValueOrDefault&lt;string&gt;("b", "-"))</value></set-header>',
    ),
}


async def _start(certs, backend, limits: Limits, documents: dict[str, str]):
    forwarder = Forwarder(limits)
    pipelines = {name: operation_pipeline(text) for name, text in documents.items()}
    apis = {"api": {"path": "api", "serviceUrl": f"{backend.url}/mirror", "protocols": ["https"]}}
    operations = {
        "api": {
            name: {"method": "POST", "urlTemplate": f"/{name}", "responses": EXAMPLES}
            for name in documents
        }
    }
    return await start_gateway(certs, forwarder, apis, operations, pipelines), forwarder


@pytest.fixture
async def server(certs, backend):
    running, forwarder = await _start(certs, backend, LIMITS, DOCUMENTS)
    yield running
    await running.close()
    forwarder.close()


async def _post(server, tmp_path, name: str, body: str, *headers: str, version="--http1.1"):
    argv = ["-k", version, "-X", "POST", "--data-binary", body]
    for header in headers:
        argv += ["-H", header]
    return await curl(server.https_port, f"/api/{name}", *argv, tmp=tmp_path)


# -- find-and-replace ----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
async def test_find_and_replace_changes_the_request_body_inbound(server, tmp_path, version):
    reply = await _post(
        server, tmp_path, "replace-request", "cat and cat", "Content-Type: text/a", version=version
    )
    assert (reply.status, reply.body) == (200, b"dog and dog")
    assert reply.headers["content-length"] == "11"


async def test_find_and_replace_changes_the_response_body_outbound(server, tmp_path):
    reply = await _post(server, tmp_path, "replace-response", "dog, Dog", "Content-Type: text/a")
    assert (reply.status, reply.body) == (200, b"cow, Dog")  # ordinal: case-sensitive


# -- xml-to-json / json-to-xml -------------------------------------------------------------------
NOTE = '<?xml version="1.0"?><note id="7"><to>Tove</to><to>Jani</to><body>Hi</body><empty/></note>'


async def test_xml_to_json_direct_follows_json_net(server, tmp_path):
    reply = await _post(
        server, tmp_path, "xml-to-json", NOTE, "Content-Type: application/xml",
        "Accept: application/json",
    )  # fmt: skip
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "?xml": {"@version": "1.0"},
        "note": {"@id": "7", "to": ["Tove", "Jani"], "body": "Hi", "empty": None},
    }


async def test_xml_to_json_considers_the_accept_header_and_content_type(server, tmp_path):
    no_json = await _post(
        server, tmp_path, "xml-to-json", NOTE, "Content-Type: application/xml", "Accept: */*"
    )
    assert no_json.body == NOTE.encode()
    not_xml = await _post(
        server, tmp_path, "xml-to-json", NOTE, "Content-Type: text/plain",
        "Accept: application/json",
    )  # fmt: skip
    assert not_xml.body == NOTE.encode()


async def test_xml_to_json_javascript_friendly_with_arrays_always(server, tmp_path):
    reply = await _post(server, tmp_path, "xml-to-json-friendly", NOTE, "Content-Type: text/a")
    assert reply.json() == {
        "note": {"@id": "7", "to": ["Tove", "Jani"], "body": ["Hi"], "empty": [None]}
    }


async def test_xml_to_json_refuses_a_dtd_and_deep_nesting(server, tmp_path):
    bomb = '<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>'
    reply = await _post(server, tmp_path, "xml-to-json-friendly", bomb, "Content-Type: text/a")
    assert reply.status == 500
    assert reply.headers["x-last-error"].startswith("xml-to-json||")
    deep = "<a>" * 9 + "</a>" * 9
    reply = await _post(server, tmp_path, "xml-to-json-friendly", deep, "Content-Type: text/a")
    assert reply.status == 500
    assert "nested deeper than 8 levels" in reply.headers["x-last-error"]


async def test_json_to_xml_converts_the_request_for_the_backend(server, tmp_path):
    body = json.dumps(
        {
            "id": 5,
            "tags": ["a", "b"],
            "when": "2024-01-02T03:04:05.1200000Z",
            "x:y": {"#attrs": {"lang": "en"}, "#text": "t<"},
            "nothing": None,
            "bad name": True,
        }
    )
    reply = await _post(server, tmp_path, "json-to-xml", body, "Content-Type: application/json")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/xml"
    assert reply.body.decode() == (
        "<Document><id>5</id><tags>a</tags><tags>b</tags><when>2024-01-02T03:04:05.12Z</when>"
        '<x:y lang="en">t&lt;</x:y><nothing /><bad_x0020_name>true</bad_x0020_name></Document>'
    )


async def test_json_to_xml_leaves_other_content_types_and_refuses_deep_json(server, tmp_path):
    plain = await _post(server, tmp_path, "json-to-xml", '{"a": 1}', "Content-Type: text/plain")
    assert plain.body == b'{"a": 1}'
    deep = '{"a":' * 9 + "1" + "}" * 9
    reply = await _post(server, tmp_path, "json-to-xml", deep, "Content-Type: application/json")
    assert reply.status == 500
    assert "nested deeper than 8 levels" in reply.headers["x-last-error"]


# -- set-body Liquid ------------------------------------------------------------------------------
async def test_liquid_template_renders_body_context_filters_and_tags(server, tmp_path):
    body = json.dumps(
        {
            "id": 42,
            "items": [{"name": "pen"}, {"name": "ink"}],
            "note": "<b>fragile</b> handle",
            "kind": "a",
        }
    )
    reply = await _post(
        server, tmp_path, "liquid", body, "Content-Type: application/json", "X-Who: ann"
    )
    assert reply.status == 200, reply.headers
    assert reply.body.decode() == (
        '<order id="42" path="/api/liquid"><item n="1">PEN</item><item n="2">INK</item><many />'
        "<who>ann</who>\n<var>#vip</var>\n<html>fragi...</html><kind>A</kind>"
        "<names>pen+ink</names>\n{{ raw }}</order>"
    )


async def test_liquid_reads_an_xml_body_with_xsi_nil_blank_and_csharp_filter_names(
    server, tmp_path
):
    xml = (
        '<note xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><to>Tove</to>'
        '<gone xsi:nil="true"/></note>'
    )
    reply = await _post(server, tmp_path, "liquid-xml", xml, "Content-Type: application/xml")
    assert reply.status == 200
    # `upcase` is Ruby's name: DotLiquid (C# names) does not know it and leaves the value.
    assert reply.json() == {"to": "Tove", "nil": "", "ruby": "Tove"}


async def test_liquid_limits_end_the_rendering_with_a_500(server, tmp_path):
    loop = await _post(server, tmp_path, "liquid-loop", "", "Content-Type: text/a")
    assert loop.status == 500
    assert loop.headers["x-last-error"].startswith("set-body|LiquidTemplateLimit|")
    output = await _post(server, tmp_path, "liquid-output", "", "Content-Type: text/a")
    assert output.status == 500
    assert output.headers["x-last-error"].startswith("set-body|LiquidTemplateLimit|")
    # Doubling a variable 30 times would hold 10 GiB: stopped at the output limit's size.
    doubling = await _post(server, tmp_path, "liquid-assign", "", "Content-Type: text/a")
    assert doubling.status == 500
    assert doubling.headers["x-last-error"].startswith("set-body|LiquidTemplateLimit|")


async def test_liquid_render_time_is_bounded(certs, backend, tmp_path):
    # 40 replacements in a 1 MB body take far longer than the 1 ms this gateway allows.
    limits = dataclasses.replace(LIMITS, liquid_render_timeout=0.001)
    documents = {"liquid-slow": DOCUMENTS["liquid-slow"]}
    running, forwarder = await _start(certs, backend, limits, documents)
    try:
        large = tmp_path / "large.txt"
        large.write_bytes(b"a" * 1_000_000)
        slow = await _post(running, tmp_path, "liquid-slow", f"@{large}", "Content-Type: text/a")
    finally:
        await running.close()
        forwarder.close()
    assert slow.status == 500
    assert slow.headers["x-last-error"] == (
        "set-body|LiquidTemplateLimit|Liquid template: render time limit reached"
    )


# -- mock-response ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "status", "content_type", "body"),
    [
        ("mock", 200, "application/json", b'{"id": 1}'),
        ("mock-second", 200, "application/json", b'{"id": 2}'),
        ("mock-xml", 200, "application/xml", b"<id>1</id>"),
        ("mock-404", 404, "text/plain", b"gone"),
        ("mock-none", 201, "text/csv", b""),
    ],
)
async def test_mock_response_answers_from_the_operation_examples(
    server, backend, tmp_path, name, status, content_type, body
):
    reply = await _post(server, tmp_path, name, "")
    assert (reply.status, reply.headers["content-type"], reply.body) == (
        status,
        content_type,
        body,
    )
    assert backend.requests == 0


# -- emit-metric -----------------------------------------------------------------------------------
@pytest.fixture
def metrics():
    emitted: list[tuple[str, float, dict]] = []
    set_metric_sink(lambda name, value, dimensions: emitted.append((name, value, dimensions)))
    yield emitted
    set_metric_sink(None)


async def test_emit_metric_feeds_the_sink_with_default_and_custom_dimensions(
    server, metrics, tmp_path
):
    reply = await _post(server, tmp_path, "metric", "", "X-Count: 2.5", "X-Who: ann")
    assert reply.status == 200
    assert metrics == [("orders", 2.5, {"Namespace": "shop", "API ID": "api", "Caller": "ann"})]


async def test_emit_metric_reports_at_most_the_configured_number_of_series(
    server, metrics, tmp_path
):
    for who in ("a", "b", "c", "a"):
        assert (await _post(server, tmp_path, "metric", "", f"X-Who: {who}")).status == 200
    assert [dimensions["Caller"] for _, _, dimensions in metrics] == ["a", "b", "a"]


@pytest.mark.parametrize("count", ["many", "nan", "1_000"])
async def test_emit_metric_with_a_value_that_is_not_a_number_fails(
    server, metrics, tmp_path, count
):
    reply = await _post(server, tmp_path, "metric", "", f"X-Count: {count}")
    assert reply.status == 500
    assert reply.headers["x-last-error"].startswith("emit-metric|ExpressionValueEvaluationFailure")
    assert metrics == []


async def test_a_value_the_sink_refuses_is_dropped_and_the_request_served(server, tmp_path):
    def counter(name: str, value: float, dimensions: dict) -> None:
        if value < 0:  # as a Prometheus counter refuses a negative increment
            raise ValueError("Counters can only be incremented by non-negative amounts.")

    set_metric_sink(counter)
    try:
        reply = await _post(server, tmp_path, "metric", "", "X-Count: -1")
    finally:
        set_metric_sink(None)
    assert reply.status == 200


# -- wait ------------------------------------------------------------------------------------------
async def test_wait_all_runs_every_child(server, tmp_path):
    reply = await _post(server, tmp_path, "wait-all", "x")
    assert (reply.status, reply.headers["x-vars"]) == (200, "12")


async def test_wait_all_fails_with_the_error_of_the_failing_child(server, tmp_path):
    reply = await _post(server, tmp_path, "wait-fail", "x")
    assert reply.status == 500
    assert reply.headers["x-last-error"].startswith("set-status||Status code 1000 is not valid")


async def test_wait_any_continues_when_the_first_child_completes(server, tmp_path):
    # Without cancellation the request would take the second child's minute (curl stops at 30 s).
    reply = await _post(server, tmp_path, "wait-any", "x")
    assert (reply.status, reply.headers["x-vars"]) == (200, "1,once")


# -- proxy -----------------------------------------------------------------------------------------
@pytest.fixture
async def web_proxy():
    proxy = await WebProxy.start()
    yield proxy
    await proxy.stop()


async def test_proxy_sends_the_backend_leg_through_the_http_proxy(
    certs, backend, web_proxy, tmp_path
):
    documents = {
        "via": _document(
            inbound=f'<proxy url="{web_proxy.url}" username="svc" password="s3cret"/>'
        ),
        "direct": _document(),
    }
    forwarder = Forwarder(LIMITS)
    pipelines = {name: operation_pipeline(text) for name, text in documents.items()}
    apis = {"api": {"path": "api", "serviceUrl": f"{backend.url}/mirror", "protocols": ["https"]}}
    operations = {"api": {n: {"method": "POST", "urlTemplate": f"/{n}"} for n in documents}}
    running = await start_gateway(certs, forwarder, apis, operations, pipelines)
    try:
        reply = await _post(running, tmp_path, "via", "through", "Content-Type: text/a")
        assert (reply.status, reply.body) == (200, b"through")
        assert web_proxy.requests == [
            (f"POST {backend.url}/mirror/via HTTP/1.1", "Basic c3ZjOnMzY3JldA==")
        ]
        reply = await _post(running, tmp_path, "direct", "around", "Content-Type: text/a")
        assert (reply.status, reply.body) == (200, b"around")
        assert len(web_proxy.requests) == 1  # the pool without the proxy went straight
    finally:
        await running.close()
        forwarder.close()
