"""Throttling, per gateway process: rate-limit, rate-limit-by-key, limit-concurrency."""

from __future__ import annotations

import math
import time
from typing import Any

from certgate.httpsyntax import name_problem
from certgate.policy.elements.control import condition_true, string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register, run_policies
from certgate.policy.values import Const, as_int

_MAX_KEYS = 100_000


class _Windows:
    """Fixed-window call counters by key: key -> (window start, calls)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[Any, list[float]] = {}

    def current(self, key: Any, period: float, now: float) -> list[float]:
        entry = self.counts.get(key)
        if entry is None or now - entry[0] >= period:
            if entry is None and len(self.counts) >= _MAX_KEYS:
                self.counts = {k: v for k, v in self.counts.items() if now - v[0] < period}
            entry = [now, 0.0]
            self.counts[key] = entry
        return entry


_HEADER_ATTRS = (
    "retry-after-header-name",
    "retry-after-variable-name",
    "remaining-calls-header-name",
    "remaining-calls-variable-name",
    "total-calls-header-name",
)


class _RateLimitBase(Policy):
    __slots__ = ("calls", "names", "period", "windows")

    def _parse_common(self, node: Node, loader: Loader) -> None:
        self.calls = loader.attr(node, "calls", required=True)
        self.period = loader.attr(node, "renewal-period", required=True)
        for value, name in ((self.calls, "calls"), (self.period, "renewal-period")):
            if isinstance(value, Const):
                try:
                    if int(value.value) <= 0:
                        raise ValueError
                except ValueError:
                    raise node.error(f"Attribute '{name}' must be a positive integer.") from None
        self.names = {name: loader.literal(node, name) for name in _HEADER_ATTRS}
        for name in _HEADER_ATTRS:
            header = self.names[name] if name.endswith("-header-name") else None
            problem = name_problem(header) if header is not None else None
            if problem is not None:
                raise node.error(f"Attribute '{name}': {problem}")
        self.windows = _Windows()

    def _check(self, context: Any, key: Any) -> list[float]:
        calls = as_int(self.calls.evaluate(context))
        period = float(as_int(self.period.evaluate(context)))
        now = time.monotonic()
        entry = self.windows.current(key, period, now)
        retry_after = max(1, math.ceil(entry[0] + period - now))
        remaining = max(0, calls - int(entry[1]))
        variables = context.Variables
        if self.names["remaining-calls-variable-name"]:
            variables.set(self.names["remaining-calls-variable-name"], max(0, remaining - 1))
        if entry[1] >= calls:
            if self.names["retry-after-variable-name"]:
                variables.set(self.names["retry-after-variable-name"], retry_after)
            header = self.names["retry-after-header-name"] or "Retry-After"
            raise PolicyRuntimeError(
                "RateLimitExceeded",
                "Rate limit is exceeded",
                status=429,
                headers=((header, str(retry_after)),),
                public_message=f"Rate limit is exceeded. Try again in {retry_after} seconds.",
            )
        self._add_headers(context, remaining - 1, calls)
        return entry

    def _add_headers(self, context: Any, remaining: int, calls: int) -> None:
        remaining_header = self.names["remaining-calls-header-name"]
        total_header = self.names["total-calls-header-name"]
        if not (remaining_header or total_header):
            return

        def add(ctx: Any) -> None:
            if remaining_header:
                ctx.Response.Headers.set(remaining_header, [str(max(0, remaining))])
            if total_header:
                ctx.Response.Headers.set(total_header, [str(calls)])

        context.on_response = [*(context.on_response or ()), add]


@register("rate-limit")
class RateLimit(_RateLimitBase):
    """At most `calls` requests per `renewal-period` seconds through this policy."""

    __slots__ = ()
    attributes = frozenset({"calls", "renewal-period", *_HEADER_ATTRS})
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        self._parse_common(node, loader)
        for child in loader.children(node, {"api"}):
            raise child.error("Per-API limits inside 'rate-limit' are not supported by certgate.")
        return self

    async def execute(self, context: Any) -> bool | None:
        self._check(context, None)[1] += 1
        return None


@register("rate-limit-by-key")
class RateLimitByKey(_RateLimitBase):
    """At most `calls` requests per period for each value of `counter-key`."""

    __slots__ = ("condition", "increment", "key")
    attributes = frozenset(
        {"calls", "renewal-period", "counter-key", "increment-condition", "increment-count"}
        | set(_HEADER_ATTRS)
    )
    expressions = frozenset(
        {"calls", "renewal-period", "counter-key", "increment-condition", "increment-count"}
    )
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        self = cls()
        self._parse_common(node, loader)
        self.key = loader.attr(node, "counter-key", required=True)
        self.condition = loader.attr(node, "increment-condition")
        self.increment = loader.attr(node, "increment-count", "1")
        return self

    async def execute(self, context: Any) -> bool | None:
        entry = self._check(context, string_of(self.key, context))
        count = as_int(self.increment.evaluate(context))
        if self.condition is None:
            entry[1] += count
            return None
        condition = self.condition

        def count_if(ctx: Any) -> None:
            if condition_true(condition, ctx):
                entry[1] += count

        context.on_response = [*(context.on_response or ()), count_if]
        return None


@register("limit-concurrency")
class LimitConcurrency(Policy):
    """Run the children for at most `max-count` requests at once per key; others get 429."""

    __slots__ = ("active", "key", "max_count", "policies")
    attributes = frozenset({"key", "max-count"})
    expressions = frozenset({"key"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        self.key = loader.attr(node, "key", required=True)
        self.max_count = loader.const_int(node, "max-count")
        if self.max_count is None or self.max_count <= 0:
            raise node.error("Attribute 'max-count' must be a positive integer.")
        self.policies = tuple(loader.policies(node))
        self.active: dict[str, int] = {}
        return self

    async def execute(self, context: Any) -> bool | None:
        key = string_of(self.key, context)
        active = self.active
        if active.get(key, 0) >= self.max_count:
            raise PolicyRuntimeError(
                "ConcurrencyLimitExceeded",
                "Too many concurrent requests.",
                status=429,
                public_message="Too many requests",
            )
        active[key] = active.get(key, 0) + 1
        try:
            return await run_policies(self.policies, context)
        finally:
            if active[key] <= 1:
                del active[key]
            else:
                active[key] -= 1
