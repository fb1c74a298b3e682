"""Where cache entries and throttling counters live: in the process (internal) or in Redis.

APIM has an internal cache per gateway node and an optional external, Redis-compatible cache
shared by every node. certgate does the same: `LocalStore` keeps entries and counters in the
process, bounded by `Limits.cache_max_entries`/`cache_max_bytes`/`counter_max_keys` (least recently
used dropped first, entries expire by TTL); `RedisStore` talks to the Redis of `--redis-url`, with
bounded connect and command timeouts. A Redis that fails is not tried again for
`--redis-retry-interval` seconds, so a dead Redis costs a request nothing: callers get
`StoreUnavailable` at once and fall back as APIM does (a cache lookup misses, a store is skipped,
counters count in the process).

Every gateway process has one `Stores` (`configure(limits)` from `GatewayServer`, `current()` for
the policy elements). Keys are namespaced: `certgate:v:` values, `certgate:r:` responses,
`certgate:n:` counters.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

from certgate.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger("certgate.cache")

NO_LIMIT = 2**62


class StoreUnavailable(Exception):
    """The external store failed or is resting after a failure; the caller falls back."""


class LocalStore:
    """A per-process LRU of bytes values with TTLs, and fixed-window counters (each its start
    and count)."""

    __slots__ = ("_bytes", "_counters", "_entries", "max_bytes", "max_entries", "max_keys")

    def __init__(self, max_entries: int, max_bytes: int, max_keys: int) -> None:
        self.max_entries, self.max_bytes, self.max_keys = max_entries, max_bytes, max_keys
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._counters: OrderedDict[str, list[float]] = OrderedDict()
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = (value, time.monotonic() + ttl)
        self._bytes += len(value)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def delete(self, key: str) -> None:
        self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[0])

    async def hit(
        self, key: str, increment: int, period: float, limit: int
    ) -> tuple[int, float, bool]:
        """Add `increment` to the key's window unless it already holds `limit` calls.
        Returns (calls in the window now, seconds the window has left, whether it was below
        the limit)."""
        now = time.monotonic()
        window = self._counters.get(key)
        if window is None or now - window[0] >= period:
            if window is None and len(self._counters) >= self.max_keys:
                self._counters.popitem(last=False)
            window = [now, 0]
            self._counters[key] = window
        else:
            self._counters.move_to_end(key)
        allowed = window[1] < limit
        if allowed:
            window[1] += increment
        # from the window's start, not its end: (now + period) - now can exceed `period` by a
        # rounding step, which a Retry-After rounded up turned into a second too many
        return int(window[1]), period - (now - window[0]), allowed


# Check and count in one step, so that workers and nodes sharing the Redis cross a limit exactly.
_HIT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local allowed = 0
if n < tonumber(ARGV[3]) then
  allowed = 1
  if tonumber(ARGV[1]) > 0 then
    n = redis.call('INCRBY', KEYS[1], ARGV[1])
  end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 and n > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if ttl < 0 then
  ttl = tonumber(ARGV[2])
end
return {n, ttl, allowed}
"""


class RedisStore:
    """The external store: one Redis, reached with bounded timeouts, rested after a failure."""

    __slots__ = ("_client", "_hit", "_retry_at", "retry_interval")

    def __init__(self, url: str, limits: Limits) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._client = Redis.from_url(
            url,
            socket_connect_timeout=limits.redis_connect_timeout,
            socket_timeout=limits.redis_command_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._hit = self._client.register_script(_HIT)
        self.retry_interval = limits.redis_retry_interval
        self._retry_at = 0.0

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        if self._retry_at and time.monotonic() < self._retry_at:
            raise StoreUnavailable("the external cache is resting after a failure")
        try:
            result = await method(*args, **kwargs)
        except (OSError, TimeoutError, _redis_errors()) as exc:
            # the exception text can name the host; never the URL's password
            log.warning(
                "external cache (Redis) failed: %s; not tried for %g s",
                type(exc).__name__,
                self.retry_interval,
            )
            self._retry_at = time.monotonic() + self.retry_interval
            raise StoreUnavailable(type(exc).__name__) from None
        self._retry_at = 0.0
        return result

    async def get(self, key: str) -> bytes | None:
        return await self._call(self._client.get, key)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._call(self._client.set, key, value, px=max(1, math.ceil(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete, key)

    async def hit(
        self, key: str, increment: int, period: float, limit: int
    ) -> tuple[int, float, bool]:
        period_ms = max(1, math.ceil(period * 1000))
        reply = await self._call(self._hit, keys=[key], args=[increment, period_ms, limit])
        count, ttl, allowed = reply
        return int(count), int(ttl) / 1000, bool(allowed)

    async def close(self) -> None:
        await self._client.aclose()


def _redis_errors() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


def connection_url(text: str) -> str:
    """A Redis URL from an APIM cache `connectionString`: a `redis://`/`rediss://` URL as is, or
    StackExchange.Redis's `host[:port],password=...,ssl=True,user=...,defaultDatabase=N` (what
    Azure Cache for Redis shows). Raises ValueError naming the problem, never the text."""
    text = text.strip()
    if "://" in text:
        problem = url_problem(text)
        if problem is not None:
            raise ValueError(problem)
        return text
    endpoint, options = None, {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            if endpoint is not None:
                raise ValueError("more than one host:port (certgate uses one Redis endpoint)")
            endpoint = part
            continue
        options[name.strip().lower()] = value.strip()
    if not endpoint:
        raise ValueError("no host:port")
    host, _, port = endpoint.rpartition(":") if ":" in endpoint else (endpoint, "", "6379")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("the port must be a number from 1 to 65535")
    database = options.get("defaultdatabase", "0")
    if not database.isdigit():
        raise ValueError("defaultDatabase must be a number")
    scheme = "rediss" if options.get("ssl", "false").lower() == "true" else "redis"
    user, password = quote(options.get("user", ""), safe=""), options.get("password")
    credentials = f"{user}:{quote(password, safe='')}@" if password is not None else ""
    return f"{scheme}://{credentials}{host}:{port}/{database}"


def url_problem(url: str) -> str | None:
    """Why `--redis-url` cannot be used (never quoting it: it may hold a password), or None."""
    from redis.asyncio.connection import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        return str(exc).split(" as '")[0]  # redis-py quotes the bad part of the URL after "as"
    return None


class Stores:
    """The internal store and, with `--redis-url`, the external one, of one gateway process."""

    __slots__ = ("_closing", "external", "internal", "limits", "url")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.internal = LocalStore(
            limits.cache_max_entries, limits.cache_max_bytes, limits.counter_max_keys
        )
        self.external: RedisStore | None = None
        self.url = ""
        self._closing: set[asyncio.Task] = set()
        self.use(None)

    def use(self, url: str | None) -> None:
        """Use the Redis at `url` (the management `caches` resource), else `--redis-url`'s.
        Requests already talking to the previous Redis may fail over to the fallbacks."""
        url = url or self.limits.redis_url
        if url == self.url:
            return
        previous, self.url = self.external, url
        self.external = RedisStore(url, self.limits) if url else None
        if previous is not None:
            task = asyncio.get_running_loop().create_task(previous.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def for_caching(self, caching_type: str) -> tuple[LocalStore | RedisStore, ...]:
        """The stores to try in order for a `caching-type`: `external` without a configured
        external cache has none (every lookup misses), `prefer-external` falls back to internal."""
        if caching_type == "internal":
            return (self.internal,)
        if caching_type == "external":
            return (self.external,) if self.external is not None else ()
        return (self.internal,) if self.external is None else (self.external, self.internal)

    async def count(
        self, key: str, increment: int, period: float, limit: int
    ) -> tuple[int, float, bool]:
        """A throttling counter: shared through Redis when configured; while Redis fails,
        counted in this process (APIM counts locally when its shared counters are unreachable)."""
        key = "certgate:n:" + key
        if self.external is not None:
            try:
                return await self.external.hit(key, increment, period, limit)
            except StoreUnavailable:
                pass
        return await self.internal.hit(key, increment, period, limit)

    async def close(self) -> None:
        if self.external is not None:
            await self.external.close()


_current: Stores | None = None


def configure(limits: Limits) -> Stores:
    """Give this process fresh stores for `limits` (a new gateway server)."""
    global _current
    _current = Stores(limits)
    return _current


async def release(stores: Stores) -> None:
    """Close a gateway server's stores; the process forgets them if they are still current."""
    global _current
    if _current is stores:
        _current = None
    await stores.close()


def current() -> Stores:
    if _current is None:
        return configure(DEFAULT_LIMITS)
    return _current
