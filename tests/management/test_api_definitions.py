"""OpenAPI 3 / Swagger 2 import (PUT with format and value) and export (`?export=true`)."""

from __future__ import annotations

import base64
import dataclasses
import json
import time

import httpx
import pytest
import yaml

from certgate.limits import DEFAULT_LIMITS
from certgate.management.api_export import export_key, sign, verify
from certgate.management.api_import import configure_api_import
from tests.management.server import document_server

PETSTORE_YAML = """
openapi: 3.0.1
info:
  title: Pet store
  description: Pets, by id
  version: "1.0"
servers:
  - url: https://{region}.pets.example.test/v1
    variables:
      region: {default: eu}
paths:
  /kinds/{kind}:
    get:
      operationId: byKind
      parameters:
        - name: kind
          in: path
          required: true
          schema: {type: string, default: cat, enum: [cat, dog]}
      responses: {"200": {description: ok}}
  /pets:
    get:
      operationId: listPets
      summary: List pets
      parameters:
        - {name: limit, in: query, required: true, schema: {type: integer}}
        - {name: after, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
    post:
      summary: Add a pet
      responses: {"201": {description: created}}
  /pets/{petId}:
    parameters:
      - {name: petId, in: path, required: true, schema: {type: integer}, description: The id}
    get:
      operationId: showPetById
      responses: {"200": {description: ok}}
    delete:
      operationId: deletePet
      parameters:
        - $ref: "#/components/parameters/Force"
      responses: {"204": {description: gone}}
components:
  parameters:
    Force: {name: force, in: query, schema: {type: boolean}}
"""

SWAGGER = {
    "swagger": "2.0",
    "info": {"title": "Orders", "version": "2"},
    "host": "orders.example.test",
    "basePath": "/api",
    "schemes": ["http", "https"],
    "paths": {
        "/orders/{id}": {
            "get": {
                "operationId": "get order",
                "parameters": [{"name": "id", "in": "path", "required": True, "type": "string"}],
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


def _import(client, api: str, fmt: str, value: str, **properties):
    body = {"properties": {"format": fmt, "value": value, **properties}}
    return client.put(f"/apis/{api}", json=body)


def _operations(client, api: str) -> dict[str, dict]:
    listed = client.get(f"/apis/{api}/operations").json()["value"]
    return {item["name"]: item["properties"] for item in listed}


def test_openapi_yaml_import_names_operations_as_apim_does(client):
    response = _import(client, "pets", "openapi", PETSTORE_YAML, path="pets")
    assert response.status_code == 201, response.text
    api = response.json()["properties"]
    assert api["serviceUrl"] == "https://eu.pets.example.test/v1"
    assert api["displayName"] == "Pet store" and api["description"] == "Pets, by id"
    operations = _operations(client, "pets")
    assert sorted(operations) == ["bykind", "deletepet", "listpets", "post-pets", "showpetbyid"]
    assert operations["bykind"]["templateParameters"] == [
        {"name": "kind", "type": "string", "required": True, "defaultValue": "cat",
         "values": ["cat", "dog"]}
    ]  # fmt: skip
    assert operations["listpets"]["displayName"] == "List pets"
    assert operations["listpets"]["urlTemplate"] == "/pets?limit={limit}"  # required query
    assert operations["listpets"]["templateParameters"] == [
        {"name": "limit", "type": "integer", "required": True}
    ]
    assert operations["post-pets"]["method"] == "POST"
    assert operations["post-pets"]["displayName"] == "Add a pet"
    assert operations["showpetbyid"]["urlTemplate"] == "/pets/{petId}"
    assert operations["showpetbyid"]["templateParameters"] == [
        {"name": "petId", "type": "integer", "required": True, "description": "The id"}
    ]
    assert operations["deletepet"]["templateParameters"][0]["name"] == "petId"


def test_reimport_replaces_the_operations_and_request_properties_win(client):
    assert _import(client, "pets", "openapi", PETSTORE_YAML, path="pets").status_code == 201
    smaller = yaml.safe_load(PETSTORE_YAML)
    del smaller["paths"]["/pets/{petId}"]
    response = _import(
        client,
        "pets",
        "openapi+json",
        json.dumps(smaller),
        path="pets",
        serviceUrl="https://override.example.test",
        displayName="Mine",
    )
    assert response.status_code == 200, response.text
    assert response.json()["properties"]["serviceUrl"] == "https://override.example.test"
    assert response.json()["properties"]["displayName"] == "Mine"
    assert sorted(_operations(client, "pets")) == ["bykind", "listpets", "post-pets"]


def test_swagger_2_import(client):
    response = _import(client, "orders", "swagger-json", json.dumps(SWAGGER), path="orders")
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["serviceUrl"] == "https://orders.example.test/api"
    operations = _operations(client, "orders")
    assert list(operations) == ["get-order"]
    assert operations["get-order"]["templateParameters"] == [
        {"name": "id", "type": "string", "required": True}
    ]


@pytest.mark.parametrize(
    ("fmt", "value", "message"),
    [
        ("openapi", "a: &x [1]\nb: *x\n", "aliases"),
        ("openapi+json", "{not json", "does not parse"),
        ("openapi+json", '{"info": {}}', "neither OpenAPI 3"),
        ("openapi+json", json.dumps({"openapi": "3.0.0", "paths": {"nope": {}}}), "start with"),
        ("openapi-link", "https://not-allowed.example.test/spec.yaml", "allow-list"),
        ("openapi+json", "[" * 100_000 + "]" * 100_000, "nests too deeply"),
        ("openapi", "[" * 100_000 + "]" * 100_000, "maximum nesting depth"),
    ],
)
def test_bad_definitions_are_refused_and_nothing_is_stored(client, fmt, value, message):
    response = _import(client, "bad", fmt, value, path="bad")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["target"] == "value" and message in error["message"]
    assert client.get("/apis/bad").status_code == 404


def test_link_import_fetches_only_allowed_urls(client):
    with document_server(PETSTORE_YAML.encode()) as origin:
        configure_api_import([f"{origin}/specs/"], DEFAULT_LIMITS)
        try:
            for outside in ("/other/p.yaml", "/specs/../other/p.yaml", "/specs/%2e%2e/p.yaml"):
                refused = _import(client, "pets", "openapi-link", origin + outside, path="p")
                assert refused.json()["error"]["code"] == "LinkNotAllowed", outside
            response = _import(client, "pets", "openapi-link", f"{origin}/specs/p.yaml", path="p")
        finally:
            configure_api_import([], DEFAULT_LIMITS)
    assert response.status_code == 201, response.text
    assert "showpetbyid" in _operations(client, "pets")


@pytest.mark.parametrize(
    ("server_options", "limits", "message"),
    [
        ({"body": b"x" * 2048}, {"management_max_body_bytes": 1024}, "--management-max-body-bytes"),
        ({"body": b"", "hold": True}, {"api_import_link_timeout": 0.5}, "ReadTimeout"),
        ({"body": b"", "status": 302}, {}, "HTTP 302"),
    ],
)
def test_link_downloads_are_bounded(client, server_options, limits, message):
    """Size and time limits of a `-link` download, and redirects are not followed."""
    with document_server(**server_options) as origin:
        configure_api_import([f"{origin}/specs/"], dataclasses.replace(DEFAULT_LIMITS, **limits))
        try:
            response = _import(client, "p", "openapi-link", f"{origin}/specs/p.yaml", path="p")
        finally:
            configure_api_import([], DEFAULT_LIMITS)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert client.get("/apis/p").status_code == 404


def test_export_link_expires(client, server):
    """The link carries its expiry (--api-export-link-seconds); an expired one is 404."""
    assert _import(client, "pets", "openapi", PETSTORE_YAML, path="pets").status_code == 201
    params = {"export": "true", "format": "openapi+json-link"}
    link = client.get("/apis/pets", params=params).json()["value"]["link"]
    token = link.rsplit("/", 1)[1]
    key = export_key(server.token)
    api, kind = verify(key, token)
    assert (api, kind) == ("pets", "openapi+json")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert 0 < claims["exp"] - time.time() <= DEFAULT_LIMITS.api_export_link_seconds
    expired = sign(key, "pets", "openapi+json", int(time.time()) - 1)
    with httpx.Client(verify=server.ssl_context()) as anonymous:
        assert anonymous.get(link).status_code == 200
        assert anonymous.get(link.replace(token, expired)).status_code == 404


def test_export_inline_and_by_link_imports_back(client, server):
    assert _import(client, "pets", "openapi", PETSTORE_YAML, path="pets").status_code == 201
    exported = client.get("/apis/pets", params={"export": "true", "format": "openapi+json"})
    assert exported.status_code == 200, exported.text
    result = exported.json()
    assert result["format"] == "openapi+json" and result["id"].endswith("/apis/pets")
    document = result["value"]
    assert document["servers"] == [{"url": "https://eu.pets.example.test/v1"}]
    assert document["paths"]["/pets/{petId}"]["get"]["operationId"] == "showpetbyid"
    assert document["x-ms-paths"]["/pets?limit={limit}"]["get"]["parameters"] == [
        {"name": "limit", "in": "query", "required": True, "schema": {"type": "integer"}},
        {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
    ]

    as_yaml = client.get("/apis/pets", params={"export": "true", "format": "openapi"}).json()
    assert yaml.safe_load(as_yaml["value"]) == document

    link = client.get("/apis/pets", params={"export": "true", "format": "openapi-link"}).json()
    assert link["format"] == "openapi-link"
    with httpx.Client(verify=server.ssl_context()) as anonymous:  # no admin token
        fetched = anonymous.get(link["value"]["link"])
        assert fetched.status_code == 200
        assert yaml.safe_load(fetched.text) == document
        url = link["value"]["link"]
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert anonymous.get(tampered).status_code == 404

    before = _operations(client, "pets")
    again = _import(client, "copy", "openapi+json", json.dumps(document), path="copy")
    assert again.status_code == 201, again.text
    assert _operations(client, "copy") == before

    swagger = client.get("/apis/pets", params={"export": "true", "format": "swagger-json"})
    assert swagger.json()["value"]["basePath"] == "/v1"
    value = json.dumps(swagger.json()["value"])
    again = _import(client, "copy2", "swagger-json", value, path="copy2")
    assert again.status_code == 201, again.text
    assert again.json()["properties"]["serviceUrl"] == "https://eu.pets.example.test/v1"
    assert _operations(client, "copy2") == before


def test_operation_count_limit(client):
    """--api-import-max-operations: one operation over the limit refuses the whole import."""
    paths = {f"/p{i}": {"get": {"responses": {}}} for i in range(4)}
    document = json.dumps({"openapi": "3.0.1", "info": {"title": "t"}, "paths": paths})
    configure_api_import([], dataclasses.replace(DEFAULT_LIMITS, api_import_max_operations=3))
    try:
        response = _import(client, "many", "openapi+json", document, path="many")
    finally:
        configure_api_import([], DEFAULT_LIMITS)
    assert response.status_code == 400
    assert "--api-import-max-operations" in response.json()["error"]["message"]
    assert client.get("/apis/many").status_code == 404
    assert _import(client, "many", "openapi+json", document, path="many").status_code == 201


def test_operation_names_follow_apim_normalisation_and_reimport_keeps_names(client):
    """Lower case, runs of other characters one '-', 76 characters, `-1` for a clash (in any
    case); an operationId naming an existing operation (any case) keeps that operation."""
    long_id = "Very.Long_Name " * 10
    document = {
        "openapi": "3.0.1",
        "info": {"title": "names"},
        "paths": {
            "/a/{x}": {"get": {"operationId": "Get_Thing!", "responses": {}}},
            "/b": {"get": {"operationId": "get-thing", "responses": {}}},
            "/c": {"put": {"operationId": long_id, "responses": {}}},
            "/d/{*rest}": {"delete": {"responses": {}}},
        },
    }
    response = _import(client, "names", "openapi+json", json.dumps(document), path="names")
    assert response.status_code == 201, response.text
    operations = _operations(client, "names")
    assert sorted(operations) == sorted(
        ["get-thing", "get-thing-1", ("very-long-name-" * 10)[:76], "delete-d-rest"]
    )
    assert operations["delete-d-rest"]["displayName"] == "Delete - /d/{*rest}"
    assert operations["delete-d-rest"]["templateParameters"][0]["name"] == "rest"
    assert client.put(
        "/apis/names/operations/Custom", json={"properties": {"method": "GET", "urlTemplate": "/e"}}
    ).is_success
    document["paths"]["/e"] = {"get": {"operationId": "CUSTOM", "responses": {}}}
    document["paths"]["/f"] = {"get": {"operationId": "custom", "responses": {}}}
    again = _import(client, "names", "openapi+json", json.dumps(document), path="names")
    assert again.status_code == 200, again.text
    operations = _operations(client, "names")
    assert operations["Custom"]["urlTemplate"] == "/e"
    assert operations["custom-1"]["urlTemplate"] == "/f"  # not a second 'custom' in ARM's eyes


def test_required_query_parameters_can_stay_out_of_the_template(client):
    response = _import(
        client, "q", "openapi", PETSTORE_YAML, path="q", translateRequiredQueryParameters="query"
    )
    assert response.status_code == 201, response.text
    assert _operations(client, "q")["listpets"]["urlTemplate"] == "/pets"
    bad = _import(
        client, "q2", "openapi", PETSTORE_YAML, path="q2", translateRequiredQueryParameters="x"
    )
    assert bad.json()["error"]["target"] == "translateRequiredQueryParameters"


def _document(paths: dict, schemas: dict | None = None) -> str:
    document: dict = {"openapi": "3.0.1", "info": {"title": "t"}, "paths": paths}
    if schemas is not None:
        document["components"] = {"schemas": schemas}
    return json.dumps(document)


def _get(path: str, schema: str = "Pet") -> dict:
    body = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return {"get": {"operationId": path.strip("/").replace("/", "-"), "responses": {"200": body}}}


GOOD_PATHS = {"/one": _get("/one"), "/two": _get("/two"), "/three": _get("/three")}
# The third operation repeats a template parameter: refused while the import is validated.
BAD_OPERATION = {**GOOD_PATHS, "/three/{id}/owners/{id}": _get("/x"), "/four": _get("/four")}
# A definition that is no JSON schema: refused by the Snapshot compiler inside the write, after
# the API and its first operations were written in the same transaction.
BAD_SCHEMA = {"Pet": {"type": "kitten"}}


def _rows(server, api: str) -> list:
    return [row for row in server.store.list() if row.path.startswith(f"apis/{api}")]


@pytest.mark.parametrize(
    ("paths", "schemas", "target", "message"),
    [
        (BAD_OPERATION, {"Pet": {"type": "object"}}, "value", "repeats the parameter 'id'"),
        (
            GOOD_PATHS,
            BAD_SCHEMA,
            "apis/bad/schemas/definitions:document",
            "definition 'Pet' is not a valid JSON schema",
        ),
    ],
    ids=["operation", "schema"],
)
def test_an_import_that_fails_stores_nothing(server, client, paths, schemas, target, message):
    """Nothing half-written: no API, no operation, no schema, the same revision."""
    revision = server.store.revision()
    response = _import(client, "bad", "openapi+json", _document(paths, schemas), path="bad")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["target"] == target and message in error["message"], error
    assert server.store.revision() == revision
    assert _rows(server, "bad") == []
    assert client.get("/apis/bad").status_code == 404
    assert client.get("/apis/bad/operations/one").status_code == 404


@pytest.mark.parametrize(("paths", "schemas"), [(BAD_OPERATION, None), (GOOD_PATHS, BAD_SCHEMA)])
def test_a_failed_reimport_keeps_the_previous_version(server, client, paths, schemas):
    assert _import(client, "pets", "openapi", PETSTORE_YAML, path="pets").status_code == 201
    before, revision = _rows(server, "pets"), server.store.revision()
    response = _import(
        client, "pets", "openapi+json", _document(paths, schemas), path="pets", displayName="New"
    )
    assert response.status_code == 400, response.text
    assert server.store.revision() == revision
    assert _rows(server, "pets") == before  # same rows, same ETags
    assert client.get("/apis/pets").json()["properties"]["displayName"] == "Pet store"
    assert sorted(_operations(client, "pets")) == [
        "bykind", "deletepet", "listpets", "post-pets", "showpetbyid"
    ]  # fmt: skip


def test_an_import_is_one_write_with_one_revision(server, client):
    """The API, its operations and schemas, and a re-import's removals: one revision each."""
    revision = server.store.revision()
    response = _import(client, "pets", "openapi", PETSTORE_YAML, path="pets")
    assert response.status_code == 201, response.text
    assert int(response.headers["X-Certgate-Revision"]) == revision + 1 == server.store.revision()
    again = _import(client, "pets", "openapi+json", _document(GOOD_PATHS, {"Pet": {}}), path="pets")
    assert again.status_code == 200, again.text
    assert int(again.headers["X-Certgate-Revision"]) == revision + 2 == server.store.revision()
    assert sorted(_operations(client, "pets")) == ["one", "three", "two"]
    schema = client.get("/apis/pets/schemas/definitions").json()["properties"]
    assert schema["document"]["components"]["schemas"] == {"Pet": {}}
