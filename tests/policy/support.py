"""Driving the policy engine without sockets: contexts, a recording forwarder, pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.policy.catalog import Catalog, MemoryCatalog
from certgate.policy.context import (
    Api,
    BackendTarget,
    Context,
    Deployment,
    Headers,
    Request,
    Response,
    reason_phrase,
)
from certgate.policy.engine import Pipeline, compile_pipeline
from certgate.policy.errors import BackendError
from certgate.policy.forwarding import ForwardOptions
from certgate.policy.loader import parse_document

BACKEND = "https://backend.example/base"


def backend_url(context: Context) -> str:
    """The full upstream URL the forwarder sends to: base URL (no trailing '/') + target."""
    assert context.backend is not None and context.backend.url is not None
    return context.backend.url.rstrip("/") + context.backend_target()


def make_context(
    method: str = "GET",
    target: str = "/api/items?x=1",
    headers: list[tuple[str, str]] | None = None,
    body: Any = None,
    ip: str = "10.0.0.1",
    certificate: Any = None,
    deployment: Deployment | None = None,
) -> Context:
    """A request to API `api` (path prefix `/api`), whose backend is `BACKEND`."""
    request = Request(
        method,
        "https",
        "gateway.example",
        443,
        target,
        Headers(headers or []),
        body,
        ip,
        certificate,
    )
    path = target.partition("?")[0]  # the handler passes the normalised, still encoded path
    return Context(
        request,
        api=Api("api", "API", "api", BACKEND),
        deployment=deployment,
        backend=BackendTarget(BACKEND),
        backend_path=path.removeprefix("/api"),
    )


@dataclass
class Call:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    options: ForwardOptions
    backend_id: str | None


@dataclass
class RecordingForwarder:
    """Answers every forward with a fixed response (or error) and records what was sent."""

    status: int = 200
    body: bytes = b"backend body"
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("X-Backend", "yes")])
    error: BackendError | None = None
    calls: list[Call] = field(default_factory=list)
    limits: Limits = DEFAULT_LIMITS

    async def forward(self, context: Context, options: ForwardOptions) -> None:
        request = context.Request
        target = context.backend
        url = backend_url(context) if target.url is not None else f"backend:{target.backend_id}"
        body = await request.Body.buffer()
        self.calls.append(
            Call(
                request.Method, url, list(request.Headers.items()), body, options, target.backend_id
            )
        )
        if self.error is not None:
            raise self.error
        context.Response = Response(
            self.status, reason_phrase(self.status), Headers(list(self.headers)), self.body
        )


def pipeline(
    *,
    global_: str | None = None,
    product: str | None = None,
    api: str | None = None,
    operation: str | None = None,
    catalog: Catalog | None = None,
) -> Pipeline:
    catalog = catalog or MemoryCatalog()
    docs = [
        None if text is None else parse_document(text, scope, catalog)
        for text, scope in (
            (global_, "global"),
            (product, "product"),
            (api, "api"),
            (operation, "operation"),
        )
    ]
    return compile_pipeline(*docs)


def policies(
    inbound: str = "", backend: str = "<base />", outbound: str = "", on_error: str = ""
) -> str:
    """A policy document from its sections' inner XML."""
    return (
        f"<policies><inbound>{inbound}</inbound><backend>{backend}</backend>"
        f"<outbound>{outbound}</outbound><on-error>{on_error}</on-error></policies>"
    )


async def run(
    api: str, context: Context | None = None, forwarder: RecordingForwarder | None = None, **scopes
) -> tuple[Response, Context, RecordingForwarder]:
    context = context or make_context()
    forwarder = forwarder or RecordingForwarder()
    response = await pipeline(api=api, **scopes).run(context, forwarder)
    return response, context, forwarder


def body_text(response: Response) -> str:
    data = response.Body.stream()
    assert isinstance(data, bytes)
    return data.decode()
