"""cache-lookup / cache-store and the value caches through a real gateway, a real backend and a real
Redis: the backend is called once per cache key, vary-by options split the key, a stopped Redis
never fails a request, and the Redis password never shows."""

from __future__ import annotations

import functools
import logging

import pytest

from certgate.gateway.config import build_gateway_config
from certgate.gateway.server import GatewayServer
from certgate.limits import Limits
from tests.gateway.conftest import hostnames, operation_pipeline
from tests.gateway.support import curl
from tests.redis_server import PASSWORD

RESPONSES = """<policies><inbound>
<cache-lookup vary-by-developer="{developer}" vary-by-developer-groups="false"
    caching-type="{caching}" downstream-caching-type="private" {extra}>
  <vary-by-query-parameter>a</vary-by-query-parameter>
  <vary-by-header>Accept</vary-by-header>
</cache-lookup>
</inbound><outbound>
<choose><when condition='@(context.Request.Url.Query.GetValueOrDefault("status", "") == "404")'>
  <set-status code="404" reason="Not Found" /></when></choose>
<cache-store duration="60" />
<set-header name="X-After-Store" exists-action="override"><value>ran</value></set-header>
</outbound></policies>"""

VALUES = """<policies><inbound>
<choose>
  <when condition='@(context.Request.Url.Query.GetValueOrDefault("op", "") == "store")'>
    <cache-store-value key='@("greeting-" + context.Request.Url.Query.GetValueOrDefault("k", ""))'
      value='@(context.Request.Url.Query.GetValueOrDefault("v", ""))' duration="60"
      caching-type="{caching}" />
  </when>
  <when condition='@(context.Request.Url.Query.GetValueOrDefault("op", "") == "remove")'>
    <cache-remove-value key='@("greeting-" + context.Request.Url.Query.GetValueOrDefault("k", ""))'
      caching-type="{caching}" />
  </when>
</choose>
<cache-lookup-value key='@("greeting-" + context.Request.Url.Query.GetValueOrDefault("k", ""))'
  variable-name="greeting" default-value="none" caching-type="{caching}" />
<return-response><set-status code="200" reason="OK" />
  <set-body>@((string)context.Variables["greeting"])</set-body></return-response>
</inbound></policies>"""


@pytest.fixture
def cached_gateway(policy_gateway):
    return functools.partial(policy_gateway, "cached")


def responses(caching: str, developer: str = "false", extra: str = "") -> str:
    return RESPONSES.format(caching=caching, developer=developer, extra=extra)


@pytest.mark.parametrize("caching", ["internal", "external", "prefer-external"])
async def test_second_get_is_served_from_the_cache(
    cached_gateway, backend, certs, tmp_path, redis_url, redis_server, caching
):
    port = await cached_gateway(responses(caching), redis_url=redis_url)
    first = await curl(port, "/cached/x?a=1", ca=certs.ca_file, tmp=tmp_path)
    second = await curl(port, "/cached/x?a=1", ca=certs.ca_file, tmp=tmp_path)
    assert (first.status, second.status) == (200, 200)
    assert backend.requests == 1
    assert second.body == first.body and second.headers["x-backend"] == "yes"
    # a hit resumes after cache-store: later outbound elements still run
    assert second.headers["x-after-store"] == "ran"
    assert first.headers["cache-control"] == "private, max-age=60, must-revalidate"
    stored_in_redis = any(key.startswith(b"certgate:r:") for key in redis_server.keys("*"))
    assert stored_in_redis is (caching != "internal")


async def test_vary_by_query_parameter_and_header_split_the_cache(
    cached_gateway, backend, certs, tmp_path
):
    port = await cached_gateway(responses("internal"))

    async def get(path: str, *args: str) -> dict:
        reply = await curl(port, path, *args, ca=certs.ca_file, tmp=tmp_path)
        assert reply.status == 200
        return reply.json()

    first = await get("/cached/x?a=1&b=1")
    assert (await get("/cached/x?a=1&b=2"))["target"] == first["target"]  # b does not vary
    assert backend.requests == 1
    assert (await get("/cached/x?a=2"))["target"].endswith("a=2")
    assert backend.requests == 2
    await get("/cached/x?a=1", "-H", "Accept: text/plain")
    assert backend.requests == 3
    await get("/cached/other?a=1")  # another path is another key
    assert backend.requests == 4
    await get("/cached/x?a=1&b=9")
    assert backend.requests == 4


async def test_vary_by_developer_keeps_callers_apart(cached_gateway, backend, certs, tmp_path):
    port = await cached_gateway(responses("internal", developer="true"))
    for identity in (certs.trusted, certs.trusted, None, None):
        reply = await curl(port, "/cached/x", ca=certs.ca_file, identity=identity, tmp=tmp_path)
        assert reply.status == 200
    assert backend.requests == 2  # one entry per caller: the certificate, and no certificate


async def test_only_cacheable_responses_are_stored(cached_gateway, backend, certs, tmp_path):
    port = await cached_gateway(responses("internal"), max_buffered_body_bytes=1024)
    calls = {
        "/cached/x?a=1&status=404": 2,  # only 200 responses are cached
        "/cached/download/4096?length": 2,  # larger than a policy may hold: streamed, not cached
    }
    for path, expected in calls.items():
        before = backend.requests
        for _ in range(2):
            reply = await curl(port, path, ca=certs.ca_file, tmp=tmp_path)
            assert reply.status in (200, 404)
        assert backend.requests - before == expected, path
    before = backend.requests
    for _ in range(2):  # a request with credentials is private unless allowed
        reply = await curl(
            port, "/cached/y", "-H", "Authorization: Bearer t", ca=certs.ca_file, tmp=tmp_path
        )
        assert reply.status == 200
    assert backend.requests - before == 2
    size = await curl(port, "/cached/download/4096?length", ca=certs.ca_file, tmp=tmp_path)
    assert len(size.body) == 4096


async def test_private_responses_cached_when_allowed(cached_gateway, backend, certs, tmp_path):
    port = await cached_gateway(
        responses("internal", extra='allow-private-response-caching="true"')
    )
    for _ in range(2):
        reply = await curl(
            port, "/cached/y", "-H", "Authorization: Bearer t", ca=certs.ca_file, tmp=tmp_path
        )
        assert reply.status == 200
    assert backend.requests == 1


@pytest.mark.parametrize("caching", ["internal", "external"])
async def test_values_are_stored_looked_up_and_removed(
    cached_gateway, certs, tmp_path, redis_url, caching
):
    port = await cached_gateway(VALUES.format(caching=caching), redis_url=redis_url)

    async def call(query: str) -> str:
        reply = await curl(port, f"/cached/v?{query}", ca=certs.ca_file, tmp=tmp_path)
        assert reply.status == 200, reply.body
        return reply.body.decode()

    assert await call("k=1") == "none"
    assert await call("op=store&k=1&v=hello") == "hello"
    assert await call("k=1") == "hello"
    assert await call("k=2") == "none"
    assert await call("op=remove&k=1") == "none"
    assert await call("k=1") == "none"


async def test_a_stopped_redis_turns_lookups_into_misses(
    cached_gateway, backend, certs, tmp_path, private_redis, caplog
):
    caplog.set_level(logging.DEBUG)
    port = await cached_gateway(responses("external"), redis_url=private_redis.url)

    async def get() -> None:
        reply = await curl(port, "/cached/x?a=1", ca=certs.ca_file, tmp=tmp_path)
        assert reply.status == 200
        assert PASSWORD not in reply.body.decode() and PASSWORD not in str(reply.headers)

    await get()
    await get()
    assert backend.requests == 1
    private_redis.stop()
    await get()  # a miss, and the store is skipped
    await get()
    assert backend.requests == 3
    assert "external cache (Redis) failed" in caplog.text
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(Limits(redis_url=private_redis.url))


async def test_prefer_external_falls_back_to_the_internal_cache(
    cached_gateway, backend, certs, tmp_path, private_redis
):
    port = await cached_gateway(responses("prefer-external"), redis_url=private_redis.url)
    private_redis.stop()
    for _ in range(3):
        reply = await curl(port, "/cached/x?a=1", ca=certs.ca_file, tmp=tmp_path)
        assert reply.status == 200
    assert backend.requests == 1


async def test_a_new_configuration_switches_the_external_cache(
    certs, tmp_path, redis_url, private_redis
):
    """The `caches` resource's Redis (GatewayConfig.cache_url) replaces --redis-url's with the
    revision that brings it, and its removal brings the flag's back."""
    pipeline = operation_pipeline(VALUES.format(caching="external"))

    def config(cache_url: str | None):
        return build_gateway_config(
            hostnames=hostnames(certs),
            apis={"cached": {"path": "cached", "serviceUrl": "http://127.0.0.1:9"}},
            operations={"cached": {"all": {"method": "*", "urlTemplate": "/*"}}},
            pipeline_for=lambda api_id, op_id: pipeline,
            cache_url=cache_url,
        )

    server = GatewayServer(config(None), limits=Limits(redis_url=redis_url))
    await server.start("127.0.0.1", 0, None)
    try:

        async def call(query: str) -> str:
            path = f"/cached/v?{query}"
            reply = await curl(server.https_port, path, ca=certs.ca_file, tmp=tmp_path)
            assert reply.status == 200, reply.body
            return reply.body.decode()

        assert await call("op=store&k=1&v=flag") == "flag"
        server.update(config(private_redis.url))
        assert await call("k=1") == "none"
        assert await call("op=store&k=1&v=resource") == "resource"
        server.update(config(None))
        assert await call("k=1") == "flag"
        server.update(config(private_redis.url))
        assert await call("k=1") == "resource"
    finally:
        await server.close()
