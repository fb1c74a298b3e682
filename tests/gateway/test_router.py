"""Routing without sockets: API prefixes, operation templates, precedence, config errors."""

from __future__ import annotations

import pytest

from certgate.gateway.router import (
    RouteCache,
    RouteConfigError,
    Router,
    api_route,
    operation_route,
)


def router(*apis: tuple[str, dict, dict[str, dict]]) -> Router:
    routes = []
    for api_id, props, operations in apis:
        route = api_route(api_id, props)
        route.add_operations(
            operation_route(op_id, op_props, op_id) for op_id, op_props in operations.items()
        )
        routes.append(route)
    return Router(routes)


def match(r: Router, method: str, target: str):
    path, _, query = target.partition("?")
    found = r.match_api(path)
    if found is None:
        return None
    api, remainder = found
    matched = api.match_operation(method, remainder, query)
    return (
        (api.id, remainder, None, None)
        if matched is None
        else (api.id, remainder, matched[0].pipeline, matched[1])
    )


ROUTER = router(
    ("root", {"path": ""}, {"any": {"method": "*", "urlTemplate": "/*"}}),
    (
        "orders",
        {"path": "orders"},
        {
            "list": {"method": "GET", "urlTemplate": "/"},
            "get": {"method": "GET", "urlTemplate": "/{id}"},
            "lines": {"method": "GET", "urlTemplate": "/{id}/lines/{line}"},
            "special": {"method": "GET", "urlTemplate": "/special"},
            "create": {"method": "POST", "urlTemplate": "/"},
            "search": {"method": "GET", "urlTemplate": "/find?customer={customer}"},
            "files": {"method": "GET", "urlTemplate": "/files/{*rest}"},
        },
    ),
    ("v2", {"path": "orders/v2"}, {"all": {"method": "*", "urlTemplate": "/*"}}),
)


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        ("GET", "/orders", ("orders", "/", "list", {})),
        ("GET", "/ORDERS/", ("orders", "/", "list", {})),
        ("POST", "/orders", ("orders", "/", "create", {})),
        ("GET", "/orders/42", ("orders", "/42", "get", {"id": "42"})),
        ("GET", "/orders/a%20b", ("orders", "/a%20b", "get", {"id": "a b"})),
        ("GET", "/orders/special", ("orders", "/special", "special", {})),
        ("GET", "/orders/7/lines/3", ("orders", "/7/lines/3", "lines", {"id": "7", "line": "3"})),
        ("GET", "/orders/find?customer=ann", ("orders", "/find", "search", {"customer": "ann"})),
        (
            "GET",
            "/orders/files/a/b.txt",
            ("orders", "/files/a/b.txt", "files", {"rest": "a/b.txt"}),
        ),
        ("DELETE", "/orders/42", ("orders", "/42", None, None)),
        ("GET", "/orders/v2/x/y", ("v2", "/x/y", "all", {})),
        ("GET", "/ordersx/1", ("root", "/ordersx/1", "any", {})),
        ("PATCH", "/", ("root", "/", "any", {})),
    ],
)
def test_longest_prefix_then_method_and_template(method, target, expected):
    assert match(ROUTER, method, target) == expected


def test_no_api_without_a_root_api():
    r = router(("a", {"path": "a"}, {}))
    assert r.match_api("/b/c") is None
    assert match(r, "GET", "/a/x") == ("a", "/x", None, None)


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({}, "'path'"),
        ({"path": "p", "protocols": ["ftp"]}, "'protocols'"),
        ({"path": "p", "serviceUrl": "ftp://x"}, "'serviceUrl'"),
    ],
)
def test_bad_api_definitions_name_the_field(props, field):
    with pytest.raises(RouteConfigError, match=field):
        api_route("bad", props)


def test_bad_operations_and_duplicate_paths_are_refused():
    with pytest.raises(RouteConfigError, match="'method'"):
        operation_route("o", {"urlTemplate": "/"}, None)
    with pytest.raises(RouteConfigError, match="'urlTemplate'"):
        operation_route("o", {"method": "GET"}, None)
    with pytest.raises(RouteConfigError, match="same Path 'x' as API 'a'"):
        router(("a", {"path": "x"}, {}), ("b", {"path": "/x/"}, {}))


def test_hostname_configuration_from_arm_shape():
    from certgate.gateway.config import HostnameConfig
    from certgate.gateway.tls import TLSConfigError

    entry = HostnameConfig.from_arm(
        {"type": "Proxy", "hostName": "api.example.test", "negotiateClientCertificate": True},
        "material",
    )
    assert entry == HostnameConfig("api.example.test", "material", True, False)
    with pytest.raises(TLSConfigError, match="'hostName'"):
        HostnameConfig.from_arm({"type": "Proxy"}, "material")


def test_only_apis_without_query_templates_may_cache_their_routes():
    apis = {api.id: api for api in ROUTER.apis}
    assert apis["orders"].query_templates  # `search` reads the query: the route depends on it
    assert not apis["root"].query_templates and not apis["v2"].query_templates


def test_the_route_cache_starts_over_past_its_byte_bound():
    cache = RouteCache(10)
    route = ROUTER.cache  # (any object: the cache stores routes as they are)
    cache.put(("https", "GET", "/aaaa"), route)
    cache.put(("https", "GET", "/bbbb"), route)  # 10 bytes of path: at the bound
    assert len(cache.entries) == 2
    cache.put(("https", "GET", "/c"), route)  # 12: starts over
    assert list(cache.entries) == [("https", "GET", "/c")]
    cache.put(("https", "GET", "/" + "x" * 10), route)  # larger than the bound: never kept
    assert not cache.entries
    off = RouteCache(0)  # --route-cache-bytes 0
    off.put(("https", "GET", "/"), route)
    assert not off.entries
