"""emit-metric, wait and proxy.

emit-metric hands each value to the process's metric sink (`set_metric_sink`): the metrics code
registers `emit_metric(name, value, dimensions)` there (Prometheus), and until it does values are
dropped. The metric's namespace is the `Namespace` dimension. Dimension values come from
expressions, so the number of distinct (name, dimensions) series a process reports is bounded by
`--emit-metric-max-series`; values of further series are dropped (logged once).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from certgate.gateway.upstream.proxy import Proxy
from certgate.httpsyntax import host_problem
from certgate.policy.context import Context
from certgate.policy.elements.control import string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register, run_policies
from certgate.policy.values import Const, Value, as_string

log = logging.getLogger(__name__)

MetricSink = Callable[[str, float, dict[str, str]], None]
_sink: MetricSink | None = None
_series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
_dropping = False


def set_metric_sink(sink: MetricSink | None) -> None:
    """Where emit-metric values go in this process: `sink(name, value, dimensions)`."""
    global _sink, _dropping
    _sink = sink
    _series.clear()
    _dropping = False


def _emit(name: str, value: float, dimensions: dict[str, str], max_series: int) -> None:
    global _dropping
    if _sink is None:
        return
    series = (name, tuple(sorted(dimensions.items())))
    if series not in _series:
        if len(_series) >= max_series:
            if not _dropping:
                _dropping = True
                log.warning("emit-metric: more than %d series; further series dropped", max_series)
            return
        _series.add(series)
    try:
        _sink(name, value, dimensions)
    except Exception:  # a metric the sink cannot take (a negative counter increment) is dropped
        log.warning("emit-metric: the metrics sink refused a value of %s", name, exc_info=True)


def _identifier(value: object) -> str:
    return "" if value is None else str(getattr(value, "Id", "") or "")


# APIM's default dimensions: a `dimension` with one of these names may omit its value.
_DEFAULT_DIMENSIONS: dict[str, Callable[[Context], str]] = {
    "API ID": lambda c: _identifier(c.Api),
    "Operation ID": lambda c: _identifier(c.Operation),
    "Product ID": lambda c: _identifier(c.Product),
    "User ID": lambda c: _identifier(c.User),
    "Subscription ID": lambda c: _identifier(c.Subscription),
    "Location": lambda c: str(c.Deployment.Region),
    "Gateway ID": lambda c: str(c.Deployment.GatewayId),
}
_MAX_DIMENSIONS = 5


@register("emit-metric")
@dataclass(slots=True)
class EmitMetric(Policy):
    """Add `value` (default 1) to the custom metric `name` with up to five dimensions."""

    metric: Value
    namespace: Value
    value: Value
    dimensions: tuple[tuple[str, Value | None], ...]  # None: a default dimension's own value
    attributes = frozenset({"name", "namespace", "value"})
    expressions = frozenset({"name", "namespace", "value", "dimension/value"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        metric = loader.attr(node, "name", required=True)
        namespace = loader.attr(node, "namespace", "API Management")
        amount = loader.attr(node, "value", "1")
        if isinstance(amount, Const):
            _number(amount.value, node.error)
        dimensions: list[tuple[str, Value | None]] = []
        for child in loader.children(node, {"dimension"}):
            loader.no_children(child)
            extra = set(child.attrib) - {"name", "value"}
            if extra:
                raise child.error(f"Attribute '{extra.pop()}' is not allowed in 'dimension'.")
            name = loader.literal(child, "name", required=True)
            value = loader.attr(child, "value")
            if value is None and name not in _DEFAULT_DIMENSIONS:
                raise child.error(
                    f"Dimension '{name}' needs a value: only {', '.join(_DEFAULT_DIMENSIONS)} "
                    "may omit it."
                )
            if any(name == other for other, _ in dimensions):
                raise child.error(f"Dimension '{name}' is given twice.")
            dimensions.append((name, value))
        if not dimensions:
            raise node.error("Element 'emit-metric' needs at least one 'dimension'.")
        if len(dimensions) > _MAX_DIMENSIONS:
            raise node.error(f"Element 'emit-metric' takes at most {_MAX_DIMENSIONS} dimensions.")
        return cls(metric, namespace, amount, tuple(dimensions))

    async def execute(self, context: Context) -> bool | int | None:
        name = string_of(self.metric, context)
        if not name:
            raise PolicyRuntimeError(
                "ExpressionValueEvaluationFailure", "The metric name evaluated to an empty string."
            )
        value = _number(string_of(self.value, context), _runtime_error)
        dimensions = {"Namespace": string_of(self.namespace, context)}
        for dimension, source in self.dimensions:
            if source is None:
                dimensions[dimension] = _DEFAULT_DIMENSIONS[dimension](context)
            else:
                dimensions[dimension] = string_of(source, context)
        _emit(name, value, dimensions, context.forwarder.limits.emit_metric_max_series)
        return None


def _runtime_error(message: str) -> Exception:
    return PolicyRuntimeError("ExpressionValueEvaluationFailure", message)


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _number(text: str, error: Callable[[str], Exception]) -> float:
    """A finite number as double.Parse reads it (no `nan`, `inf` or `1_000`)."""
    value = float(text) if _NUMBER.fullmatch(text) else math.nan
    if not math.isfinite(value):
        raise error(f"Attribute 'value' must be a number, not '{text[:40]}'.")
    return value


_WAIT_CHILDREN = frozenset({"send-request", "cache-lookup-value", "choose"})


@register("wait")
@dataclass(slots=True)
class Wait(Policy):
    """Run the child policies concurrently; continue when all (`for="all"`) or the first
    (`for="any"`, the others are cancelled) have completed."""

    any: bool
    policies: tuple[Policy, ...]
    attributes = frozenset({"for"})
    sections = frozenset({"inbound", "backend", "outbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        mode = loader.literal(node, "for", "all")
        if mode not in ("all", "any"):
            raise node.error(f"Attribute 'for' must be one of all, any, not '{mode}'.")
        for child in node.children:
            if child.tag not in _WAIT_CHILDREN:
                raise child.error(
                    f"Element '{child.tag}' is not allowed inside 'wait' (allowed: "
                    f"{', '.join(sorted(_WAIT_CHILDREN))})."
                )
        return cls(mode == "any", tuple(loader.policies(node)))

    async def execute(self, context: Context) -> bool | int | None:
        if not self.policies:
            return None
        tasks = [asyncio.ensure_future(run_policies((p,), context)) for p in self.policies]
        try:
            if self.any:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            else:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            pending = [task for task in tasks if not task.done()]
            for task in pending:
                task.cancel()
            if pending:  # let cancelled children release what they hold (connections)
                await asyncio.gather(*pending, return_exceptions=True)
        finished = [task for task in tasks if task in done]
        errors = [task.exception() for task in finished]  # each retrieved: none is left unseen
        for error in errors:
            if error is not None:
                raise error
        return any(task.result() for task in finished)


@register("proxy")
@dataclass(slots=True)
class ProxyPolicy(Policy):
    """Send the backend request through an HTTP proxy (CONNECT for https backends), with Basic
    `Proxy-Authorization` when `username` is given. The password never appears in errors."""

    url: Value
    username: Value | None
    password: Value | None
    fixed: Proxy | None  # built once when every value is a constant
    attributes = frozenset({"url", "username", "password"})
    expressions = attributes
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        url = loader.attr(node, "url", required=True)
        username = loader.attr(node, "username")
        password = loader.attr(node, "password")
        if isinstance(url, Const):
            problem = proxy_url_problem(url.value)
            if problem is not None:
                raise node.error(f"Attribute 'url': {problem}")
        constant = all(v is None or isinstance(v, Const) for v in (url, username, password))
        fixed = _proxy(url, username, password, None) if constant else None
        return cls(url, username, password, fixed)

    async def execute(self, context: Context) -> bool | int | None:
        context.web_proxy = self.proxy(context)
        return None

    def proxy(self, context: Context) -> Proxy:
        """The proxy for this request (also what a send-request's `proxy` child sends through)."""
        if self.fixed is not None:
            return self.fixed
        url = string_of(self.url, context)
        problem = proxy_url_problem(url)
        if problem is not None:
            raise PolicyRuntimeError("ExpressionValueEvaluationFailure", f"proxy url: {problem}")
        return _proxy(self.url, self.username, self.password, context)


def _proxy(
    url: Value, username: Value | None, password: Value | None, context: Context | None
) -> Proxy:
    """The proxy the values give against `context` (None: constants, at save time)."""

    def text(value: Value | None) -> str | None:
        return None if value is None else as_string(value.evaluate(context))

    return Proxy.from_properties(
        {"url": text(url), "username": text(username), "password": text(password)}
    )


_PROXY_URL = "not a valid proxy URL: expected http://host:port"


def proxy_url_problem(url: str) -> str | None:
    """Why `url` is not `http://host[:port]` (None when it is); never repeats the URL, which
    could hold credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return _PROXY_URL
    if parts.username or parts.password:
        return "the proxy URL may not hold credentials: use 'username' and 'password'."
    if parts.scheme.lower() != "http" or not parts.hostname or host_problem(parts.netloc):
        return _PROXY_URL
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return _PROXY_URL
    return None
