"""`certgate serve --workers 2` with Redis (`--redis-url` or the `caches` resource): both workers
count against one Redis, so a rate limit is crossed exactly, and a value stored by one worker is
read by the other (an internal value is not: which proves the requests reached both workers). The
Redis password never shows in logs or responses."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.serve import CERTGATE, Served, client_env
from tests.redis_server import PASSWORD, RedisServer

CALLS = 10
REQUESTS = 24

POLICY = f"""<policies><inbound>
<choose>
  <when condition='@(context.Request.Url.Path.EndsWith("/limited"))'>
    <rate-limit-by-key calls="{CALLS}" renewal-period="300" counter-key="e2e-shared" />
  </when>
  <when condition='@(context.Request.Url.Path.EndsWith("/store"))'>
    <cache-store-value key="e2e-value" value="internal" duration="600" caching-type="internal" />
    <cache-store-value key="e2e-value" value="external" duration="600" caching-type="external" />
  </when>
</choose>
<cache-lookup-value key="e2e-value" variable-name="internal" default-value="none"
  caching-type="internal" />
<cache-lookup-value key="e2e-value" variable-name="external" default-value="none"
  caching-type="external" />
<return-response><set-status code="200" reason="OK" /><set-body>@(
  (string)context.Variables["internal"] + " " + (string)context.Variables["external"])</set-body>
</return-response>
</inbound></policies>"""


@pytest.fixture(scope="module", params=["flag", "caches-resource"])
def shared(request, tmp_path_factory, redis_server: RedisServer) -> Iterator[Served]:
    """Two workers with Redis configured by `--redis-url`, or by the management API's
    `caches/default` (StackExchange.Redis connection string, as APIM takes it)."""
    redis_server.flush()
    options = ("--redis-url", redis_server.url) if request.param == "flag" else ()
    server = Served.start(tmp_path_factory.mktemp("shared"), workers=2, options=options)
    with server.http() as http:
        if request.param == "caches-resource":
            connection = f"127.0.0.1:{redis_server.port},password={PASSWORD},abortConnect=False"
            cache = {"connectionString": connection, "useFromLocation": "default"}
            written = http.put("/caches/default", json={"properties": cache})
            assert written.status_code == 201, written.text
            assert PASSWORD not in written.text + http.get("/caches").text
        api = {"displayName": "shared", "path": "shared", "serviceUrl": "http://127.0.0.1:9"}
        assert http.put("/apis/shared", json={"properties": api}).is_success
        operation = {"displayName": "all", "method": "*", "urlTemplate": "/*"}
        assert http.put("/apis/shared/operations/all", json={"properties": operation}).is_success
        policy = {"format": "rawxml", "value": POLICY}
        written = http.put("/apis/shared/policies/policy", json={"properties": policy})
        assert written.is_success, written.text
    yield server
    server.stop()


async def _request(port: int, context: ssl.SSLContext, path: str) -> tuple[int, str]:
    """One request on a fresh TLS connection (SO_REUSEPORT spreads them over both workers)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    reply = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


async def _many(served: Served, path: str, count: int) -> list[tuple[int, str]]:
    context = ssl.create_default_context(cafile=served.dev_ca)
    port = served.gateway_port
    return await asyncio.gather(*(_request(port, context, path) for _ in range(count)))


async def test_two_workers_cross_a_rate_limit_exactly(shared: Served) -> None:
    statuses = sorted(status for status, _ in await _many(shared, "/shared/limited", REQUESTS))
    assert statuses == [200] * CALLS + [429] * (REQUESTS - CALLS)


async def test_a_value_stored_by_one_worker_is_read_by_the_other(shared: Served) -> None:
    ((status, body),) = await _many(shared, "/shared/store", 1)
    assert (status, body) == (200, "internal external")
    bodies = {body for _, body in await _many(shared, "/shared/read", 24)}
    # every worker reads the external value; the worker that did not store has no internal one
    assert bodies == {"internal external", "none external"}


def test_the_redis_password_is_never_logged(shared: Served) -> None:
    assert PASSWORD not in shared.log.read_text()
    assert PASSWORD not in shared.announced


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"http://:{PASSWORD}@127.0.0.1:6379/0", "Redis URL must specify one of the following"),
        (f"redis://:{PASSWORD}@127.0.0.1:port/0", "Port could not be cast to integer value"),
    ],
)
def test_an_unusable_redis_url_is_refused_without_showing_it(tmp_path, url, reason) -> None:
    result = subprocess.run(
        [CERTGATE, "serve", "--data-dir", str(tmp_path / "data"), "--redis-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=client_env(),
    )
    assert result.returncode == 1
    assert f"certgate serve: --redis-url: {reason}" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
