"""The ARM protocol every kind shares, exercised on certificates over real HTTPS."""

from __future__ import annotations

import asyncio
import base64
import logging

import httpx
import pytest

from tests import pki
from tests.management.server import management_server, open_store

ARM = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ApiManagement/service/gw"
PASSWORD = "very-secret-pfx-password"


def upload(client, certificate_id: str, issued: pki.Issued | None = None, **headers):
    issued = issued or pki.issue(f"{certificate_id}.example.test")
    body = {
        "properties": {
            "data": base64.b64encode(issued.pfx(PASSWORD)).decode(),
            "password": PASSWORD,
        }
    }
    return client.put(f"/certificates/{certificate_id}", json=body, headers=headers)


def test_bearer_token_required_everywhere(server):
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as anonymous:
        for method, path in [
            ("GET", "/certificates"),
            ("GET", "/openapi.json"),
            ("PUT", "/certificates/x"),
            ("GET", f"{ARM}?api-version=2024-05-01"),
        ]:
            response = anonymous.request(method, path)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "AuthenticationFailed"
            assert response.headers["www-authenticate"].startswith("Bearer")
        wrong = anonymous.get("/certificates", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401


def test_arm_paths_and_api_version(client):
    created = client.put(
        f"{ARM}/certificates/arm1?api-version=2022-08-01",
        json={"properties": {"data": base64.b64encode(pki.issue("arm").der).decode()}},
    )
    assert created.status_code == 201
    assert created.json()["id"] == f"{ARM}/certificates/arm1"
    short = client.get("/certificates/arm1").json()
    assert short["id"].endswith("/service/certgate/certificates/arm1")
    assert client.get(f"{ARM}/Certificates/arm1?api-version=2024-05-01").status_code == 200
    missing = client.get(f"{ARM}/certificates/arm1")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    unknown = client.get(f"{ARM}/certificates/arm1?api-version=1999-01-01")
    assert unknown.json()["error"]["code"] == "InvalidApiVersionParameter"
    assert client.get("/certificates/arm1?api-version=1999-01-01").status_code == 400
    assert client.get(f"{ARM}?api-version=2024-05-01").json()["id"] == ARM


def test_etag_and_if_match(client):
    created = upload(client, "e1")
    etag = created.headers["etag"]
    assert client.head("/certificates/e1").headers["etag"] == etag
    stale = upload(client, "e1", **{"If-Match": '"stale"'})
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "PreconditionFailed"
    updated = upload(client, "e1", **{"If-Match": etag})
    assert updated.status_code == 200
    assert upload(client, "e2", **{"If-Match": "*"}).status_code == 412
    no_header = client.delete("/certificates/e1")
    assert no_header.status_code == 428
    assert no_header.json()["error"]["code"] == "PreconditionRequired"
    old = client.delete("/certificates/e1", headers={"If-Match": etag})
    assert old.status_code == 412
    gone = client.delete("/certificates/e1", headers={"If-Match": updated.headers["etag"]})
    assert gone.status_code == 200
    assert client.get("/certificates/e1").status_code == 404
    assert client.delete("/certificates/e1", headers={"If-Match": "*"}).status_code == 404


def test_unknown_paths_and_methods(client):
    assert client.get("/nothing/here").json()["error"]["code"] == "ResourceNotFound"
    assert client.post("/certificates").status_code == 405
    assert client.delete("/", headers={"If-Match": "*"}).status_code == 405
    assert client.post("/certificates/x/refreshSecretNope").status_code == 404


def test_in_use_lists_every_referrer(server, client):
    upload(client, "used")
    server.store.put("backend", "backends/b1", {}, references=["certificates/used"])
    server.store.put("api", "apis/a", {})
    server.store.put(
        "policy", "apis/a/policies/policy", {}, references=["apis/a", "certificates/used"]
    )
    response = client.delete("/certificates/used", headers={"If-Match": "*"})
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "CertificateInUse"
    assert [d["target"] for d in error["details"]] == ["apis/a/policies/policy", "backends/b1"]
    assert client.get("/certificates/used").status_code == 200


def test_filter_top_skip_and_next_link(client):
    for number in range(7):
        upload(client, f"cert-{number}", pki.issue(f"host{number}.example.test"))
    listed = client.get("/certificates", params={"$top": "3"}).json()
    assert listed["count"] == 7 and len(listed["value"]) == 3
    names, link = [c["name"] for c in listed["value"]], listed["nextLink"]
    while link:
        page = client.get(link).json()
        names += [c["name"] for c in page["value"]]
        link = page["nextLink"]
    assert names == [f"cert-{n}" for n in range(7)]
    skipped = client.get("/certificates", params={"$skip": "5"}).json()
    assert [c["name"] for c in skipped["value"]] == ["cert-5", "cert-6"]
    assert skipped["nextLink"] is None

    def names_for(expression: str) -> list[str]:
        response = client.get("/certificates", params={"$filter": expression})
        assert response.status_code == 200, response.text
        return [c["name"] for c in response.json()["value"]]

    assert names_for("name eq 'cert-3'") == ["cert-3"]
    assert names_for("contains(subject,'HOST4')") == ["cert-4"]
    assert names_for("substringof('host5', subject)") == ["cert-5"]
    assert names_for("startswith(name,'cert-1') or endswith(subject,'6.example.test')") == [
        "cert-1",
        "cert-6",
    ]
    assert len(names_for("expirationDate gt 2020-01-01T00:00:00Z and name ne 'cert-0'")) == 6
    assert names_for("expirationDate lt 2020-01-01T00:00:00Z") == []
    thumbprint = client.get("/certificates/cert-2").json()["properties"]["thumbprint"]
    assert names_for(f"thumbprint eq '{thumbprint.lower()}'") == ["cert-2"]
    bad = client.get("/certificates", params={"$filter": "password eq 'x'"})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["target"] == "$filter"
    assert client.get("/certificates", params={"$top": "0"}).status_code == 400


async def test_concurrent_puts_of_one_id(server):
    issued = pki.issue("concurrent.example.test")
    body = {
        "properties": {
            "data": base64.b64encode(issued.pfx(PASSWORD)).decode(),
            "password": PASSWORD,
        }
    }
    async with server.async_client(timeout=60) as client:
        responses = await asyncio.gather(
            *(client.put("/certificates/race", json=body) for _ in range(12))
        )
        final = await client.get("/certificates/race")
    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert final.json()["properties"]["thumbprint"] == issued.thumbprint
    row = server.store.get("certificates/race")
    assert final.headers["etag"] == f'"{row.etag}"'
    assert "PRIVATE KEY" in row.secrets["pem"]


def test_restart_keeps_certificates(tmp_path):
    directory = tmp_path / "data"
    with management_server(directory) as first, first.client() as client:
        created = upload(client, "persist")
    first.store.close()
    with (
        management_server(directory, store=open_store(directory)) as second,
        second.client() as client,
    ):
        again = client.get("/certificates/persist")
    assert again.status_code == 200
    assert again.json() == created.json()
    assert again.headers["etag"] == created.headers["etag"]


def test_secrets_stay_out_of_database_logs_and_responses(server, client, caplog):
    caplog.set_level(logging.DEBUG)
    issued = pki.issue("secret.example.test")
    key_pem = issued.key_pem
    upload(client, "s1", issued)
    upload(client, "s2", issued)
    client.put(
        "/certificates/s3",
        json={
            "properties": {
                "data": base64.b64encode(issued.pfx(PASSWORD)).decode(),
                "password": "wrong-" + PASSWORD,
            }
        },
    )
    texts = [client.get("/certificates").text, client.get("/certificates/s1").text]
    for text in texts:
        assert PASSWORD not in text and '"data"' not in text and '"password"' not in text
    assert PASSWORD not in caplog.text and "PRIVATE KEY" not in caplog.text
    database = b"".join(p.read_bytes() for p in server.directory.glob("certgate.sqlite*"))
    key_body = b"".join(key_pem.splitlines()[1:-1])
    assert b"CN=secret.example.test" in database
    assert PASSWORD.encode() not in database
    assert key_body[:40] not in database and b"PRIVATE KEY" not in database


def test_on_change_is_awaited_after_each_write(tmp_path):
    calls: list[int] = []

    async def changed() -> None:
        calls.append(len(calls))

    with management_server(tmp_path / "d", on_change=changed) as server, server.client() as client:
        upload(client, "c")
        client.put("/certificates/bad", json={"properties": {"data": "!!"}})
        client.delete("/certificates/c", headers={"If-Match": "*"})
    assert calls == [0, 1]


def test_openapi_lists_registered_kinds(client):
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/certificates", "/certificates/{certificateId}", "/"} <= set(document["paths"])
    assert "delete" in document["paths"]["/certificates/{certificateId}"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("path", ["/certificates", f"{ARM}/certificates?api-version=2024-05-01"])
def test_empty_collection(client, path):
    assert client.get(path).json() == {"value": [], "count": 0, "nextLink": None}
