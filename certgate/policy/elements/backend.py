"""Choosing the backend and calling it: set-backend-service, forward-request."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from certgate.policy.buffering import buffer_request_body
from certgate.policy.context import BackendTarget, Context, reason_phrase
from certgate.policy.elements.control import string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.forwarding import DEFAULT_OPTIONS, ForwardOptions
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.values import Const, Value, as_bool, as_int, as_string


@register("set-backend-service")
@dataclass(slots=True)
class SetBackendService(Policy):
    """Send the request to `base-url`, or to the backend entity `backend-id`."""

    base_url: Value | None
    backend_id: Value | None
    target: BackendTarget | None  # built once when the value is a constant (never mutated)
    attributes = frozenset({"base-url", "backend-id"})
    expressions = attributes
    sections = frozenset({"inbound", "backend"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        base_url = loader.attr(node, "base-url")
        backend_id = loader.attr(node, "backend-id")
        if (base_url is None) == (backend_id is None):
            raise node.error("Exactly one of 'base-url' or 'backend-id' must be specified.")
        if isinstance(backend_id, Const):
            backend_id = Const(
                loader.reference(
                    node,
                    f"backends/{backend_id.value}",
                    f"Backend with id '{backend_id.value}' could not be found.",
                )
            )
        if isinstance(base_url, Const) and not base_url.value.startswith(("http://", "https://")):
            raise node.error(f"'{base_url.value}' is not an absolute http(s) URL.")
        target = None
        if isinstance(backend_id, Const):
            target = BackendTarget(None, as_string(backend_id.value))
        elif isinstance(base_url, Const):
            target = BackendTarget(as_string(base_url.value))
        return cls(base_url, backend_id, target)

    async def execute(self, context: Context) -> bool | int | None:
        if self.target is not None:
            context.backend = self.target
        elif self.backend_id is not None:
            context.backend = BackendTarget(None, string_of(self.backend_id, context))
        elif self.base_url is not None:
            context.backend = BackendTarget(string_of(self.base_url, context))
        return None


_OPTION_ATTRS = (
    "timeout",
    "timeout-ms",
    "continue-timeout",
    "http-version",
    "follow-redirects",
    "buffer-request-body",
    "buffer-response",
    "fail-on-error-status-code",
)


@register("forward-request")
@dataclass(slots=True)
class ForwardRequest(Policy):
    """Call the backend through the forwarder; the backend's response becomes context.Response."""

    options: ForwardOptions = DEFAULT_OPTIONS
    dynamic: dict[str, Value] = field(default_factory=dict)  # attributes holding expressions
    attributes = frozenset(_OPTION_ATTRS)
    expressions = frozenset({"timeout", "timeout-ms", "follow-redirects", "http-version"})
    sections = frozenset({"backend"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        values = {name: loader.attr(node, name) for name in _OPTION_ATTRS}
        dynamic = {k: v for k, v in values.items() if v is not None and not isinstance(v, Const)}
        try:
            options = _options({k: v.value for k, v in values.items() if isinstance(v, Const)})
        except ValueError as exc:
            raise node.error(str(exc)) from None
        return cls(options, dynamic)

    async def execute(self, context: Context) -> bool | int | None:
        options = self.options
        if self.dynamic:
            overrides = {k: v.evaluate(context) for k, v in self.dynamic.items()}
            options = _options(overrides, options)
        if context.backend is None:
            raise PolicyRuntimeError(
                "BackendConnectionFailure", "No backend service URL is configured for the API."
            )
        if options.buffer_request_body:
            await buffer_request_body(context)
        await context.forwarder.forward(context, options)
        if options.fail_on_error_status_code and 400 <= context.Response.StatusCode <= 599:
            status = context.Response.StatusCode
            raise PolicyRuntimeError(
                None,
                f"Backend returned status code {status}.",
                status=status,
                public_message=reason_phrase(status) or "Backend error",
            )
        return None


def _options(values: dict[str, Any], base: ForwardOptions = DEFAULT_OPTIONS) -> ForwardOptions:
    """Forward options from attribute values (strings or expression results)."""
    fields: dict[str, Any] = {}
    for name, value in values.items():
        try:
            if name == "timeout":
                fields["timeout"] = float(as_int(value))
            elif name == "timeout-ms":
                fields["timeout"] = as_int(value) / 1000.0
            elif name == "http-version":
                fields["http_version"] = str(value)
            elif name == "continue-timeout":
                as_int(value)
            else:
                fields[name.replace("-", "_")] = as_bool(value)
        except ValueError as exc:
            raise ValueError(f"Attribute '{name}': {exc}") from None
    if "timeout" in fields and fields["timeout"] <= 0:
        raise ValueError("Attribute 'timeout' must be positive.")
    return replace(base, **fields) if fields else base
