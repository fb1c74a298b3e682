"""The pipeline: scopes through <base/>, the default backend, errors and on-error."""

from __future__ import annotations

import json

from certgate.policy.errors import BackendError
from tests.policy.support import (
    RecordingForwarder,
    body_text,
    make_context,
    pipeline,
    policies,
    run,
)


def _append(value: str) -> str:
    return f'<set-header name="X-Trail" exists-action="append"><value>{value}</value></set-header>'


async def test_base_splices_broader_scopes_at_its_position() -> None:
    scopes = pipeline(
        global_=policies(_append("global")),
        product=policies(_append("product-before") + "<base />" + _append("product-after")),
        api=policies("<base />" + _append("api")),
        operation=policies(_append("operation") + "<base />"),
    )
    forwarder = RecordingForwarder()
    await scopes.run(make_context(), forwarder)
    trail = [v for k, v in forwarder.calls[0].headers if k == "X-Trail"]
    assert trail == ["operation", "product-before", "global", "product-after", "api"]


async def test_without_base_the_broader_scopes_do_not_run() -> None:
    scopes = pipeline(
        global_=policies(_append("global")),
        api=policies(_append("api"), backend="<forward-request />"),
    )
    forwarder = RecordingForwarder()
    await scopes.run(make_context(), forwarder)
    assert [v for k, v in forwarder.calls[0].headers if k == "X-Trail"] == ["api"]


async def test_default_backend_forwards_and_outbound_sees_the_response() -> None:
    response, _, forwarder = await run(
        policies(
            outbound='<set-header name="X-Status" exists-action="override">'
            "<value>@(context.Response.StatusCode.ToString())</value></set-header>"
        )
    )
    assert len(forwarder.calls) == 1
    assert forwarder.calls[0].url == "https://backend.example/base/items?x=1"
    assert response.StatusCode == 200
    assert response.Headers.GetValueOrDefault("X-Status") == "200"
    assert body_text(response) == "backend body"


async def test_backend_section_without_forward_request_makes_no_call() -> None:
    response, _, forwarder = await run(policies(backend=""))
    assert forwarder.calls == []
    assert response.StatusCode == 200


async def test_return_response_ends_the_pipeline() -> None:
    response, _, forwarder = await run(
        policies(
            "<return-response><set-status code='418' reason='Teapot'/>"
            "<set-header name='X-A' exists-action='override'><value>1</value></set-header>"
            "<set-body>short</set-body></return-response>",
            outbound=_append("outbound ran"),
        )
    )
    assert forwarder.calls == []
    assert (response.StatusCode, response.StatusReason) == (418, "Teapot")
    assert response.Headers.GetValueOrDefault("X-A") == "1"
    assert response.Headers.GetValueOrDefault("X-Trail") is None
    assert body_text(response) == "short"


async def test_expression_failure_goes_to_on_error_with_last_error() -> None:
    fields = ["Source", "Reason", "Message", "Scope", "Section", "Path", "PolicyId"]
    on_error = "".join(
        f"<set-header name='E-{f}' exists-action='override'>"
        f"<value>@(context.LastError.{f})</value></set-header>"
        for f in fields
    ) + (
        "<set-header name='E-Status' exists-action='override'>"
        "<value>@(context.Response.StatusCode.ToString())</value></set-header>"
    )
    response, _, forwarder = await run(
        policies(
            "<choose><when condition='@(true)'>"
            "<set-variable id='boom' name='v' value='@(context.Request.Certificate.Subject)'/>"
            "</when></choose>",
            on_error=on_error,
        )
    )
    got = {f: response.Headers.GetValueOrDefault(f"E-{f}") for f in fields}
    assert forwarder.calls == []
    assert got["Source"] == "set-variable"
    assert got["Reason"] == "ExpressionValueEvaluationFailure"
    assert got["Message"].startswith("Expression evaluation failed.")
    assert (got["Scope"], got["Section"], got["PolicyId"]) == ("api", "inbound", "boom")
    assert got["Path"] == "choose[1]\\when[1]\\set-variable[1]"
    assert response.Headers.GetValueOrDefault("E-Status") == "500"


async def test_error_without_on_error_gives_apims_default_500() -> None:
    response, context, _ = await run(policies("<set-variable name='v' value='@(1 / 0)'/>"))
    assert response.StatusCode == 500
    assert json.loads(body_text(response)) == {
        "statusCode": 500,
        "message": "Internal server error",
        "activityId": context.RequestId,
    }
    assert context.LastError.Reason == "ExpressionValueEvaluationFailure"


async def test_on_error_can_replace_the_error_response() -> None:
    response, _, _ = await run(
        policies(
            "<set-variable name='v' value='@(1 / 0)'/>",
            on_error="<return-response><set-status code='503' reason='Later'/>"
            "<set-body>@(context.LastError.Source)</set-body></return-response>",
        )
    )
    assert (response.StatusCode, body_text(response)) == (503, "set-variable")


async def test_backend_errors_map_to_500_and_504() -> None:
    refused = RecordingForwarder(error=BackendError("BackendConnectionFailure", "refused"))
    response, context, _ = await run(policies(), forwarder=refused)
    assert response.StatusCode == 500
    assert (context.LastError.Source, context.LastError.Reason) == (
        "forward-request",
        "BackendConnectionFailure",
    )
    assert (context.LastError.Scope, context.LastError.Section) == ("global", "backend")
    slow = RecordingForwarder(error=BackendError("Timeout", "no answer in 1 s"))
    response, context, _ = await run(policies(), forwarder=slow)
    assert response.StatusCode == 504
    assert context.LastError.Message == "no answer in 1 s"


async def test_fail_on_error_status_code_runs_on_error() -> None:
    response, _, _ = await run(
        policies(
            backend="<forward-request fail-on-error-status-code='true' timeout='5'/>",
            on_error="<set-header name='X-Failed' exists-action='override'>"
            "<value>@(context.LastError.Source)</value></set-header>",
        ),
        forwarder=RecordingForwarder(status=502),
    )
    assert response.StatusCode == 502
    assert response.Headers.GetValueOrDefault("X-Failed") == "forward-request"


async def test_forward_request_options_reach_the_forwarder() -> None:
    _, _, forwarder = await run(
        policies(
            backend="<forward-request timeout='@(7)' follow-redirects='true' "
            "buffer-request-body='true'/>"
        )
    )
    options = forwarder.calls[0].options
    assert (options.timeout, options.follow_redirects, options.buffer_request_body) == (
        7.0,
        True,
        True,
    )


async def test_error_in_on_error_still_answers_with_the_default_error() -> None:
    response, context, _ = await run(
        policies(
            "<set-variable name='v' value='@(1 / 0)'/>",
            on_error="<set-variable name='w' value='@(context.Request.Certificate.Subject)'/>",
        )
    )
    assert response.StatusCode == 500
    assert context.LastError.Section == "on-error"
