"""The `caches` kind: APIM's external cache entity. The connection string is sealed, shown as
`*****`, kept when `*****` is sent back, and checked when written without ever being echoed."""

from __future__ import annotations

import pytest

SECRET = "pa55-w0rd-h18"
GOOD = f"cache.example.test:6380,password={SECRET},ssl=True,abortConnect=False"


def test_connection_string_is_sealed_and_masked(client) -> None:
    body = {"properties": {"connectionString": GOOD, "useFromLocation": "default"}}
    created = client.put("/caches/default", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["properties"] == {
        "connectionString": "*****",
        "useFromLocation": "default",
    }
    assert created.json()["type"] == "Microsoft.ApiManagement/service/caches"
    for response in (client.get("/caches/default"), client.get("/caches")):
        assert response.status_code == 200 and SECRET not in response.text
    kept = {"properties": {"connectionString": "*****", "useFromLocation": "default"}}
    assert client.put("/caches/default", json=kept).status_code == 200
    patched = client.patch("/caches/default", json={"properties": {"description": "shared"}})
    assert patched.status_code == 200 and patched.json()["properties"]["description"] == "shared"


@pytest.mark.parametrize(
    ("properties", "target", "reason"),
    [
        ({"useFromLocation": "default"}, "connectionString", "is required"),
        ({"connectionString": GOOD}, "useFromLocation", "is required"),
        (
            {"connectionString": f"host:port,password={SECRET}", "useFromLocation": "default"},
            "connectionString",
            "the port must be a number",
        ),
        (
            {"connectionString": f"http://u:{SECRET}@h:1", "useFromLocation": "default"},
            "connectionString",
            "must specify one of the following schemes",
        ),
        (
            {"connectionString": f"password={SECRET}", "useFromLocation": "default"},
            "connectionString",
            "no host:port",
        ),
    ],
)
def test_bad_caches_are_refused_naming_the_field(client, properties, target, reason) -> None:
    response = client.put("/caches/c", json={"properties": properties})
    assert response.status_code == 400
    error = response.json()["error"]
    assert reason in response.text and SECRET not in response.text
    assert target in str(error)
    assert client.get("/caches/c").status_code == 404


def test_one_cache_per_location(client) -> None:
    body = {"properties": {"connectionString": GOOD, "useFromLocation": "default"}}
    assert client.put("/caches/first", json=body).status_code == 201
    second = client.put("/caches/second", json=body)
    assert second.status_code == 400
    assert "cache 'first' is already used from 'default'" in second.text
    assert client.put("/caches/first", json=body).status_code == 200  # itself: an update
