"""The cache and quota elements refuse bad configuration at save, naming the attribute; the
internal store keeps its LRU, TTL and size bounds (sans-I/O, no gateway needed)."""

from __future__ import annotations

import pytest

from certgate.policy.catalog import MemoryCatalog
from certgate.policy.errors import PolicyValidationError
from certgate.policy.loader import parse_document
from certgate.policy.stores import LocalStore
from tests.policy.support import policies

LOOKUP = "<cache-lookup vary-by-developer='false' vary-by-developer-groups='false' {}/>"


@pytest.mark.parametrize(
    ("inbound", "outbound", "message"),
    [
        (LOOKUP.format("caching-type='redis'"), "", "'caching-type' must be one of"),
        (LOOKUP.format("downstream-caching-type='all'"), "", "'downstream-caching-type'"),
        (LOOKUP.format("must-revalidate='maybe'"), "", "'must-revalidate' must be 'true'"),
        ("<cache-lookup vary-by-developer='false'/>", "", "'vary-by-developer-groups' is miss"),
        ("", "<cache-store duration='0'/>", "'duration' must be a positive number"),
        ("<cache-store duration='10'/>", "", "not allowed in the 'inbound' section"),
        ("<cache-lookup-value key='k'/>", "", "'variable-name' is missing"),
        ("<cache-store-value key='k' value='v'/>", "", "'duration' is missing"),
        ("<cache-remove-value key='k' caching-type='disk'/>", "", "'caching-type'"),
        ("<quota calls='10' bandwidth='0' renewal-period='60'/>", "", "'bandwidth' must be a pos"),
        ("<quota renewal-period='60'/>", "", "Either 'calls' or 'bandwidth'"),
        ("<quota calls='5' renewal-period='60'><api calls='1'/></quota>", "", "needs 'name' or"),
        (
            "<quota calls='5' renewal-period='60'><api id='a'><operation id='o'/></api></quota>",
            "",
            "Either 'calls' or 'bandwidth'",
        ),
        (
            "<quota calls='5' renewal-period='60'><api id='a' calls='1' period='9'/></quota>",
            "",
            "Attribute 'period' is not allowed in 'api'",
        ),
        (
            "<quota-by-key bandwidth='@(5)' renewal-period='60' counter-key='k'/>",
            "",
            "Expressions are not allowed in attribute 'bandwidth'",
        ),
        ("<quota-by-key calls='0' renewal-period='60' counter-key='k'/>", "", "'calls' must"),
        ("<rate-limit-by-key calls='5' renewal-period='60'/>", "", "'counter-key' is missing"),
        ("<rate-limit calls='5' renewal-period='301'/>", "", "at most 300 seconds"),
        (
            "<rate-limit-by-key calls='5' renewal-period='6' counter-key='k' increment-count='x'/>",
            "",
            "'increment-count' must be a positive integer",
        ),
        (
            "<rate-limit calls='5' renewal-period='60'><api name='x' calls='1'/></rate-limit>",
            "",
            "Per-API limits",
        ),
    ],
)
def test_bad_configuration_is_refused_at_save(inbound: str, outbound: str, message: str) -> None:
    document = f"<policies><inbound>{inbound}</inbound><outbound>{outbound}</outbound></policies>"
    with pytest.raises(PolicyValidationError, match=message):
        parse_document(document, "api", MemoryCatalog())


def test_the_documented_caching_example_saves() -> None:
    parse_document(
        policies(
            "<cache-lookup vary-by-developer='false' vary-by-developer-groups='false' "
            "downstream-caching-type='public' must-revalidate='true' caching-type='internal'>"
            "<vary-by-header>Accept</vary-by-header><vary-by-header>Accept-Charset</vary-by-header>"
            "<vary-by-query-parameter>version;lang</vary-by-query-parameter></cache-lookup>"
            "<quota-by-key calls='10000' renewal-period='3600' "
            "counter-key='@(context.Request.IpAddress)' first-period-start='2024-01-01T00:00:00Z'/>"
        ),
        "api",
        MemoryCatalog(),
    )


async def test_local_store_drops_least_recently_used_and_expired_entries() -> None:
    store = LocalStore(max_entries=2, max_bytes=10, max_keys=2)
    await store.set("a", b"1234", 60)
    await store.set("b", b"1234", 60)
    assert await store.get("a") == b"1234"  # a is now the most recently used
    await store.set("c", b"1234", 60)
    assert (await store.get("b"), await store.get("a")) == (None, b"1234")
    await store.set("d", b"12345678", 60)  # over 10 bytes together: the oldest go
    assert await store.get("a") is None and await store.get("d") == b"12345678"
    await store.set("e", b"x" * 11, 60)  # larger than the whole store: not kept
    assert await store.get("e") is None
    await store.set("f", b"1", 0)
    assert await store.get("f") is None  # expired


async def test_local_counters_refuse_at_the_limit_and_count_nothing_refused() -> None:
    store = LocalStore(max_entries=2, max_bytes=10, max_keys=2)
    results = [await store.hit("k", 1, 60, 2) for _ in range(3)]
    assert [(count, allowed) for count, _, allowed in results] == [(1, True), (2, True), (2, False)]
    assert 0 < results[0][1] <= 60


async def test_a_new_window_never_has_more_than_its_period_left() -> None:
    """Retry-After is the time left rounded up: a window just opened must not report 60.00...06
    seconds left of 60 (a Retry-After of 61)."""
    store = LocalStore(max_entries=2, max_bytes=10, max_keys=1000)
    for period in (1, 7, 60, 300, 3600):
        lefts = [(await store.hit(f"{period}:{i}", 1, period, 5))[1] for i in range(200)]
        assert all(0 < left <= period for left in lefts), max(lefts)
