"""The Snapshot compiler's work is incremental (issue 12): after a write, a rebuild compiles what
the write changed and reuses every other compiled piece. Counting compiles instead of timing them
keeps the test meaningful on a loaded machine; bench/config_scale.py prints the wall-clock figures.

The configuration is written through the real HTTPS management API.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from certgate.snapshot.compiler import SnapshotBuilder
from tests.management.server import management_server
from tests.policy.support import RecordingForwarder, make_context

APIS = 12
OPERATIONS = (
    ("list", "GET", "/items"),
    ("get", "GET", "/items/{id}"),
    ("put", "PUT", "/items/{id}"),
)
POLICY = (
    "<policies><inbound><base /><set-header name='X-Scope' exists-action='append'>"
    "<value>{}</value></set-header></inbound></policies>"
)


@pytest.fixture
def configured(tmp_path: Path):
    with management_server(tmp_path / "data") as server, server.client(timeout=30) as client:
        for number in range(APIS):
            api = f"api{number}"
            props = {"path": api, "serviceUrl": f"https://backend{number}.test"}
            assert client.put(f"/apis/{api}", json={"properties": props}).status_code == 201
            for op, method, url in OPERATIONS:
                template = {"method": method, "urlTemplate": url}
                put = client.put(f"/apis/{api}/operations/{op}", json={"properties": template})
                assert put.status_code == 201
            if number % 2 == 0:
                policy = {"properties": {"value": POLICY.format(api)}}
                assert client.put(f"/apis/{api}/policies/policy", json=policy).status_code == 201
        builder = SnapshotBuilder(server.store)
        builder.build()
        try:
            yield client, builder
        finally:
            builder.close()


def _rebuild(builder: SnapshotBuilder) -> tuple[Counter, object]:
    before = builder.compiles
    config = builder.build()
    return builder.compiles - before, config


def test_an_unchanged_store_compiles_nothing(configured):
    _, builder = configured
    compiled, config = _rebuild(builder)
    assert compiled == Counter()
    assert len(config.router.apis) == APIS


def test_an_operation_write_compiles_that_operation_and_regroups_its_api(configured):
    client, builder = configured
    template = {"properties": {"method": "DELETE", "urlTemplate": "/items/{id}"}}
    assert client.put("/apis/api3/operations/put", json=template).status_code == 200
    compiled, config = _rebuild(builder)
    assert compiled == Counter(operation=1, api=1)
    api, remainder = config.router.match_api("/api3/items/9")
    assert api.match_operation("DELETE", remainder, "")[0].id == "put"


def test_a_policy_write_compiles_that_document_and_the_operations_it_governs(configured):
    client, builder = configured
    policy = {"properties": {"value": POLICY.format("five")}}
    assert client.put("/apis/api5/policies/policy", json=policy).status_code == 201
    compiled, _ = _rebuild(builder)
    assert compiled == Counter(policyDocument=1, operation=3, api=1)


def test_a_named_value_no_document_uses_compiles_nothing(configured):
    client, builder = configured
    named = {"properties": {"displayName": "unused", "value": "x"}}
    assert client.put("/namedValues/unused", json=named).status_code == 201
    compiled, _ = _rebuild(builder)
    assert compiled == Counter()


async def test_a_named_value_a_document_uses_compiles_that_document_again(configured):
    client, builder = configured
    named = {"properties": {"displayName": "scope", "value": "first"}}
    assert client.put("/namedValues/scope", json=named).status_code == 201
    policy = {"properties": {"value": POLICY.format("{{scope}}")}}
    assert client.put("/apis/api1/operations/get/policies/policy", json=policy).status_code == 201
    _rebuild(builder)
    named["properties"]["value"] = "second"
    assert client.put("/namedValues/scope", json=named).status_code == 200
    compiled, config = _rebuild(builder)
    assert compiled == Counter(policyDocument=1, operation=1, api=1)
    api, _ = config.router.match_api("/api1/items/1")
    forwarder = RecordingForwarder()
    await api.match_operation("GET", "/items/1", "")[0].pipeline.run(make_context(), forwarder)
    assert [v for k, v in forwarder.calls[0].headers if k == "X-Scope"] == ["second"]


def test_a_global_policy_recompiles_every_operation_once(configured):
    client, builder = configured
    policy = {"properties": {"value": POLICY.format("global").replace("<base />", "")}}
    assert client.put("/policies/policy", json=policy).status_code == 201
    compiled, _ = _rebuild(builder)
    assert compiled == Counter(policyDocument=1, operation=3 * APIS, api=APIS)
    again, _ = _rebuild(builder)
    assert again == Counter()
