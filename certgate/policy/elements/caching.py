"""Caching: cache-lookup, cache-store (responses), cache-lookup-value, -store-value, -remove-value.

The stores are the process's (`certgate.policy.stores`): `caching-type` `internal`, `external`
(the Redis of `--redis-url`) or `prefer-external` (APIM's default: external when configured, else
internal). A failing Redis never fails a request: a lookup misses and a store is skipped, as in
APIM; `prefer-external` then uses the internal cache.

Response cache key (APIM's documented parts): API, operation, the request path, the query
parameters named by `vary-by-query-parameter` (all of them when none is named), the headers named
by `vary-by-header`, and with `vary-by-developer` / `vary-by-developer-groups` the caller. certgate
has no developer accounts: the caller is its client certificate (thumbprint), and a developer's
groups are the caller alone, so neither option can share an entry between two callers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from certgate.headerkinds import NOT_CACHED
from certgate.policy.buffering import buffer_response_body
from certgate.policy.context import Context, Headers, Response, declared_over
from certgate.policy.elements.control import condition_true, string_of
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import RESUME, Policy, register
from certgate.policy.stores import LocalStore, RedisStore, StoreUnavailable, current
from certgate.policy.values import Const, Value, as_int, as_string

log = logging.getLogger("certgate.cache")

_CACHING_TYPES = ("internal", "external", "prefer-external")
_DOWNSTREAM = ("none", "private", "public")


def _caching_type(node: Node, loader: Loader) -> str:
    value = loader.literal(node, "caching-type", "prefer-external")
    if value not in _CACHING_TYPES:
        raise node.error(
            f"Attribute 'caching-type' must be one of {', '.join(_CACHING_TYPES)}, not '{value}'."
        )
    return value


def _duration(node: Node, loader: Loader, default: str | None = None) -> Value:
    """`duration`: required without a `default`; a constant must be a positive number."""
    if default is None:
        value = loader.attr(node, "duration", required=True)
    else:
        value = loader.attr(node, "duration", default)
    if isinstance(value, Const):
        try:
            if int(value.value) <= 0:
                raise ValueError
        except ValueError:
            raise node.error("Attribute 'duration' must be a positive number of seconds.") from None
    return value


async def _get(stores: tuple[LocalStore | RedisStore, ...], key: str) -> bytes | None:
    for store in stores:
        try:
            return await store.get(key)
        except StoreUnavailable:
            continue
    return None


async def _put(
    stores: tuple[LocalStore | RedisStore, ...], key: str, value: bytes, ttl: float
) -> None:
    for store in stores:
        try:
            await store.set(key, value, ttl)
            return
        except StoreUnavailable:
            continue


# -- values ------------------------------------------------------------------------------------
def _encode(value: object) -> bytes:
    """A value as stored: its C# kind and JSON, so every node reads back the same type."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return json.dumps(["json", value]).encode()
    if isinstance(value, (bytes, bytearray)):
        return json.dumps(["bytes", bytes(value).hex()]).encode()
    return json.dumps(["string", as_string(value)]).encode()


def _decode(data: bytes) -> object:
    kind, value = json.loads(data)
    return bytes.fromhex(value) if kind == "bytes" else value


@register("cache-lookup-value")
@dataclass(slots=True)
class CacheLookupValue(Policy):
    """Read a value stored by cache-store-value into a variable (`default-value` on a miss)."""

    key: Value
    variable: str
    default: Value | None
    caching_type: str
    attributes = frozenset({"key", "variable-name", "default-value", "caching-type"})
    expressions = frozenset({"key", "default-value"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls(
            loader.attr(node, "key", required=True),
            loader.literal(node, "variable-name", required=True),
            loader.attr(node, "default-value"),
            _caching_type(node, loader),
        )

    async def execute(self, context: Context) -> bool | int | None:
        key = "certgate:v:" + string_of(self.key, context)
        data = await _get(current().for_caching(self.caching_type), key)
        if data is not None:
            context.Variables.set(self.variable, _decode(data))
        elif self.default is not None:
            context.Variables.set(self.variable, self.default.evaluate(context))
        return None


@register("cache-store-value")
@dataclass(slots=True)
class CacheStoreValue(Policy):
    """Store a value under a key for `duration` seconds."""

    key: Value
    value: Value
    duration: Value
    caching_type: str
    attributes = frozenset({"key", "value", "duration", "caching-type"})
    expressions = frozenset({"key", "value", "duration"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls(
            loader.attr(node, "key", required=True),
            loader.attr(node, "value", required=True),
            _duration(node, loader),
            _caching_type(node, loader),
        )

    async def execute(self, context: Context) -> bool | int | None:
        key = "certgate:v:" + string_of(self.key, context)
        duration = as_int(self.duration.evaluate(context))
        if duration > 0:
            data = _encode(self.value.evaluate(context))
            await _put(current().for_caching(self.caching_type), key, data, duration)
        return None


@register("cache-remove-value")
@dataclass(slots=True)
class CacheRemoveValue(Policy):
    """Remove a stored value (from every store the caching type may have used)."""

    key: Value
    caching_type: str
    attributes = frozenset({"key", "caching-type"})
    expressions = frozenset({"key"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls(loader.attr(node, "key", required=True), _caching_type(node, loader))

    async def execute(self, context: Context) -> bool | int | None:
        key = "certgate:v:" + string_of(self.key, context)
        for store in current().for_caching(self.caching_type):
            try:
                await store.delete(key)
            except StoreUnavailable:
                continue
        return None


# -- responses ---------------------------------------------------------------------------------
@dataclass(slots=True)
class LookedUp:
    """What cache-lookup decided (`context.cache`), for cache-store and Cache-Control."""

    key: str
    policy: CacheLookup


@register("cache-lookup")
@dataclass(slots=True)
class CacheLookup(Policy):
    """Answer a GET from the cache when a stored response matches the request's cache key."""

    by_developer: bool
    by_groups: bool
    caching_type: str
    downstream: str
    must_revalidate: bool
    allow_private: bool
    headers: tuple[str, ...]
    parameters: tuple[str, ...] | None  # None: the whole query
    attributes = frozenset(
        {
            "vary-by-developer",
            "vary-by-developer-groups",
            "caching-type",
            "downstream-caching-type",
            "must-revalidate",
            "allow-private-response-caching",
        }
    )
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        for name in ("vary-by-developer", "vary-by-developer-groups"):
            if name not in node.attrib:
                raise node.error(f"Required attribute '{name}' is missing.")
        by_developer = loader.const_bool(node, "vary-by-developer", False)
        by_groups = loader.const_bool(node, "vary-by-developer-groups", False)
        caching_type = _caching_type(node, loader)
        downstream = loader.literal(node, "downstream-caching-type", "none")
        if downstream not in _DOWNSTREAM:
            raise node.error(
                "Attribute 'downstream-caching-type' must be one of none, private, public, "
                f"not '{downstream}'."
            )
        must_revalidate = loader.const_bool(node, "must-revalidate", True)
        allow_private = loader.const_bool(node, "allow-private-response-caching", False)
        headers: list[str] = []
        parameters: list[str] = []
        for child in loader.children(node, {"vary-by-header", "vary-by-query-parameter"}):
            if child.attrib or child.children:
                raise child.error(f"Element '{child.tag}' takes only text.")
            names = [n.strip() for n in child.text.split(";") if n.strip()]
            if not names or child.text_is_expr:
                raise child.error(f"Element '{child.tag}' must name a header or parameter.")
            (headers if child.tag == "vary-by-header" else parameters).extend(names)
        return cls(
            by_developer,
            by_groups,
            caching_type,
            downstream,
            must_revalidate,
            allow_private,
            tuple(sorted({h.lower() for h in headers})),
            tuple(sorted(set(parameters))) or None,
        )

    def cache_key(self, context: Context) -> str:
        request = context.Request
        url = request.Url
        if self.parameters is None:
            query = url.QueryString
        else:
            params = url.Query
            query = "&".join(f"{p}={params.GetValueOrDefault(p, '')}" for p in self.parameters)
        parts = [
            context.Api.Id if context.Api is not None else "",
            context.Operation.Id if context.Operation is not None else "",
            url.Path,
            query,
        ]
        for header in self.headers:
            parts.append(f"{header}={','.join(request.Headers.get_all(header))}")
        if self.by_developer or self.by_groups:
            certificate = request.Certificate
            parts.append(certificate.Thumbprint if certificate is not None else "anonymous")
        return "certgate:r:" + json.dumps(parts)

    async def execute(self, context: Context) -> bool | int | None:
        request = context.Request
        if request.Method != "GET":
            return None
        if not self.allow_private and request.Headers.ContainsKey("Authorization"):
            return None
        key = self.cache_key(context)
        context.cache = LookedUp(key, self)
        data = await _get(current().for_caching(self.caching_type), key)
        if data is None:
            return None
        context.Response = _response_from(data)
        self.downstream_headers(context.Response, None)
        return RESUME

    def downstream_headers(self, response: Response, duration: int | None) -> None:
        if self.downstream == "none":
            return
        value = self.downstream
        if duration is not None:
            value += f", max-age={duration}"
        if self.must_revalidate:
            value += ", must-revalidate"
        response.Headers.set("Cache-Control", [value])


def _response_to(response: Response, body: bytes) -> bytes:
    head = [
        response.StatusCode,
        response.StatusReason,
        [(n, v) for n, v in response.Headers.items() if n.lower() not in NOT_CACHED],
    ]
    return json.dumps(head).encode() + b"\n" + body


def _response_from(data: bytes) -> Response:
    head, _, body = data.partition(b"\n")
    status, reason, headers = json.loads(head)
    return Response(status, reason, Headers([tuple(pair) for pair in headers]), body)


@register("cache-store")
@dataclass(slots=True)
class CacheStore(Policy):
    """Store the response under cache-lookup's key for `duration` seconds (200s only, unless
    `cache-response` says otherwise). Its position is where a cache hit resumes."""

    duration: Value
    cache_response: Value | None
    attributes = frozenset({"duration", "cache-response"})
    expressions = frozenset({"duration", "cache-response"})
    sections = frozenset({"outbound"})
    resume_point = True

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls(_duration(node, loader, "3600"), loader.attr(node, "cache-response"))

    async def execute(self, context: Context) -> bool | int | None:
        lookup = context.cache
        if lookup is None:
            return None  # no cache-lookup ran (or it declined this request)
        response = context.Response
        if self.cache_response is not None:
            if not condition_true(self.cache_response, context):
                return None
        elif response.StatusCode != 200:
            return None
        if not self._cacheable(response, lookup.policy):
            return None
        limit = context.forwarder.limits.max_buffered_body_bytes
        if declared_over(response.Headers.GetValueOrDefault("Content-Length"), limit):
            return None  # too large to hold: sent on, streamed, not cached
        duration = as_int(self.duration.evaluate(context))
        if duration <= 0:
            return None
        await buffer_response_body(context)
        body = response.Body.stream()
        data = _response_to(response, body if isinstance(body, bytes) else b"")
        await _put(current().for_caching(lookup.policy.caching_type), lookup.key, data, duration)
        lookup.policy.downstream_headers(response, duration)
        return None

    @staticmethod
    def _cacheable(response: Response, lookup: CacheLookup) -> bool:
        """A response that is one caller's own (Set-Cookie, Cache-Control private/no-store) is
        never shared through the cache, unless allow-private-response-caching says so."""
        if response.Headers.ContainsKey("Set-Cookie"):
            return False
        control = response.Headers.GetValueOrDefault("Cache-Control", "").lower()
        if "no-store" in control:
            return False
        return lookup.allow_private or "private" not in control
