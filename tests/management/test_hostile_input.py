"""Input that must get a 400 naming the field, never a 500 and never "500 but saved".

Every case goes through the real HTTPS management API; after each refusal the collection still
lists (the bug was a row saved before the response failed, after which GET and LIST answered 500).
"""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from certgate.limits import Limits
from tests import pki
from tests.management.server import management_server

POLICY = "/apis/a/policies/policy"


def _error(response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def _api(client, name: str = "a") -> None:
    created = client.put(f"/apis/{name}", json={"properties": {"path": name}})
    assert created.status_code in (200, 201), created.text


def _policy(inbound: str) -> dict:
    document = f"<policies><inbound>{inbound}</inbound><backend><base /></backend></policies>"
    return {"properties": {"format": "rawxml", "value": document}}


# -- JSON -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "target"),
    [
        (b'{"properties":{"displayName":"nv","value":NaN}}', "properties.value"),
        (
            b'{"properties":{"displayName":"nv","value":"x","tags":[Infinity]}}',
            "properties.tags[0]",
        ),
        (b'{"properties":{"displayName":"nv","value":-Infinity}}', "properties.value"),
        (b'{"properties":{"displayName":"nv","value":1e999}}', "properties.value"),
        (b'{"properties":{"displayName":"nv","value":"a\\ud800b"}}', "properties.value"),
        (
            b'{"properties":{"displayName":"nv","value":"x","tags":["\\udfff"]}}',
            "properties.tags[0]",
        ),
        (b'{"properties":{"displayName":"nv","\\ud800":"x"}}', "properties"),
    ],
)
def test_json_that_cannot_be_stored_is_refused_before_anything_is_saved(client, body, target):
    error = _error(client.put("/namedValues/nv", content=body))
    assert error["code"] == "ValidationError" and error["target"] == target
    assert error["details"][0]["target"] == target
    assert client.get("/namedValues/nv").status_code == 404
    listed = client.get("/namedValues")
    assert listed.status_code == 200 and listed.json()["count"] == 0


def test_json_nested_100000_deep_is_400(client):
    deep = b'{"properties":{"value":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    error = _error(client.put("/namedValues/nv", content=deep))
    assert error["target"] in ("body", "properties.value")
    assert "--management-max-json-depth" in error["message"]


def test_json_depth_limit_is_the_flag_value(tmp_path):
    def nested(depth: int) -> bytes:
        # properties (2) + the value's own levels: `depth` levels in all
        inner = "[" * (depth - 2) + "]" * (depth - 2)
        return ('{"properties":{"displayName":"nv","value":"v","tags":' + inner + "}}").encode()

    limits = Limits(management_max_json_depth=6)
    with management_server(tmp_path, limits=limits) as server, server.client(timeout=30) as client:
        at_limit = client.put("/namedValues/nv", content=nested(6))
        assert "deeper" not in at_limit.text
        error = _error(client.put("/namedValues/nv", content=nested(7)))
        assert "deeper than 6 levels" in error["message"]


def test_body_size_limit_is_the_flag_value(tmp_path):
    limits = Limits(management_max_body_bytes=1024)
    with management_server(tmp_path, limits=limits) as server, server.client(timeout=30) as client:
        body = {"properties": {"displayName": "nv", "value": "x" * 2000}}
        assert _error(client.put("/namedValues/nv", json=body), 413)["target"] == "body"
        assert client.get("/namedValues").json()["count"] == 0


# -- paging and $filter --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [("$top", "²"), ("$top", "0"), ("$top", "1001"), ("$top", "-1"), ("$top", "1e3"),
     ("$skip", "9" * 5000), ("$skip", "٣"), ("$skip", "-1"), ("$skip", "2147483648")],
)  # fmt: skip
def test_paging_parameters_out_of_range_are_400(client, name, value):
    error = _error(client.get("/apis", params={name: value}))
    assert error["target"] == name and "integer between" in error["message"]


@pytest.mark.parametrize(
    "text",
    [
        "not " * 1000 + "name eq 'a'",
        "(" * 400 + "name eq 'a'" + ")" * 400,
        "(" * 33 + "name eq 'a'" + ")" * 33,
    ],
)
def test_filter_nested_too_deep_is_400(client, text):
    error = _error(client.get("/apis", params={"$filter": text}))
    assert error["target"] == "$filter" and "deeper than 32" in error["message"]


def test_filter_at_the_depth_limit_and_long_flat_chains_work(client):
    _api(client, "a")
    _api(client, "b")
    nested = "(" * 32 + "name eq 'a'" + ")" * 32
    assert [v["name"] for v in client.get("/apis", params={"$filter": nested}).json()["value"]] == [
        "a"
    ]
    chain = " or ".join(["name eq 'zz'"] * 1500 + ["name eq 'b'"])
    found = client.get("/apis", params={"$filter": chain})
    assert found.status_code == 200 and [v["name"] for v in found.json()["value"]] == ["b"]
    conjunction = " and ".join(["not (name eq 'zz')"] * 1500)
    assert client.get("/apis", params={"$filter": conjunction}).json()["count"] == 2


def test_filter_depth_limit_is_the_flag_value(tmp_path):
    limits = Limits(management_max_filter_depth=2)
    with management_server(tmp_path, limits=limits) as server, server.client(timeout=30) as client:
        assert client.get("/apis", params={"$filter": "not (name eq 'a')"}).status_code == 200
        error = _error(client.get("/apis", params={"$filter": "not not (name eq 'a')"}))
        assert "deeper than 2" in error["message"]


# -- certificates --------------------------------------------------------------------------
def test_pfx_password_with_a_lone_surrogate_is_400_without_echoing_it(client):
    pfx = base64.b64encode(pki.issue("surrogate.example").pfx("pw")).decode()
    body = '{"properties":{"data":"' + pfx + '","password":"pw\\ud800secret"}}'
    error = _error(client.put("/certificates/c", content=body.encode()))
    assert error["target"] == "properties.password"
    assert "secret" not in json.dumps(error)
    assert client.get("/certificates").json()["count"] == 0


# -- policy documents ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("inbound", "words"),
    [
        ('<set-variable name="v" value="@(&quot;&#99999999;&quot;)" />', "character reference"),
        ('<set-variable name="v" value="@(&quot;&#xD800;&quot;)" />', "character reference"),
        ('<set-header name="x"><value>@("&#1114112;")</value></set-header>', "character reference"),
        ('<set-variable name="v" value="@(&quot;&#' + "9" * 5000 + ';&quot;)" />', "reference"),
        ("<set-header name='x'><value>&#" + "9" * 5000 + ";</value></set-header>", "reference"),
    ],
)
def test_invalid_character_references_are_400(client, inbound, words):
    _api(client)
    error = _error(client.put(POLICY, json=_policy(inbound)))
    assert error["code"] == "ValidationError" and words in error["message"]
    assert client.get(POLICY).status_code == 404


def test_2000_nested_choose_is_400_naming_the_element(client):
    _api(client)
    deep = '<choose><when condition="@(true)">' * 2000 + "</when></choose>" * 2000
    error = _error(client.put(POLICY, json=_policy(deep)))
    assert error["target"] == "choose" and "nested deeper than 64" in error["message"]
    assert client.get(POLICY).status_code == 404


def test_doctype_is_refused_and_gateway_credentials_never_expand_entities(server, client, tmp_path):
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text("host-secret-contents")
    doctype = (
        f'<!DOCTYPE policies [<!ENTITY leak SYSTEM "file://{secret_file}">]>'
        "<policies><inbound><base /><set-header name='x'><value>&leak;</value></set-header>"
        "</inbound><backend><base /></backend></policies>"
    )
    _api(client)
    refused = _error(client.put(POLICY, json={"properties": {"format": "xml", "value": doctype}}))
    assert "DOCTYPE" in refused["message"]
    assert client.get(POLICY).status_code == 404

    # A row written before saving refused DOCTYPEs (straight into the store, as an old version did).
    server.store.put("apiPolicy", POLICY[1:], {"value": doctype}, references=["apis/a"])
    pem = pki.issue("creds.example")
    created = client.put(
        "/certificates/creds",
        json={"properties": {"data": base64.b64encode(pem.pfx("pw")).decode(), "password": "pw"}},
    )
    assert created.status_code == 201
    credentials = client.post(
        "/apis/a/gatewayCredentials", json={"properties": {"certificateId": "creds"}}
    )
    error = _error(credentials)
    assert "DOCTYPE" in error["message"] and "host-secret-contents" not in credentials.text
    assert "host-secret-contents" not in json.dumps(server.store.get(POLICY[1:]).properties)


# -- names ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/apis/" + "a" * 257, "apiId"),
        ("/apis/a%2Ab", "apiId"),
        ("/apis/a%3Cb", "apiId"),
        ("/apis/a%01b", "apiId"),
        ("/apis/a%1Bb", "apiId"),
        ("/certificates/" + "c" * 81, "certificateId"),
        ("/backends/" + "b" * 81, "backendId"),
        ("/namedValues/" + "n" * 257, "namedValueId"),
        ("/products/" + "p" * 257, "productId"),
        ("/policyFragments/-bad", "id"),
        ("/policyFragments/bad.name", "id"),
    ],
)
def test_names_follow_apim_rules(client, path, target):
    error = _error(client.put(path, json={"properties": {"path": "x", "displayName": "x"}}))
    assert error["target"] == target and "is not a valid" in error["message"]


def test_apim_length_limits_are_reachable(client):
    _api(client, "a" * 256)
    operation = "o" * 80
    created = client.put(
        f"/apis/{'a' * 256}/operations/{operation}",
        json={"properties": {"method": "GET", "urlTemplate": "/x"}},
    )
    assert created.status_code == 201, created.text
    too_long = client.put(
        f"/apis/{'a' * 256}/operations/{operation}o",
        json={"properties": {"method": "GET", "urlTemplate": "/y"}},
    )
    assert _error(too_long)["target"] == "operationId"


@pytest.mark.parametrize("segment", ["..", ".", "%2e%2e", "%2E"])
def test_dot_segments_are_refused_not_resolved(server, segment):
    """curl --path-as-is sends the segment as written (httpx would resolve it to the parent)."""
    url = f"{server.base_url}/apis/{segment}"
    result = subprocess.run(
        ["curl", "-sS", "--path-as-is", "--cacert", str(server.ca_file), "-X", "PUT",
         "-H", f"Authorization: Bearer {server.token}", "-H", "Content-Type: application/json",
         "--data", '{"properties":{"path":"dots"}}', "-w", "\n%{http_code}", url],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    body, _, status = result.stdout.rpartition("\n")
    assert status == "400", result.stdout
    assert json.loads(body)["error"]["target"] == "apiId"
    assert server.store.list("api") == []


def test_names_are_case_insensitive(server, client):
    _api(client, "CS")
    operation = {"properties": {"method": "GET", "urlTemplate": "/x"}}
    assert client.put("/apis/CS/operations/Op", json=operation).status_code == 201
    again = client.put("/apis/cs", json={"properties": {"path": "cs2"}})
    assert again.status_code == 200 and again.json()["name"] == "CS"
    assert client.get("/apis").json()["count"] == 1
    assert client.get("/apis/cs/operations/OP").json()["name"] == "Op"
    assert client.put("/apis/cs/operations/other", json=operation).status_code == 201
    assert server.store.get("apis/CS/operations/other") is not None
    assert client.delete("/apis/cS/operations/oP", headers={"If-Match": "*"}).status_code == 200
    assert [o["name"] for o in client.get("/apis/CS/operations").json()["value"]] == ["other"]

    _api(client, "keep")
    assert client.put("/apis/keep/operations/o", json=operation).status_code == 201
    assert client.delete("/apis/cs", headers={"If-Match": "*"}).status_code == 204
    assert server.store.list(parent="apis/CS") == []
    assert [a["name"] for a in client.get("/apis").json()["value"]] == ["keep"]
    assert client.get("/apis/KEEP/operations").json()["count"] == 1


# -- routes, auth, unsupported requests ------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nothing/here", 404),
        ("GET", "/apis/a/nothing", 404),
        ("GET", "/apis/missing", 404),
        ("DELETE", "/apis/missing", 404),
        ("POST", "/openapi.json", 404),
        ("OPTIONS", "/apis", 405),
        ("PUT", "/apis", 405),
    ],
)
def test_every_refusal_has_the_json_error_shape(client, method, path, status):
    headers = {"If-Match": "*"} if method == "DELETE" else {}
    error = _error(client.request(method, path, headers=headers), status)
    assert error["code"] and error["message"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(server, scheme):
    with server.client(timeout=30) as client:
        headers = {"Authorization": f"{scheme} {server.token}"}
        assert client.get("/apis", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "authorization", ["Basic dGVzdA==", "Bearer", "Bearer wrong", "Bearer\u00e9 x", "Token x"]
)
def test_other_authorization_is_401(server, authorization):
    with server.client(timeout=30) as client:
        response = client.get("/apis", headers={"Authorization": authorization.encode()})
        assert _error(response, 401)["code"] == "AuthenticationFailed"


def test_definition_formats_without_an_api_type_are_not_supported(client):
    """WSDL, WADL and GraphQL imports and exports are 400 NotSupported; nothing is stored."""
    for fmt, value in (
        ("wsdl", "<definitions/>"),
        ("wadl-xml", "<application/>"),
        ("graphql-link", "https://example.test/schema.graphql"),
    ):
        properties = {"format": fmt, "value": value, "path": "imp"}
        error = _error(client.put("/apis/imp", json={"properties": properties}))
        assert error["code"] == "NotSupported" and error["target"] == "format"
    assert client.get("/apis/imp").status_code == 404
    _api(client)
    exported = client.get("/apis/a", params={"export": "true", "format": "wsdl-link"})
    assert _error(exported)["code"] == "NotSupported"
