"""Wrong admin tokens are limited per client address: a real management API over TLS on 127.0.0.1,
clients bound to 127.0.0.1 and 127.0.0.2; the limiter's window and eviction with an injected clock.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest

from certgate.authlimit import FailureLimiter
from certgate.limits import Limits
from tests.keyvault.bao import wait_until
from tests.management.server import ManagementServer, management_server

WRONG = {"Authorization": "Bearer wrong-guess-0123456789"}


def _client(server: ManagementServer, address: str) -> httpx.Client:
    """A client whose connections leave from `address` (any 127.x address reaches 127.0.0.1)."""
    transport = httpx.HTTPTransport(verify=server.ssl_context(), local_address=address)
    return server.client(transport=transport, timeout=30)


def _refused_count(client: httpx.Client, outcome: str) -> float:
    text = client.get("/metrics").text
    found = re.search(
        rf'^certgate_admin_auth_failures_total{{outcome="{outcome}"}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_wrong_tokens_past_the_limit_get_429_even_with_the_right_token(tmp_path: Path, caplog):
    limits = Limits(admin_auth_failures=3, admin_auth_window=60.0)
    with (
        management_server(tmp_path / "data", limits=limits) as server,
        _client(server, "127.0.0.1") as guesser,
        _client(server, "127.0.0.2") as other,
        caplog.at_level(logging.WARNING, logger="certgate.management"),
    ):
        invalid, blocked = _refused_count(other, "invalid"), _refused_count(other, "blocked")
        for _ in range(3):
            answer = guesser.get("/apis", headers=WRONG)
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "AuthenticationFailed"
        for headers in (WRONG, server.headers, server.headers):
            answer = guesser.get("/apis", headers=headers)
            assert answer.status_code == 429
            assert answer.json()["error"]["code"] == "TooManyFailedAuthentications"
            assert 1 <= int(answer.headers["Retry-After"]) <= 60
        assert guesser.get("/metrics").status_code == 429  # every route behind the token
        assert other.get("/apis").status_code == 200  # another address is not held back
        assert _refused_count(other, "invalid") - invalid == 3
        assert _refused_count(other, "blocked") - blocked == 4

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0]
    assert "wrong-guess" not in caplog.text and server.token not in caplog.text


def test_the_right_token_works_again_once_the_window_has_passed(tmp_path: Path):
    limits = Limits(admin_auth_failures=2, admin_auth_window=2.0)
    with management_server(tmp_path / "data", limits=limits) as server, server.client() as client:
        assert [client.get("/apis", headers=WRONG).status_code for _ in range(2)] == [401, 401]
        assert client.get("/apis").status_code == 429
        wait_until(lambda: client.get("/apis").status_code == 200, timeout=10, interval=0.1)
        assert client.get("/apis", headers=WRONG).status_code == 401  # a fresh window


def test_requests_without_a_token_are_not_counted(tmp_path: Path):
    limits = Limits(admin_auth_failures=2)
    with management_server(tmp_path / "data", limits=limits) as server, server.client() as client:
        for headers in ({"Authorization": ""}, {"Authorization": "Basic eA=="}) * 3:
            assert client.get("/apis", headers=headers).status_code == 401
        assert client.get("/apis").status_code == 200


def test_a_new_address_beyond_the_tracked_limit_evicts_the_oldest(tmp_path: Path):
    limits = Limits(admin_auth_failures=2, admin_auth_tracked=1)
    with (
        management_server(tmp_path / "data", limits=limits) as server,
        _client(server, "127.0.0.1") as first,
        _client(server, "127.0.0.2") as second,
    ):
        for _ in range(2):
            first.get("/apis", headers=WRONG)
        assert first.get("/apis").status_code == 429
        assert second.get("/apis", headers=WRONG).status_code == 401  # evicts 127.0.0.1's window
        assert first.get("/apis").status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_counts_each_address_in_its_own_window():
    clock = Clock()
    limiter = FailureLimiter(failures=3, window=60.0, tracked=10, clock=clock)
    assert [limiter.fail("a") for _ in range(3)] == [False, False, True]
    assert limiter.wait("a") == 60.0 and limiter.wait("b") == 0.0
    clock.now += 45.0
    assert limiter.wait("a") == 15.0  # refused attempts do not extend the window
    clock.now += 15.0
    assert limiter.wait("a") == 0.0
    assert limiter.fail("a") is False  # a fresh window: the warning comes again at its limit


def test_the_limiter_keeps_at_most_tracked_addresses_dropping_the_oldest_window():
    clock = Clock()
    limiter = FailureLimiter(failures=2, window=60.0, tracked=3, clock=clock)
    for address in ("a", "b", "c"):
        limiter.fail(address)
        limiter.fail(address)
        clock.now += 1.0
    limiter.fail("d")
    assert len(limiter) == 3
    assert limiter.wait("a") == 0.0 and limiter.wait("b") > 0 and limiter.wait("c") > 0
    clock.now = 1000.0 + 62.5  # b's and c's windows (opened at 1001, 1002) have ended, d's not
    limiter.fail("e")  # ended windows go at the next failure
    assert len(limiter) == 2


@pytest.mark.parametrize("failures", [1, 5])
def test_a_limit_of_n_refuses_the_attempt_after_the_nth(failures: int):
    limiter = FailureLimiter(failures=failures, window=1.0, tracked=4, clock=Clock())
    for _ in range(failures - 1):
        limiter.fail("a")
        assert limiter.wait("a") == 0.0
    assert limiter.fail("a") is True
    assert limiter.wait("a") == 1.0
