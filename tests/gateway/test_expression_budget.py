"""Hostile bodies and costly policy expressions through a real gateway: each abuse fails fast
with 500 and `LastError`, and a client of another API on the same gateway is still answered."""

from __future__ import annotations

import asyncio
import time

import pytest

from certgate.expressions import apply_limits, compile_expression
from certgate.expressions.errors import BudgetExceeded, ExpressionRuntimeError
from certgate.gateway.config import build_gateway_config
from certgate.gateway.server import GatewayServer
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.policy.catalog import MemoryCatalog
from certgate.policy.engine import compile_pipeline
from certgate.policy.loader import parse_document
from tests.gateway.conftest import hostnames
from tests.gateway.support import curl
from tests.policy.support import make_context

BOUND = 10.0  # seconds: generous for a loaded machine; without the bounds these never end

LIMITS = Limits(
    expression_time_budget=0.3,
    expression_loop_iterations=10**9,  # only the time budget stops the endless loop
    expression_json_max_chars=2 * 1024 * 1024,
    max_buffered_body_bytes=4 * 1024 * 1024,  # the JSON limit, not the body limit, is crossed
)

ABUSE = """<policies><inbound>
<set-variable name="result" value="{expression}" />
<return-response><set-status code="200" reason="OK" /></return-response>
</inbound><on-error>
<set-header name="X-Error" exists-action="override">
  <value>@(context.LastError.Reason + ": " + context.LastError.Message)</value></set-header>
</on-error></policies>"""

CALM = """<policies><inbound>
<return-response><set-status code="200" reason="OK" /></return-response>
</inbound></policies>"""

NESTED = "[" * 1000 + "]" * 1000
TOO_LARGE = "[" + "1," * 1_100_000 + "1]"  # 2.2 MB: over the size limit
MANY_OBJECTS = "[" + ",".join(["{}"] * 600_000) + "]"  # 1.8 MB: within the size limit


@pytest.fixture
async def budget_gateway(certs):
    servers = []

    async def start(expression: str) -> int:
        xml = ABUSE.format(expression=expression.replace('"', "&quot;"))
        abuse = compile_pipeline(None, None, parse_document(xml, "api", MemoryCatalog()), None)
        calm = compile_pipeline(None, None, parse_document(CALM, "api", MemoryCatalog()), None)
        config = build_gateway_config(
            revision=1,
            hostnames=hostnames(certs),
            apis={
                "abuse": {"path": "abuse", "serviceUrl": "http://127.0.0.1:9"},
                "calm": {"path": "calm", "serviceUrl": "http://127.0.0.1:9"},
            },
            operations={
                "abuse": {"all": {"method": "*", "urlTemplate": "/*"}},
                "calm": {"all": {"method": "*", "urlTemplate": "/*"}},
            },
            pipeline_for=lambda api_id, op_id: abuse if api_id == "abuse" else calm,
        )
        server = GatewayServer(config, limits=LIMITS)
        servers.append(server)
        await server.start("127.0.0.1", 0, None)
        return server.https_port

    yield start
    for server in servers:
        await server.close()
    apply_limits(DEFAULT_LIMITS)


async def _timed(port: int, path: str, tmp, *args: str):
    started = time.monotonic()
    reply = await curl(port, path, *args, ca=None, tmp=tmp, host="localhost")
    return reply, time.monotonic() - started


@pytest.mark.parametrize(
    ("expression", "body", "error"),
    [
        ("@{ var n = 0; while (true) { n++; } return n; }", "", "time budget"),
        (
            "@{ var n = 0; foreach (var c in new string('a', 1000000)) { n++; } return n; }",
            "",
            "time budget",
        ),
        (
            "@(context.Request.Body.As<string>().Replace(\"a\", new string('b', 1000)))",
            "a" * 100_000,
            "size limit",
        ),
        (
            "@(context.Request.Body.As<string>().Replace(\"A\", new string('b', 1000), "
            "StringComparison.OrdinalIgnoreCase))",
            "a" * 100_000,
            "size limit",
        ),
        (
            "@(Regex.Replace(context.Request.Body.As<string>(), \"a\", new string('b', 1000)))",
            "a" * 100_000,
            "size limit",
        ),
        ("@(context.Request.Body.As<string>().PadLeft(1000000000))", "x", "size limit"),
        ("@(String.Join(\",\", context.Request.Body.As<string>().Split('a')))", "a" * 10, ""),
        ("@(context.Request.Body.As<JArray>().Count)", TOO_LARGE, "larger than"),
        ("@(context.Request.Body.As<JArray>().Count)", NESTED, "MaxDepth of 64"),
        ("@(context.Request.Body.As<JArray>().Count)", MANY_OBJECTS, "time budget"),
    ],
    ids=[
        "endless-loop",
        "long-foreach",
        "replace-growth",
        "ignore-case-replace-growth",
        "regex-replace-growth",
        "pad-left",
        "join-within-limits",
        "json-too-large",
        "json-too-deep",
        "json-too-slow",
    ],
)
async def test_costly_expression_fails_fast_and_others_are_served(
    budget_gateway, certs, tmp_path, expression, body, error
):
    port = await budget_gateway(expression)
    payload = tmp_path / "body"
    payload.write_text(body)
    ca = ("--cacert", str(certs.ca_file))
    (tmp_path / "abuse").mkdir()
    abusive = asyncio.ensure_future(
        _timed(port, "/abuse/x", tmp_path / "abuse", *ca, "--data-binary", f"@{payload}")
    )
    calm_latencies = []
    while not abusive.done() or not calm_latencies:
        reply, elapsed = await _timed(port, "/calm/x", tmp_path, *ca)
        assert reply.status == 200, reply.stderr
        calm_latencies.append(elapsed)
    reply, elapsed = await abusive
    assert max(calm_latencies) < BOUND and elapsed < BOUND
    if not error:
        assert reply.status == 200
        return
    assert reply.status == 500, reply.stderr
    assert reply.json()["message"] == "Internal server error"
    assert reply.headers["x-error"].startswith("ExpressionValueEvaluationFailure: ")
    assert error in reply.headers["x-error"]


def test_the_time_budget_is_shared_by_a_requests_expressions():
    apply_limits(LIMITS)
    try:
        metered = compile_expression('@("a-b".Replace("-", "+"))')
        plain = compile_expression('@(context.Request.Method + "!")')
        context = make_context()
        assert metered.evaluate(context) == "a+b"
        assert 0 < context.expression_seconds < LIMITS.expression_time_budget
        context.expression_seconds = LIMITS.expression_time_budget  # used up by earlier ones
        with pytest.raises(BudgetExceeded, match="time budget"):
            metered.evaluate(context)
        assert plain.evaluate(context) == "GET!"  # never metered: reads no clock
        assert metered.evaluate(make_context()) == "a+b"  # the next request has its own
    finally:
        apply_limits(DEFAULT_LIMITS)


@pytest.mark.parametrize(
    ("limits", "within", "beyond", "error"),
    [
        (
            Limits(expression_loop_iterations=10),
            "@{ var n = 0; for (var i = 0; i < 10; i++) { n++; } return n; }",
            "@{ var n = 0; for (var i = 0; i < 11; i++) { n++; } return n; }",
            "loop iteration budget",
        ),
        (
            Limits(expression_max_string_chars=10),
            "@(new string('a', 5) + new string('b', 5))",
            "@(new string('a', 5) + new string('b', 6))",
            "size limit",
        ),
        (
            Limits(expression_max_items=10),
            "@(Enumerable.Range(0, 10).Count())",
            "@(new int[11].Length)",
            "collection larger",
        ),
        (
            Limits(expression_json_max_chars=10),
            '@(JToken.Parse("[1,2,3,45]").Count())',
            '@(JToken.Parse("[1,2,3,456]").Count())',
            "larger than the limit",
        ),
        (
            Limits(expression_json_max_depth=2),
            '@(JToken.Parse("[[1]]").Count())',
            '@(JToken.Parse("[[[1]]]").Count())',
            "MaxDepth of 2",
        ),
        (
            Limits(expression_regex_timeout=0.05),
            '@(Regex.IsMatch("aaaa", "(a|aa)+c"))',
            "@(Regex.IsMatch(new string('a', 40), \"(a|aa)+c\"))",
            "time limit",
        ),
    ],
    ids=["loop-iterations", "string", "items", "json-chars", "json-depth", "regex-timeout"],
)
def test_each_expression_limit_follows_its_flag(limits, within, beyond, error):
    apply_limits(limits)
    try:
        compile_expression(within).evaluate(make_context())
        with pytest.raises(ExpressionRuntimeError, match=error):
            compile_expression(beyond).evaluate(make_context())
    finally:
        apply_limits(DEFAULT_LIMITS)
