"""The pipeline: scopes composed through `<base/>` once, then run per request without sockets.

`compile_pipeline(global_doc, product_doc, api_doc, operation_doc) -> Pipeline` takes parsed
`PolicyDocument`s (or None for a scope without a document). `await pipeline.run(context,
forwarder)` runs inbound, backend and outbound; an error anywhere becomes `context.LastError`, the
response becomes APIM's default error response, and the `on-error` section may change it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from certgate.expressions.errors import ExpressionRuntimeError
from certgate.policy.context import Context, LastError, Response, reason_phrase
from certgate.policy.elements.backend import ForwardRequest
from certgate.policy.errors import BackendError, PolicyRuntimeError
from certgate.policy.forwarding import Forwarder
from certgate.policy.loader import PolicyDocument
from certgate.policy.registry import RESUME, SECTIONS, Policy, PolicyFault, run_policies

log = logging.getLogger("certgate.policy")


def _default_section(section: str) -> list[Policy]:
    """What `<base/>` means at global scope: APIM's default global policy."""
    if section != "backend":
        return []
    return [ForwardRequest(scope="global", section="backend", path="forward-request[1]")]


def _compose(docs: list[PolicyDocument | None], section: str) -> list[Policy]:
    effective = _default_section(section)
    for doc in docs:
        if doc is None:
            continue
        policies = doc.sections.get(section)
        if policies is None:
            continue
        spliced: list[Policy] = []
        for policy in policies:
            if policy.name == "base":
                spliced.extend(effective)
            else:
                spliced.append(policy)
        effective = spliced
    return effective


def compile_pipeline(
    global_doc: PolicyDocument | None = None,
    product_doc: PolicyDocument | None = None,
    api_doc: PolicyDocument | None = None,
    operation_doc: PolicyDocument | None = None,
) -> Pipeline:
    """The effective policy of one operation. A scope without a document, or a document without
    a section, passes the broader scope through; a section without `<base/>` replaces it."""
    docs = [global_doc, product_doc, api_doc, operation_doc]
    return Pipeline(*(tuple(_compose(docs, section)) for section in SECTIONS))


def _error_response(context: Context, status: int, message: str, headers=()) -> Response:
    payload: dict[str, Any] = {"statusCode": status, "message": message}
    if status >= 500:
        payload["activityId"] = context.RequestId
    response = Response(status, reason_phrase(status), body=json.dumps(payload).encode())
    response.Headers.set("Content-Type", ["application/json; charset=utf-8"])
    for name, value in headers:
        response.Headers.set(name, [value])
    return response


def _describe(fault: PolicyFault) -> tuple[str | None, str, int, str, tuple]:
    """(Reason, Message, status, public message, headers) of a failure."""
    error = fault.error
    if isinstance(error, PolicyRuntimeError):
        public = error.public_message or (error.message if error.status < 500 else None)
        return (
            error.reason,
            error.message,
            error.status,
            public or "Internal server error",
            error.headers,
        )
    if isinstance(error, BackendError):
        status = error.status
        public = "Internal server error" if status == 500 else reason_phrase(status)
        return error.reason, error.message, status, public, ()
    if isinstance(error, ExpressionRuntimeError):
        message = f"Expression evaluation failed. {error.message}"
        return error.reason, message, 500, "Internal server error", ()
    log.error("policy %s failed", fault.policy.name, exc_info=error)
    return None, f"{type(error).__name__}: {error}", 500, "Internal server error", ()


class Pipeline:
    """The effective policies of one operation; immutable and shared by all requests."""

    __slots__ = ("backend", "inbound", "on_error", "outbound", "resumed", "steps")

    def __init__(
        self,
        inbound: tuple[Policy, ...],
        backend: tuple[Policy, ...],
        outbound: tuple[Policy, ...],
        on_error: tuple[Policy, ...],
    ) -> None:
        self.inbound = inbound
        self.backend = backend
        self.outbound = outbound
        self.on_error = on_error
        self.steps = inbound + backend + outbound
        # Where a cached response resumes: after the first outbound element that is a resume
        # point (cache-store), as APIM continues "after the corresponding cache-store".
        points = [i for i, policy in enumerate(outbound) if policy.resume_point]
        self.resumed = outbound[points[0] + 1 :] if points else ()

    async def run(self, context: Context, forwarder: Forwarder) -> Response:
        """Handle one request; the response to send is `context.Response` (also returned)."""
        context.forwarder = forwarder
        # return-response ends the whole pipeline, so the three sections run as one sequence;
        # an element answering RESUME (a cache hit) continues with `resumed`.
        steps = self.steps
        while steps:
            current, steps = steps, ()
            for policy in current:
                try:
                    result = await policy.execute(context)
                    if result:
                        if result is RESUME:
                            steps = self.resumed
                        break
                except PolicyFault as fault:
                    await self._handle(context, fault)
                    break
                except Exception as exc:
                    await self._handle(context, PolicyFault(policy, exc))
                    break
        if context.on_response:
            for hook in context.on_response:
                try:
                    pending = hook(context)
                    if pending is not None:
                        await pending
                except Exception:
                    log.exception("a policy's response step failed; the response is sent as is")
        return context.Response

    async def _handle(self, context: Context, fault: PolicyFault) -> None:
        self._record(context, fault)
        try:
            await run_policies(self.on_error, context)
        except PolicyFault as second:
            self._record(context, second)

    @staticmethod
    def _record(context: Context, fault: PolicyFault) -> None:
        reason, message, status, public, headers = _describe(fault)
        policy = fault.policy
        context.LastError = LastError(
            policy.name,
            reason,
            message,
            policy.scope or None,
            policy.section or None,
            policy.path or None,
            policy.policy_id,
        )
        context.Response = _error_response(context, status, public, headers)
