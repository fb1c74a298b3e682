"""rate-limit-by-key, quota-by-key and the cache limits through a real gateway and a real Redis:
limits crossed exactly, APIM's 429/403 shapes, counting after the response, local counting while
Redis is down, and the bounds of the internal cache and of a Redis that does not answer."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time

import pytest

from tests.gateway.support import curl
from tests.gateway.test_caching import responses

RATE = """<policies><inbound>
<rate-limit-by-key calls="3" renewal-period="60"
  counter-key='@(context.Request.Url.Query.GetValueOrDefault("k", ""))'
  remaining-calls-header-name="X-Remaining" total-calls-header-name="X-Total" {extra} />
</inbound><outbound>
<choose><when condition='@(context.Request.Url.Query.GetValueOrDefault("status", "") == "404")'>
  <set-status code="404" reason="Not Found" /></when></choose>
</outbound></policies>"""

QUOTA = """<policies><inbound>
<quota-by-key calls="2" renewal-period="3600"
  counter-key='@(context.Request.Url.Query.GetValueOrDefault("k", ""))' />
</inbound></policies>"""

BANDWIDTH = """<policies><inbound>
<quota-by-key bandwidth="512" renewal-period="3600"
  counter-key='@(context.Request.Url.Query.GetValueOrDefault("k", ""))' />
</inbound></policies>"""

# The gateway's API is "t" with the single operation "all".
SCOPED = """<policies><inbound>
<quota calls="10" renewal-period="3600">
  <api id="other" calls="1" />
  <api name="t" calls="4" bandwidth="1024"><operation id="all" calls="2" /></api>
</quota>
</inbound></policies>"""


@pytest.fixture
def throttled(policy_gateway):
    return functools.partial(policy_gateway, "t")


async def statuses(port: int, path: str, count: int, certs, tmp_path) -> list[int]:
    return [(await curl(port, path, ca=certs.ca_file, tmp=tmp_path)).status for _ in range(count)]


async def test_rate_limit_by_key_in_redis_answers_429_as_apim(
    throttled, certs, tmp_path, redis_url, redis_server
):
    port = await throttled(RATE.format(extra=""), redis_url=redis_url)
    replies = [await curl(port, "/t/x?k=a", ca=certs.ca_file, tmp=tmp_path) for _ in range(4)]
    assert [r.status for r in replies] == [200, 200, 200, 429]
    assert [r.headers.get("x-remaining") for r in replies[:3]] == ["2", "1", "0"]
    assert replies[0].headers["x-total"] == "3"
    refused = replies[3]
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert refused.json() == {
        "statusCode": 429,
        "message": f"Rate limit is exceeded. Try again in {refused.headers['retry-after']} "
        "seconds.",
    }
    assert await statuses(port, "/t/x?k=b", 1, certs, tmp_path) == [200]  # another key
    assert redis_server.keys("certgate:n:rate:60:*") == [
        b"certgate:n:rate:60:a",
        b"certgate:n:rate:60:b",
    ]


async def test_quota_by_key_answers_403_with_the_replenish_time(
    throttled, certs, tmp_path, redis_url
):
    port = await throttled(QUOTA, redis_url=redis_url)
    replies = [await curl(port, "/t/x?k=q", ca=certs.ca_file, tmp=tmp_path) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 403]
    body = replies[2].json()
    assert body["statusCode"] == 403
    prefix = "Out of call volume quota. Quota will be replenished in "
    assert re.fullmatch(r"(00:[0-5]\d|01:00):[0-5]\d\.", body["message"].removeprefix(prefix))


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "process"])
async def test_a_bandwidth_quota_counts_request_and_response_bytes(
    throttled, certs, tmp_path, redis_url, shared
):
    port = await throttled(BANDWIDTH, redis_url=redis_url if shared else "")
    # 512 KB = 524,288 bytes: two streamed 300,000-byte responses, the second crossing the quota
    download = [await curl(port, "/t/download/300000?k=r", ca=certs.ca_file, tmp=tmp_path)]
    download.append(await curl(port, "/t/download/300000?k=r", ca=certs.ca_file, tmp=tmp_path))
    assert [(r.status, len(r.body)) for r in download] == [(200, 300000), (200, 300000)]
    refused = await curl(port, "/t/download/1?k=r", ca=certs.ca_file, tmp=tmp_path)
    assert refused.status == 403
    assert 3500 < int(refused.headers["retry-after"]) <= 3600
    prefix = "Out of bandwidth quota. Quota will be replenished in "
    assert re.fullmatch(r"(00:5\d|01:00):[0-5]\d\.", refused.json()["message"].removeprefix(prefix))
    # the request body counts too: one 600,000-byte upload exhausts another key's quota
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"u" * 600000)
    sent = await curl(
        port, "/t/upload?k=u", "--data-binary", f"@{upload}", ca=certs.ca_file, tmp=tmp_path
    )
    assert sent.status == 200 and sent.json()["received"] == 600000
    assert await statuses(port, "/t/x?k=u", 1, certs, tmp_path) == [403]
    assert await statuses(port, "/t/x?k=other", 1, certs, tmp_path) == [200]


async def test_a_quota_counts_the_api_and_operation_it_names_apart(
    throttled, certs, tmp_path, redis_url
):
    port = await throttled(SCOPED, redis_url=redis_url)
    # the operation's 2 calls run out first; the other API's quota of 1 never applies
    replies = [await curl(port, "/t/x", ca=certs.ca_file, tmp=tmp_path) for _ in range(3)]
    assert [r.status for r in replies] == [200, 200, 403]
    assert replies[2].json()["message"].startswith("Out of call volume quota.")


async def test_increment_condition_counts_after_the_response(throttled, certs, tmp_path, redis_url):
    condition = 'increment-condition="@(context.Response.StatusCode == 200)"'
    port = await throttled(RATE.format(extra=condition), redis_url=redis_url)
    assert await statuses(port, "/t/x?k=c&status=404", 5, certs, tmp_path) == [404] * 5
    assert await statuses(port, "/t/x?k=c", 4, certs, tmp_path) == [200, 200, 200, 429]


async def test_an_increment_count_expression_is_evaluated_after_the_response(
    throttled, certs, tmp_path, redis_url
):
    cost = 'increment-count="@(context.Response.StatusCode == 404 ? 3 : 1)"'
    port = await throttled(RATE.format(extra=cost), redis_url=redis_url)
    assert await statuses(port, "/t/x?k=e&status=404", 2, certs, tmp_path) == [404, 429]
    assert await statuses(port, "/t/x?k=f", 4, certs, tmp_path) == [200, 200, 200, 429]


async def test_counters_fall_back_to_the_process_while_redis_is_down(
    throttled, certs, tmp_path, private_redis
):
    port = await throttled(RATE.format(extra=""), redis_url=private_redis.url)
    assert await statuses(port, "/t/x?k=d", 2, certs, tmp_path) == [200, 200]
    private_redis.stop()
    # the shared count is out of reach: the process counts from zero, and still enforces
    assert await statuses(port, "/t/x?k=d", 4, certs, tmp_path) == [200, 200, 200, 429]


async def test_counter_max_keys_drops_the_least_recently_used_counter(throttled, certs, tmp_path):
    port = await throttled(RATE.format(extra=""), counter_max_keys=2)
    assert await statuses(port, "/t/x?k=1", 4, certs, tmp_path) == [200, 200, 200, 429]
    await statuses(port, "/t/x?k=2", 1, certs, tmp_path)
    await statuses(port, "/t/x?k=3", 1, certs, tmp_path)  # the third key drops key 1's counter
    assert await statuses(port, "/t/x?k=1", 1, certs, tmp_path) == [200]


async def test_cache_max_entries_and_bytes_bound_the_internal_cache(
    throttled, backend, certs, tmp_path
):
    port = await throttled(responses("internal"), cache_max_entries=2, cache_max_bytes=4096)
    for path in ("/t/x?a=1", "/t/x?a=2", "/t/x?a=3", "/t/x?a=1"):  # a=1 was dropped for a=3
        assert await statuses(port, path, 1, certs, tmp_path) == [200]
    assert backend.requests == 4
    assert await statuses(port, "/t/x?a=3", 1, certs, tmp_path) == [200]
    assert backend.requests == 4
    for _ in range(2):  # larger than the whole cache: never stored
        assert await statuses(port, "/t/download/5000?length", 1, certs, tmp_path) == [200]
    assert backend.requests == 6


class SilentRedis:
    """A TCP listener that accepts connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()


async def test_a_hung_redis_costs_one_command_timeout_then_rests(
    throttled, backend, certs, tmp_path, caplog
):
    caplog.set_level(logging.WARNING)
    silent = SilentRedis()
    url = await silent.start()
    try:
        port = await throttled(
            responses("external"),
            redis_url=url,
            redis_command_timeout=0.2,
            redis_retry_interval=300.0,
        )
        started = time.monotonic()
        assert await statuses(port, "/t/x?a=1", 3, certs, tmp_path) == [200, 200, 200]
        assert time.monotonic() - started < 10  # one bounded wait, not one per command
        assert backend.requests == 3
        assert silent.connections == 1  # resting: the later requests did not try Redis
        assert "external cache (Redis) failed: TimeoutError" in caplog.text
    finally:
        await silent.close()
