"""Throttling: rate-limit, rate-limit-by-key, quota, quota-by-key, limit-concurrency.

Call counters are fixed windows of `renewal-period` seconds that start with the first counted call.
They live in the process's stores (`certgate.policy.stores`): shared by every worker and node
through the Redis of `--redis-url` (one atomic check-and-count per call, so the limit is crossed
exactly), else per gateway process. While Redis fails, counting continues in the process, as APIM
falls back to local counting. Counters outlive a configuration change.

Counter identity: `rate-limit` and `quota` count per API and policy position; the `-by-key`
elements count per `counter-key` value (and period), across every scope that uses the key, as APIM
documents ("a single counter is used for all scopes").
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from certgate.httpsyntax import name_problem
from certgate.policy.context import Api, BodyStream, Context, Operation
from certgate.policy.elements.control import condition_true, string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register, run_policies
from certgate.policy.stores import NO_LIMIT, current
from certgate.policy.values import Const, Value, as_int

_HEADER_ATTRS = (
    "retry-after-header-name",
    "retry-after-variable-name",
    "remaining-calls-header-name",
    "remaining-calls-variable-name",
    "total-calls-header-name",
)
_KEY_ATTRS = ("counter-key", "increment-condition", "increment-count")
MAX_RATE_PERIOD = 300  # seconds: APIM's maximum renewal-period of rate-limit and rate-limit-by-key


def _positive(node: Node, value: Value, name: str) -> None:
    if isinstance(value, Const):
        try:
            if int(value.value) <= 0:
                raise ValueError
        except ValueError:
            raise node.error(f"Attribute '{name}' must be a positive integer.") from None


def _no_scoped_children(node: Node, loader: Loader) -> None:
    for child in loader.children(node, {"api", "operation"}):
        raise child.error(f"Per-API limits inside '{node.tag}' are not supported by certgate.")


Counter = tuple[Value | None, Value, Value | None, Value | None, Value]  # the fields of `_Counted`


@dataclass(slots=True)
class _Counted(Policy):
    """A call counter checked on the request: `calls` per `renewal-period` seconds."""

    calls: Value | None  # None: a bandwidth-only quota
    period: Value
    key: Value | None  # the -by-key elements' counter-key
    condition: Value | None
    increment: Value
    kind = ""

    @staticmethod
    def parse_counter(node: Node, loader: Loader, *, by_key: bool, calls: bool = True) -> Counter:
        limit = loader.attr(node, "calls", required=True) if calls else None
        period = loader.attr(node, "renewal-period", required=True)
        if limit is not None:
            _positive(node, limit, "calls")
        _positive(node, period, "renewal-period")
        key = loader.attr(node, "counter-key", required=True) if by_key else None
        condition = loader.attr(node, "increment-condition") if by_key else None
        increment = loader.attr(node, "increment-count", "1") if by_key else Const("1")
        _positive(node, increment, "increment-count")
        return limit, period, key, condition, increment

    def _counter(self, context: Context, kind: str, period: int) -> str:
        if self.key is not None:
            return f"{kind}:{period}:{string_of(self.key, context)}"
        api = context.Api.Id if context.Api is not None else ""
        return f"{kind}:{period}:{api}|{self.scope}|{self.path}"

    async def _count(
        self, context: Context, limit: Value | None = None, part: str = ""
    ) -> tuple[int, int, float, bool]:
        """Count this call against `limit` (default `calls`; `part` names a per-API/operation
        counter); with an increment-condition or an increment-count expression only check now
        and count after the response (when the condition holds). Returns (calls, calls counted
        so far including this one, seconds the period has left, allowed)."""
        limit = self.calls if limit is None else limit
        assert limit is not None  # (rate limits always have calls; quotas pass theirs)
        calls = as_int(limit.evaluate(context))
        period = as_int(self.period.evaluate(context))
        counter = self._counter(context, self.kind, period) + part
        stores = current()
        if self.condition is None and isinstance(self.increment, Const):
            increment = as_int(self.increment.value)
            used, left, allowed = await stores.count(counter, increment, period, calls)
            return calls, used, left, allowed
        # APIM: an expression in increment-condition or increment-count defers its evaluation
        # and the count to the end of the outbound pipeline
        used, left, allowed = await stores.count(counter, 0, period, calls)
        condition, count = self.condition, self.increment
        if allowed:

            async def count_if(ctx: Context) -> None:
                if condition is None or condition_true(condition, ctx):
                    await stores.count(counter, as_int(count.evaluate(ctx)), period, NO_LIMIT)

            context.on_response = [*(context.on_response or ()), count_if]
        pending = as_int(count.value) if isinstance(count, Const) else 1  # an estimate
        return calls, used + pending, left, allowed


@dataclass(slots=True)
class _RateLimitBase(_Counted):
    names: dict[str, str | None]  # the header and variable names of `_HEADER_ATTRS`
    kind = "rate"

    @classmethod
    def parse_rate(cls, node: Node, loader: Loader, *, by_key: bool) -> Policy:
        counter = cls.parse_counter(node, loader, by_key=by_key)
        period = counter[1]
        if isinstance(period, Const) and int(period.value) > MAX_RATE_PERIOD:
            raise node.error(
                f"Attribute 'renewal-period' must be at most {MAX_RATE_PERIOD} seconds."
            )
        names = {name: loader.literal(node, name) for name in _HEADER_ATTRS}
        for name in _HEADER_ATTRS:
            header = names[name] if name.endswith("-header-name") else None
            problem = name_problem(header) if header is not None else None
            if problem is not None:
                raise node.error(f"Attribute '{name}': {problem}")
        return cls(*counter, names)

    async def execute(self, context: Context) -> bool | int | None:
        calls, used, left, allowed = await self._count(context)
        retry_after = max(1, math.ceil(left))
        variables = context.Variables
        remaining_variable = self.names["remaining-calls-variable-name"]
        if remaining_variable:
            variables.set(remaining_variable, max(0, calls - used))
        if not allowed:
            retry_variable = self.names["retry-after-variable-name"]
            if retry_variable:
                variables.set(retry_variable, retry_after)
            header = self.names["retry-after-header-name"] or "Retry-After"
            raise PolicyRuntimeError(
                "RateLimitExceeded",
                "Rate limit is exceeded",
                status=429,
                headers=((header, str(retry_after)),),
                public_message=f"Rate limit is exceeded. Try again in {retry_after} seconds.",
            )
        self._add_headers(context, calls - used, calls)
        return None

    def _add_headers(self, context: Context, remaining: int, calls: int) -> None:
        remaining_header = self.names["remaining-calls-header-name"]
        total_header = self.names["total-calls-header-name"]
        if not (remaining_header or total_header):
            return

        def add(ctx: Context) -> None:
            if remaining_header:
                ctx.Response.Headers.set(remaining_header, [str(max(0, remaining))])
            if total_header:
                ctx.Response.Headers.set(total_header, [str(calls)])

        context.on_response = [*(context.on_response or ()), add]


@register("rate-limit")
@dataclass(slots=True)
class RateLimit(_RateLimitBase):
    """At most `calls` requests per `renewal-period` seconds through this policy (per API)."""

    attributes = frozenset({"calls", "renewal-period", *_HEADER_ATTRS})
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        policy = cls.parse_rate(node, loader, by_key=False)
        _no_scoped_children(node, loader)
        return policy


@register("rate-limit-by-key")
@dataclass(slots=True)
class RateLimitByKey(_RateLimitBase):
    """At most `calls` requests per period for each value of `counter-key`."""

    attributes = frozenset({"calls", "renewal-period", *_KEY_ATTRS, *_HEADER_ATTRS})
    expressions = frozenset({"calls", "renewal-period", *_KEY_ATTRS})
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls.parse_rate(node, loader, by_key=True)


@dataclass(slots=True)
class _QuotaBase(_Counted):
    """A call volume quota (`calls`), a bandwidth quota (`bandwidth` kilobytes of request and
    response bodies), or both, per `renewal-period`; 403 with `Retry-After` beyond either."""

    bandwidth: int | None  # kilobytes
    scoped: tuple[_Scoped, ...]
    kind = "quota"

    @classmethod
    def parse_quota(
        cls, node: Node, loader: Loader, *, by_key: bool, scoped: tuple[_Scoped, ...] = ()
    ) -> Policy:
        calls, bandwidth = _amounts(node, loader)
        counter = cls.parse_counter(node, loader, by_key=by_key, calls=calls is not None)
        return cls(*counter, bandwidth, scoped)

    async def execute(self, context: Context) -> bool | int | None:
        await self._enforce(context, self.calls, self.bandwidth, "")
        for scoped in self.scoped:
            if scoped.applies(context):
                await self._enforce(context, scoped.calls, scoped.bandwidth, scoped.part)
        return None

    async def _enforce(
        self, context: Context, calls: Value | None, bandwidth: int | None, part: str
    ) -> None:
        if bandwidth is not None:
            await self._check_bandwidth(context, bandwidth, part)
        if calls is not None:
            _, _, left, allowed = await self._count(context, calls, part)
            if not allowed:
                raise _quota_exceeded("Out of call volume quota", left)

    async def _check_bandwidth(self, context: Context, kilobytes: int, part: str) -> None:
        """Refuse once the period's bytes reach the quota; else count this call's request and
        response body bytes once the response is sent (with an increment-condition, only when
        it holds)."""
        period = as_int(self.period.evaluate(context))
        counter = self._counter(context, "quota-bytes", period) + part
        stores = current()
        _, left, allowed = await stores.count(counter, 0, period, kilobytes * 1024)
        if not allowed:
            raise _quota_exceeded("Out of bandwidth quota", left)
        request = context.Request.send_body()
        condition = self.condition

        async def count(size: int) -> None:
            if size:
                await stores.count(counter, size, period, NO_LIMIT)

        async def meter(ctx: Context) -> None:
            if condition is not None and not condition_true(condition, ctx):
                return
            # bytes once a policy buffered it; else the gateway's stream, which counts arrivals
            await count(
                len(request) if isinstance(request, (bytes, bytearray)) else request.received
            )
            sent = ctx.Response.send_body()
            if isinstance(sent, (bytes, bytearray)):
                await count(len(sent))
            else:
                ctx.Response.replace_stream(_Metered(sent, count))

        context.on_response = [*(context.on_response or ()), meter]


def _amounts(node: Node, loader: Loader) -> tuple[str | None, int | None]:
    """`calls` (as written) and `bandwidth` of a quota or of its api/operation child."""
    bandwidth = loader.const_int(node, "bandwidth")
    if bandwidth is not None and bandwidth <= 0:
        raise node.error("Attribute 'bandwidth' must be a positive integer.")
    calls = node.attrib.get("calls")
    if calls is None and bandwidth is None:
        raise node.error("Either 'calls' or 'bandwidth' (or both) is required.")
    return calls, bandwidth


class _Scoped:
    """An `api` or `operation` child of `quota`: a quota of its own for one API (or one of its
    operations), counted apart from the policy's and its siblings'."""

    __slots__ = ("api", "bandwidth", "calls", "operation", "part")

    def __init__(
        self,
        api: tuple[str, str],
        operation: tuple[str, str] | None,
        node: Node,
        loader: Loader,
        part: str,
    ) -> None:
        for name in node.attrib:
            if name not in ("name", "id", "calls", "bandwidth"):
                raise node.error(f"Attribute '{name}' is not allowed in '{node.tag}'.")
        calls, self.bandwidth = _amounts(node, loader)
        self.calls = None if calls is None else Const(str(loader.const_int(node, "calls")))
        if self.calls is not None:
            _positive(node, self.calls, "calls")
        self.api, self.operation, self.part = api, operation, part

    def applies(self, context: Context) -> bool:
        return _is(context.Api, self.api) and (
            self.operation is None or _is(context.Operation, self.operation)
        )


def _target(node: Node, loader: Loader) -> tuple[str, str]:
    """(attribute, value) naming an API or operation: `id` when given (APIM ignores `name`
    then), else `name`."""
    for attribute in ("id", "name"):
        value = loader.literal(node, attribute)
        if value is not None:
            return attribute, value
    raise node.error(f"Element '{node.tag}' needs 'name' or 'id'.")


def _is(entity: Api | Operation | None, target: tuple[str, str]) -> bool:
    if entity is None:
        return False
    attribute, value = target
    return (entity.Id if attribute == "id" else entity.Name) == value


def _scoped_quotas(node: Node, loader: Loader) -> tuple[_Scoped, ...]:
    scoped = []
    for i, api in enumerate(loader.children(node, {"api"}), 1):
        target = _target(api, loader)
        scoped.append(_Scoped(target, None, api, loader, f"/api[{i}]"))
        for j, operation in enumerate(loader.children(api, {"operation"}), 1):
            loader.no_children(operation)
            part = f"/api[{i}]/operation[{j}]"
            scoped.append(_Scoped(target, _target(operation, loader), operation, loader, part))
    return tuple(scoped)


class _Metered:
    """A body stream that reports how many bytes went through once it has been read to the end."""

    __slots__ = ("_done", "_stream")

    def __init__(self, stream: BodyStream, done: Callable[[int], Awaitable[None]]) -> None:
        self._stream, self._done = stream, done

    @property
    def received(self) -> int:
        return self._stream.received

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._stream:
            size += len(chunk)
            yield chunk
        await self._done(size)

    async def read_all(self) -> bytes:
        data = await self._stream.read_all()
        await self._done(len(data))
        return data

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


def _quota_exceeded(message: str, left: float) -> PolicyRuntimeError:
    seconds = max(1, math.ceil(left))
    hours, rest = divmod(seconds, 3600)
    wait = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return PolicyRuntimeError(
        "QuotaExceeded",
        message,
        status=403,
        headers=(("Retry-After", str(seconds)),),
        public_message=f"{message}. Quota will be replenished in {wait}.",
    )


@register("quota")
@dataclass(slots=True)
class Quota(_QuotaBase):
    """At most `calls` requests (and/or `bandwidth` kilobytes) per `renewal-period` seconds
    through this policy (per API), and as much again for each `api`/`operation` child that
    names the API or operation called; 403 beyond any of them."""

    attributes = frozenset({"calls", "bandwidth", "renewal-period"})
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        return cls.parse_quota(node, loader, by_key=False, scoped=_scoped_quotas(node, loader))


@register("quota-by-key")
@dataclass(slots=True)
class QuotaByKey(_QuotaBase):
    """At most `calls` requests per period for each value of `counter-key`; 403 beyond.
    `first-period-start` is accepted; periods start with the first counted call."""

    attributes = frozenset(
        {"calls", "bandwidth", "renewal-period", "first-period-start", *_KEY_ATTRS}
    )
    expressions = frozenset({"calls", "renewal-period", *_KEY_ATTRS})
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls.parse_quota(node, loader, by_key=True)


@register("limit-concurrency")
@dataclass(slots=True)
class LimitConcurrency(Policy):
    """Run the children for at most `max-count` requests at once per key; others get 429."""

    key: Value
    max_count: int
    policies: tuple[Policy, ...]
    active: dict[str, int] = field(default_factory=dict)  # requests running, per key
    attributes = frozenset({"key", "max-count"})
    expressions = frozenset({"key"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        key = loader.attr(node, "key", required=True)
        max_count = loader.const_int(node, "max-count")
        if max_count is None or max_count <= 0:
            raise node.error("Attribute 'max-count' must be a positive integer.")
        return cls(key, max_count, tuple(loader.policies(node)))

    async def execute(self, context: Context) -> bool | int | None:
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
