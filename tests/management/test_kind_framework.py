"""The kind framework as another helper uses it: nested kinds, actions, list params, query-aware
presentation, async validation, references and cascade, all through a private registry."""

from __future__ import annotations

import pytest

from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, KindRegistry, Validated, WriteRequest
from tests.management.server import management_server


def validate_api(request: WriteRequest) -> Validated:
    path = request.properties.get("path")
    if not isinstance(path, str):
        raise ValidationError("'path' is required.", "path")
    return Validated({"path": path, "displayName": request.properties.get("displayName", "")})


async def validate_operation(request: WriteRequest) -> Validated:
    uses = request.properties.get("uses")
    secret = request.properties.get("secret")
    if secret is None and request.current is not None:
        secret = request.current.secrets.get("secret")
    return Validated(
        {"method": request.properties.get("method", "GET"), "flagged": False},
        secrets={"secret": secret} if secret else None,
        references=[f"apis/{uses}"] if uses else [],
    )


def present_operation(resource, query) -> dict:
    properties = dict(resource.properties)
    if query.get("format") == "upper":
        properties["method"] = properties["method"].upper()
    return properties


def flag(request: WriteRequest) -> Validated:
    return Validated({**request.current.properties, "flagged": True}, request.current.secrets)


@pytest.fixture
def api(tmp_path):
    registry = KindRegistry()
    registry.register(
        Kind(
            "api",
            "apis/{apiId}",
            "Microsoft.ApiManagement/service/apis",
            validate_api,
            filter_fields={"name": "string", "path": "string"},
        )
    )
    registry.register(
        Kind(
            "operation",
            "apis/{apiId}/operations/{operationId}",
            "Microsoft.ApiManagement/service/apis/operations",
            validate_operation,
            present=present_operation,
            actions={"flag": flag},
            list_params={
                "flagged": lambda row, value: row.properties["flagged"] == (value == "true")
            },
            patch=False,
        )
    )
    with management_server(tmp_path / "d", kinds=registry) as server, server.client() as client:
        yield server, client


def test_nested_kind_lifecycle(api):
    server, client = api
    missing_parent = client.put("/apis/a/operations/o", json={"properties": {}})
    assert missing_parent.status_code == 404
    assert client.put("/apis/a", json={"properties": {"path": "a"}}).status_code == 201
    assert client.put("/apis/b", json={"properties": {"path": "b"}}).status_code == 201
    created = client.put(
        "/apis/a/operations/o", json={"properties": {"method": "get", "uses": "b", "secret": "s3"}}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["id"].endswith("/service/certgate/apis/a/operations/o")
    assert body["type"] == "Microsoft.ApiManagement/service/apis/operations"
    assert "s3" not in created.text
    assert client.get("/apis/a/operations/o?format=upper").json()["properties"]["method"] == "GET"
    assert client.get("/apis/a/operations").json()["count"] == 1
    assert client.get("/apis/zz/operations").status_code == 404
    assert client.patch("/apis/a/operations/o", json={"properties": {}}).status_code == 405

    in_use = client.delete("/apis/b", headers={"If-Match": "*"})
    assert in_use.status_code == 409
    assert in_use.json()["error"]["code"] == "ApiInUse"
    assert in_use.json()["error"]["details"][0]["target"] == "apis/a/operations/o"

    flagged = client.post("/apis/a/operations/o/flag")
    assert flagged.status_code == 200 and flagged.json()["properties"]["flagged"] is True
    assert server.store.get("apis/a/operations/o").secrets == {"secret": "s3"}
    assert client.get("/apis/a/operations?flagged=true").json()["count"] == 1
    assert client.get("/apis/a/operations?flagged=false").json()["count"] == 0
    assert client.post("/apis/a/operations/nope/flag").status_code == 404

    bad_reference = client.put("/apis/a/operations/p", json={"properties": {"uses": "ghost"}})
    assert bad_reference.status_code == 400
    assert bad_reference.json()["error"]["details"][0]["target"] == "apis/ghost"

    assert client.delete("/apis/a", headers={"If-Match": "*"}).status_code == 204
    assert server.store.get("apis/a/operations/o") is None
    assert client.delete("/apis/b", headers={"If-Match": "*"}).status_code == 204


def test_patch_merges_and_validation_names_the_field(api):
    _, client = api
    client.put("/apis/a", json={"properties": {"path": "a", "displayName": "A"}})
    patched = client.patch("/apis/a", json={"properties": {"displayName": "Renamed"}})
    assert patched.json()["properties"] == {"path": "a", "displayName": "Renamed"}
    refused = client.put("/apis/c", json={})
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == [
        {"code": "ValidationError", "target": "path", "message": "'path' is required."}
    ]
    assert client.patch("/apis/missing", json={"properties": {}}).status_code == 404
    document = client.get("/openapi.json").json()
    assert "/apis/{apiId}/operations/{operationId}/flag" in document["paths"]
    assert "patch" not in document["paths"]["/apis/{apiId}/operations/{operationId}"]
