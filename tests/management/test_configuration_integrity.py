"""What the management API accepts is what the gateway serves (issue 12, configuration integrity).

Every write compiles the configuration it produces, inside its transaction, with the Snapshot
compiler: a resource that would not compile, or a write that would break another resource, is a 400
naming the resource and the field, and nothing is stored. All through the real HTTPS management API.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import insert

from certgate.config.store import Store, refs, resources
from certgate.snapshot.compiler import SnapshotBuilder

API = {"path": "shop", "serviceUrl": "https://backend.test"}
BASE_URL_POLICY = (
    "<policies><inbound><set-backend-service base-url='{{target}}' /></inbound></policies>"
)


def _refusal(response, field: str, path: str) -> dict:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert error["target"] == field
    assert any(path in d["message"] and d["target"] == field for d in error["details"]), error
    return error


@pytest.mark.parametrize(
    ("path", "properties", "field"),
    [
        ("apis/other", {"path": "other", "serviceUrl": "http://[::1"}, "serviceUrl"),
        ("apis/other", {"path": "other", "serviceUrl": "https://a:99999/"}, "serviceUrl"),
        ("apis/other", {"path": "other", "serviceUrl": "https://:443/"}, "serviceUrl"),
        ("apis/shop/operations/o", {"method": "GET", "urlTemplate": "/{a}/{a}"}, "urlTemplate"),
        ("apis/shop/operations/o", {"method": "GET", "urlTemplate": "/{a-b}/{a_b}"}, "urlTemplate"),
    ],
)
def test_a_resource_that_would_not_compile_is_refused_and_not_stored(
    server, client, path, properties, field
):
    assert client.put("/apis/shop", json={"properties": API}).status_code == 201
    revision = server.store.revision()
    _refusal(client.put(f"/{path}", json={"properties": properties}), field, path)
    assert client.get(f"/{path}").status_code == 404
    assert server.store.revision() == revision  # the write rolled back: no revision, no row


def test_an_update_that_would_not_compile_keeps_the_stored_resource(server, client):
    created = client.put("/apis/shop", json={"properties": API})
    etag = created.headers["etag"]
    bad = {**API, "serviceUrl": "https://a:99999/"}
    _refusal(client.put("/apis/shop", json={"properties": bad}), "serviceUrl", "apis/shop")
    patch = {"properties": {"serviceUrl": "http://[::1"}}
    _refusal(client.patch("/apis/shop", json=patch), "serviceUrl", "apis/shop")
    kept = client.get("/apis/shop")
    assert kept.headers["etag"] == etag
    assert kept.json()["properties"]["serviceUrl"] == "https://backend.test"


def test_a_write_that_would_break_another_resource_is_refused(server, client):
    named = {"displayName": "target", "value": "https://ok.test"}
    assert client.put("/namedValues/target", json={"properties": named}).status_code == 201
    assert client.put("/apis/shop", json={"properties": API}).status_code == 201
    policy = {"properties": {"value": BASE_URL_POLICY}}
    assert client.put("/apis/shop/policies/policy", json=policy).status_code == 201
    refused = client.put(
        "/namedValues/target", json={"properties": {**named, "value": "not a url"}}
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "ValidationError"
    assert "apis/shop/policies/policy" in error["message"]
    assert error["target"] == "apis/shop/policies/policy:set-backend-service"
    assert client.get("/namedValues/target").json()["properties"]["value"] == "https://ok.test"
    fresh = SnapshotBuilder(server.store)
    assert fresh.build().snapshot.problems == ()
    fresh.close()


def test_two_apis_cannot_share_a_path_even_written_together(server, client):
    assert client.put("/apis/shop", json={"properties": API}).status_code == 201
    second = client.put("/apis/copy", json={"properties": {**API, "path": "/SHOP/"}})
    assert second.status_code == 400 and second.json()["error"]["target"] == "path"
    assert "same Path 'SHOP' as API 'shop'" in second.json()["error"]["message"]
    assert client.get("/apis/copy").status_code == 404
    # the API that had the path first keeps it, whatever the ids' order
    assert client.put("/apis/a-first", json={"properties": {**API, "path": "x"}}).is_success
    third = client.put("/apis/0-later", json={"properties": {**API, "path": "x"}})
    assert third.status_code == 400 and third.json()["error"]["target"] == "path"


def test_a_resource_stored_before_the_check_is_left_out_and_the_rest_is_served(server, client):
    """A row an older certgate stored does not stop the gateway at an old revision: it is
    reported and left out, unrelated writes are accepted, and it can be fixed by a write."""
    assert client.put("/apis/shop", json={"properties": API}).status_code == 201
    good = {"method": "GET", "urlTemplate": "/items/{id}"}
    assert client.put("/apis/shop/operations/good", json={"properties": good}).status_code == 201
    old = {"method": "GET", "urlTemplate": "/{a}/{a}", "displayName": "old"}
    server.store.put("operation", "apis/shop/operations/old", old, references=["apis/shop"])

    builder = SnapshotBuilder(server.store)
    config = builder.build()
    assert config.revision == server.store.revision()
    [problem] = config.snapshot.problems
    assert (problem.path, problem.field) == ("apis/shop/operations/old", "urlTemplate")
    api, remainder = config.router.match_api("/shop/items/7")
    assert api.match_operation("GET", remainder, "")[0].id == "good"

    other = {"method": "POST", "urlTemplate": "/items"}
    assert client.put("/apis/shop/operations/new", json={"properties": other}).status_code == 201
    still_bad = {"method": "GET", "urlTemplate": "/{b}/{b}"}
    _refusal(
        client.put("/apis/shop/operations/old", json={"properties": still_bad}),
        "urlTemplate",
        "apis/shop/operations/old",
    )
    fixed = {"method": "GET", "urlTemplate": "/old/{a}"}
    assert client.put("/apis/shop/operations/old", json={"properties": fixed}).status_code == 200
    config = builder.build()
    assert config.snapshot.problems == () and builder.problems == ()
    assert {op.id for op in config.router.apis[0].operations} == {"good", "new", "old"}
    builder.close()


def test_deleting_an_api_deletes_its_product_links(client):
    for api in ("shop", "other"):
        props = {**API, "path": api}
        assert client.put(f"/apis/{api}", json={"properties": props}).status_code == 201
    for product in ("p1", "p2"):
        body = {"properties": {"displayName": product}}
        assert client.put(f"/products/{product}", json=body).status_code == 201
        assert client.put(f"/products/{product}/apis/shop").status_code == 201
    assert client.put("/products/p1/apis/other").status_code == 201

    assert client.delete("/apis/shop", headers={"If-Match": "*"}).status_code == 204
    assert client.get("/products/p2/apis/shop").status_code == 404
    assert client.get("/products/p2/apis").json()["value"] == []
    assert [v["name"] for v in client.get("/products/p1/apis").json()["value"]] == ["other"]
    assert client.get("/products/p1").status_code == 200
    # a link to a missing API is refused, not stored
    assert client.put("/products/p1/apis/shop").status_code == 400


def test_an_api_with_1000_operations_is_deleted(server, client):
    assert client.put("/apis/big", json={"properties": {**API, "path": "big"}}).status_code == 201
    _insert_operations(server.store, "apis/big", 1000)
    assert client.get("/apis/big/operations").json()["count"] == 1000
    assert client.delete("/apis/big", headers={"If-Match": "*"}).status_code == 204
    assert server.store.list(parent="apis/big") == []
    assert client.get("/apis/big").status_code == 404
    assert client.get("/apis").json()["count"] == 0


def _insert_operations(store: Store, api: str, count: int) -> None:
    """Valid operation rows and their references in one transaction (1,000 PUTs take seconds)."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "path": f"{api}/operations/op{number}",
            "kind": "operation",
            "parent": api,
            "name": f"op{number}",
            "properties": json.dumps({"method": "GET", "urlTemplate": f"/items{number}"}),
            "etag": f"e{number}",
            "created": now,
            "updated": now,
        }
        for number in range(count)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(resources), rows)
        conn.execute(insert(refs), [{"from_path": r["path"], "to_path": api} for r in rows])
