"""Choosing the backend and calling it: set-backend-service, forward-request."""

from __future__ import annotations

from typing import Any

from certgate.policy.buffering import buffer_request_body
from certgate.policy.context import BackendTarget, reason_phrase
from certgate.policy.elements.control import string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.forwarding import DEFAULT_OPTIONS, ForwardOptions
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.values import Const, as_bool, as_int, as_string


@register("set-backend-service")
class SetBackendService(Policy):
    """Send the request to `base-url`, or to the backend entity `backend-id`."""

    __slots__ = ("backend_id", "base_url", "target")
    attributes = frozenset({"base-url", "backend-id"})
    expressions = attributes
    sections = frozenset({"inbound", "backend"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        self = cls()
        self.base_url = loader.attr(node, "base-url")
        self.backend_id = loader.attr(node, "backend-id")
        if (self.base_url is None) == (self.backend_id is None):
            raise node.error("Exactly one of 'base-url' or 'backend-id' must be specified.")
        if isinstance(self.backend_id, Const):
            backend_id = self.backend_id.value
            loader.reference(
                node,
                f"backends/{backend_id}",
                f"Backend with id '{backend_id}' could not be found.",
            )
        if isinstance(self.base_url, Const) and not self.base_url.value.startswith(
            ("http://", "https://")
        ):
            raise node.error(f"'{self.base_url.value}' is not an absolute http(s) URL.")
        self.target = None  # built once when the value is a constant (never mutated)
        if isinstance(self.backend_id, Const):
            self.target = BackendTarget(None, as_string(self.backend_id.value))
        elif isinstance(self.base_url, Const):
            self.target = BackendTarget(as_string(self.base_url.value))
        return self

    async def execute(self, context: Any) -> bool | None:
        if self.target is not None:
            context.backend = self.target
        elif self.backend_id is not None:
            context.backend = BackendTarget(None, string_of(self.backend_id, context))
        else:
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
class ForwardRequest(Policy):
    """Call the backend through the forwarder; the backend's response becomes context.Response."""

    __slots__ = ("dynamic", "options")
    attributes = frozenset(_OPTION_ATTRS)
    expressions = frozenset({"timeout", "timeout-ms", "follow-redirects", "http-version"})
    sections = frozenset({"backend"})

    def __init__(self) -> None:
        super().__init__()
        self.options = DEFAULT_OPTIONS
        self.dynamic: dict[str, Any] = {}

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        self = cls()
        values = {name: loader.attr(node, name) for name in _OPTION_ATTRS}
        self.dynamic = {
            k: v for k, v in values.items() if v is not None and not isinstance(v, Const)
        }
        try:
            self.options = _options({k: v.value for k, v in values.items() if isinstance(v, Const)})
        except ValueError as exc:
            raise node.error(str(exc)) from None
        return self

    async def execute(self, context: Any) -> bool | None:
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
    if not fields:
        return base
    merged = {
        "timeout": base.timeout,
        "follow_redirects": base.follow_redirects,
        "buffer_request_body": base.buffer_request_body,
        "buffer_response": base.buffer_response,
        "fail_on_error_status_code": base.fail_on_error_status_code,
        "http_version": base.http_version,
    }
    merged.update(fields)
    return ForwardOptions(**merged)
