"""Each executed policy element, observed through the request the backend gets or the response."""

from __future__ import annotations

import base64
import json

import pytest

from certgate.policy.catalog import MemoryCatalog
from certgate.policy.loader import parse_document
from tests.policy.support import (
    RecordingForwarder,
    body_text,
    make_context,
    pipeline,
    policies,
    run,
)


def _header(name: str, action: str, *values: str) -> str:
    inner = "".join(f"<value>{v}</value>" for v in values)
    return f"<set-header name='{name}' exists-action='{action}'>{inner}</set-header>"


async def test_set_header_actions_and_multiple_values() -> None:
    context = make_context(headers=[("X-Keep", "old"), ("X-Over", "old"), ("X-Gone", "1")])
    _, _, forwarder = await run(
        policies(
            _header("X-Keep", "skip", "new")
            + _header("X-Over", "override", "a", "b")
            + _header("X-Keep", "append", "more")
            + _header("X-Gone", "delete")
            + _header("Set-Cookie", "override", "a=1", "b=2")
            + _header("X-New", "skip", "@(context.Request.Method)")
        ),
        context,
    )
    sent = forwarder.calls[0].headers
    assert ("X-Keep", "old") in sent and ("X-Keep", "more") in sent
    assert ("X-Over", "a,b") in sent
    assert not any(k == "X-Gone" for k, _ in sent)
    assert [v for k, v in sent if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert ("X-New", "GET") in sent


async def test_set_header_in_outbound_changes_the_response() -> None:
    response, _, _ = await run(
        policies(outbound=_header("X-Backend", "delete") + _header("X-Out", "override", "1"))
    )
    assert response.Headers.GetValueOrDefault("X-Backend") is None
    assert response.Headers.GetValueOrDefault("X-Out") == "1"


async def test_query_parameters_and_rewrite_uri_shape_the_backend_url() -> None:
    context = make_context(target="/api/items/42?x=1&keep=yes")
    context.Request.set_matched_parameters({"id": "42"})
    _, _, forwarder = await run(
        policies(
            "<set-query-parameter name='added' exists-action='override'><value>v</value>"
            "</set-query-parameter>"
            "<set-query-parameter name='x' exists-action='delete'/>"
            "<rewrite-uri template='/v2/things/{id}?format=json'/>"
        ),
        context,
    )
    assert forwarder.calls[0].url == (
        "https://backend.example/base/v2/things/42?format=json&keep=yes&added=v"
    )


async def test_rewrite_uri_without_copying_unmatched_parameters() -> None:
    _, _, forwarder = await run(
        policies("<rewrite-uri template='/other' copy-unmatched-params='false'/>")
    )
    assert forwarder.calls[0].url == "https://backend.example/base/other"


async def test_set_backend_service_and_set_method() -> None:
    catalog = MemoryCatalog(paths={"backends/pool"})
    forwarder = RecordingForwarder()
    await pipeline(
        api=policies(
            "<set-backend-service base-url='https://other.example/v1'/><set-method>POST</set-method>"
        ),
        catalog=catalog,
    ).run(make_context(), forwarder)
    await pipeline(api=policies("<set-backend-service backend-id='pool'/>"), catalog=catalog).run(
        make_context(), forwarder
    )
    first, second = forwarder.calls
    assert (first.method, first.url) == ("POST", "https://other.example/v1/items?x=1")
    assert second.backend_id == "pool"


async def test_variables_and_set_body_reading_the_request_body() -> None:
    class Stream:
        def __init__(self, data: bytes) -> None:
            self.data = data

        async def __aiter__(self):
            yield self.data

        async def read_all(self) -> bytes:
            return self.data

    context = make_context(method="POST", body=Stream(b"hello"), headers=[("Content-Length", "5")])
    _, _, forwarder = await run(
        policies(
            "<set-variable name='original' "
            "value='@(context.Request.Body.As&lt;string&gt;(preserveContent: true))'/>"
            "<set-variable name='n' value='literal'/>"
            '<set-body>@((string)context.Variables["original"] + " " '
            '+ context.Variables["n"])</set-body>'
        ),
        context,
    )
    call = forwarder.calls[0]
    assert call.body == b"hello literal"
    assert not any(k.lower() == "content-length" for k, _ in call.headers)


async def test_set_status_and_mock_response() -> None:
    response, _, forwarder = await run(
        policies("<mock-response status-code='201' content-type='text/plain'/>")
    )
    assert forwarder.calls == []
    assert response.StatusCode == 201
    assert response.Headers.GetValueOrDefault("Content-Type") == "text/plain"
    response, _, _ = await run(policies(outbound="<set-status code='299' reason='Fine'/>"))
    assert (response.StatusCode, response.StatusReason) == (299, "Fine")


async def test_check_header_refuses_missing_or_wrong_values() -> None:
    check = (
        "<check-header name='X-Key' failed-check-httpcode='401' "
        "failed-check-error-message='Not authorized' ignore-case='true'>"
        "<value>Secret</value></check-header>"
    )
    response, context, forwarder = await run(policies(check))
    assert response.StatusCode == 401
    assert json.loads(body_text(response)) == {"statusCode": 401, "message": "Not authorized"}
    assert context.LastError.Reason == "HeaderNotFound"
    assert forwarder.calls == []
    response, context, _ = await run(policies(check), make_context(headers=[("X-Key", "wrong")]))
    assert (response.StatusCode, context.LastError.Reason) == (401, "HeaderValueNotAllowed")
    response, _, forwarder = await run(policies(check), make_context(headers=[("X-Key", "SECRET")]))
    assert response.StatusCode == 200 and len(forwarder.calls) == 1


async def test_authentication_basic_sets_the_authorization_header() -> None:
    _, _, forwarder = await run(
        policies(
            "<authentication-basic username='user' password='@(&quot;p&quot; + &quot;w&quot;)'/>"
        )
    )
    expected = "Basic " + base64.b64encode(b"user:pw").decode()
    assert ("Authorization", expected) in forwarder.calls[0].headers


@pytest.mark.parametrize(
    ("action", "ip", "status", "reason"),
    [
        ("allow", "10.1.2.3", 200, None),
        ("allow", "192.168.0.1", 403, "CallerIpNotAllowed"),
        ("forbid", "10.1.2.3", 403, "CallerIpBlocked"),
        ("forbid", "172.16.0.9", 403, "CallerIpBlocked"),
        ("forbid", "8.8.8.8", 200, None),
    ],
)
async def test_ip_filter(action: str, ip: str, status: int, reason: str | None) -> None:
    response, context, _ = await run(
        policies(
            f"<ip-filter action='{action}'><address>10.0.0.0/8</address>"
            "<address-range from='172.16.0.1' to='172.16.0.10'/></ip-filter>"
        ),
        make_context(ip=ip),
    )
    assert response.StatusCode == status
    assert (context.LastError.Reason if context.LastError else None) == reason


CORS = (
    "<cors allow-credentials='true'><allowed-origins><origin>https://app.example</origin>"
    "</allowed-origins><allowed-methods preflight-result-max-age='300'><method>GET</method>"
    "<method>POST</method></allowed-methods><allowed-headers><header>content-type</header>"
    "</allowed-headers><expose-headers><header>x-trace</header></expose-headers></cors>"
)


async def test_cors_answers_preflight_without_calling_the_backend() -> None:
    context = make_context(
        method="OPTIONS",
        headers=[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "Content-Type"),
        ],
    )
    response, _, forwarder = await run(policies(CORS), context)
    assert forwarder.calls == []
    headers = response.Headers
    assert headers.GetValueOrDefault("Access-Control-Allow-Origin") == "https://app.example"
    assert headers.GetValueOrDefault("Access-Control-Allow-Methods") == "POST"
    assert headers.GetValueOrDefault("Access-Control-Allow-Credentials") == "true"
    assert headers.GetValueOrDefault("Access-Control-Max-Age") == "300"


async def test_cors_decorates_allowed_responses_and_ends_unmatched_gets() -> None:
    allowed = make_context(headers=[("Origin", "https://app.example")])
    response, _, forwarder = await run(policies(CORS), allowed)
    assert (
        response.Headers.GetValueOrDefault("Access-Control-Allow-Origin") == "https://app.example"
    )
    assert response.Headers.GetValueOrDefault("Access-Control-Expose-Headers") == "x-trace"
    assert len(forwarder.calls) == 1
    other = make_context(headers=[("Origin", "https://evil.example")])
    response, _, forwarder = await run(policies(CORS), other)
    assert forwarder.calls == [] and response.StatusCode == 200
    assert response.Headers.GetValueOrDefault("Access-Control-Allow-Origin") is None


async def test_rate_limit_by_key_counts_per_key_and_answers_429() -> None:
    limited = pipeline(
        api=policies(
            "<rate-limit-by-key calls='2' renewal-period='60' "
            "counter-key='@(context.Request.IpAddress)' remaining-calls-header-name='X-Left'/>"
        )
    )
    statuses = []
    for ip in ("1.1.1.1", "1.1.1.1", "1.1.1.1", "2.2.2.2"):
        response = await limited.run(make_context(ip=ip), RecordingForwarder())
        statuses.append(response.StatusCode)
        last = response
    assert statuses == [200, 200, 429, 200]
    assert last.Headers.GetValueOrDefault("X-Left") == "1"
    response = await limited.run(make_context(ip="1.1.1.1"), RecordingForwarder())
    assert 0 < int(response.Headers.GetValueOrDefault("Retry-After")) <= 60
    assert json.loads(body_text(response))["message"].startswith("Rate limit is exceeded.")


async def test_rate_limit_counts_all_requests() -> None:
    limited = pipeline(api=policies("<rate-limit calls='1' renewal-period='30'/>"))
    first = await limited.run(make_context(), RecordingForwarder())
    second = await limited.run(make_context(), RecordingForwarder())
    assert (first.StatusCode, second.StatusCode) == (200, 429)


async def test_limit_concurrency_refuses_requests_beyond_max_count() -> None:
    import asyncio

    release = asyncio.Event()
    entered = asyncio.Event()

    class SlowForwarder(RecordingForwarder):
        async def forward(self, context, options):
            entered.set()
            await release.wait()
            await super().forward(context, options)

    limited = pipeline(
        api=policies(
            backend="<limit-concurrency key='@(&quot;all&quot;)' max-count='1'>"
            "<forward-request/></limit-concurrency>"
        )
    )
    first = asyncio.create_task(limited.run(make_context(), SlowForwarder()))
    await asyncio.wait_for(entered.wait(), 5)
    second = await limited.run(make_context(), RecordingForwarder())
    release.set()
    assert (await first).StatusCode == 200
    assert second.StatusCode == 429


async def test_retry_runs_again_while_the_condition_holds() -> None:
    forwarder = RecordingForwarder(status=503)
    response, _, _ = await run(
        policies(
            backend="<retry condition='@(context.Response.StatusCode == 503)' count='2' "
            "interval='0' first-fast-retry='true'><forward-request/></retry>"
        ),
        forwarder=forwarder,
    )
    assert len(forwarder.calls) == 3
    assert response.StatusCode == 503


async def test_include_fragment_runs_the_fragment_in_place() -> None:
    catalog = MemoryCatalog(
        fragments={"f": "<fragment>" + _header("X-Frag", "override", "yes") + "</fragment>"}
    )
    forwarder = RecordingForwarder()
    await pipeline(api=policies("<include-fragment fragment-id='f'/>"), catalog=catalog).run(
        make_context(), forwarder
    )
    assert ("X-Frag", "yes") in forwarder.calls[0].headers


async def test_trace_goes_with_the_requests_access_log_line() -> None:
    _, context, _ = await run(
        policies(
            "<trace source='audit' severity='information'>"
            '<message>@("method " + context.Request.Method)</message>'
            "<metadata name='k' value='v'/></trace>"
        )
    )
    assert context.traces == [
        {
            "source": "audit",
            "severity": "information",
            "message": "method GET",
            "metadata": {"k": "v"},
        }
    ]


async def test_choose_picks_the_first_true_branch() -> None:
    doc = policies(
        "<choose><when condition='@(context.Request.Method == &quot;POST&quot;)'>"
        + _header("X-Branch", "override", "post")
        + "</when><when condition='@(true)'>"
        + _header("X-Branch", "override", "second")
        + "</when><otherwise>"
        + _header("X-Branch", "override", "otherwise")
        + "</otherwise></choose>"
    )
    _, _, forwarder = await run(doc)
    assert ("X-Branch", "second") in forwarder.calls[0].headers
    _, _, forwarder = await run(doc, make_context(method="POST"))
    assert ("X-Branch", "post") in forwarder.calls[0].headers


@pytest.mark.parametrize(
    ("attributes", "delays"),
    [
        ("interval='2'", [2, 2, 2]),
        ("interval='1' delta='2'", [1, 3, 5]),
        ("interval='1' delta='2' max-interval='10'", [3, 7, 10]),
    ],
)
def test_retry_waits_fixed_linear_or_exponential(attributes: str, delays: list[int]) -> None:
    doc = parse_document(
        policies(
            backend=f"<retry condition='@(false)' count='3' {attributes}><forward-request/></retry>"
        ),
        "api",
        MemoryCatalog(),
    )
    retry = doc.sections["backend"][0]
    assert [retry.delay(make_context(), n) for n in (1, 2, 3)] == delays


async def test_rewrite_uri_values_cannot_climb_out_of_the_template_or_add_parameters() -> None:
    """A query value filling a path placeholder stays one segment (no `/`, no `..`), and a value
    filling a query placeholder stays one value: the template decides the backend URL's shape."""
    context = make_context(target="/api/items?id=..%2F..%2Fadmin&dot=..&fmt=json%26admin%3D1")
    _, _, forwarder = await run(
        policies(
            "<rewrite-uri template='/v2/users/{id}/{dot}?format={fmt}' "
            "copy-unmatched-params='false'/>"
        ),
        context,
    )
    assert forwarder.calls[0].url == (
        "https://backend.example/base/v2/users/..%2F..%2Fadmin/%2E%2E?format=json%26admin%3D1"
    )


async def test_rewrite_uri_wildcard_keeps_its_segments_and_escapes_each() -> None:
    context = make_context(target="/api/files/a/b%20c")
    context.Request.set_matched_parameters({"rest": "a/b c?d"})
    _, _, forwarder = await run(
        policies("<rewrite-uri template='/store/{*rest}' copy-unmatched-params='false'/>"),
        context,
    )
    assert forwarder.calls[0].url == "https://backend.example/base/store/a/b%20c%3Fd"
