"""PUT /certificates/{id}: every upload format APIM accepts, and a clear 400 for each bad one."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from tests import pki

PASSWORD = "Pa55-word!"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def openssl_pfx(tmp_path, issued: pki.Issued, *extra: str, password: str = PASSWORD) -> bytes:
    """A PFX written by the real `openssl pkcs12 -export` binary."""
    cert, key = issued.write(tmp_path, "leaf")
    out = tmp_path / "leaf.pfx"
    subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-export",
            "-in",
            str(cert),
            "-inkey",
            str(key),
            "-out",
            str(out),
            "-passout",
            f"pass:{password}",
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def put(client, certificate_id: str, properties: dict):
    return client.put(f"/certificates/{certificate_id}", json={"properties": properties})


@pytest.fixture
def leaf():
    intermediate = pki.ca("Upload Root").issue("Upload Intermediate", ca=True)
    return intermediate.issue("upload.example.test", key_kind="rsa")


def test_openssl_pfx_with_password_and_chain(client, leaf, tmp_path):
    response = put(client, "c1", {"data": b64(openssl_pfx(tmp_path, leaf)), "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "c1"
    assert body["type"] == "Microsoft.ApiManagement/service/certificates"
    assert body["properties"] == {
        "subject": "CN=upload.example.test",
        "thumbprint": leaf.thumbprint,
        "expirationDate": leaf.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hasPrivateKey": True,  # certgate extension
    }
    assert response.headers["etag"].startswith('"')
    again = client.get("/certificates/c1")
    assert again.json() == body and again.headers["etag"] == response.headers["etag"]


def test_update_returns_200_and_new_etag(client, leaf, tmp_path):
    first = put(client, "c1", {"data": b64(leaf.pfx(PASSWORD)), "password": PASSWORD})
    other = pki.issue("replacement")
    second = put(client, "c1", {"data": b64(other.pfx(PASSWORD)), "password": PASSWORD})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["etag"] != first.headers["etag"]
    assert second.json()["properties"]["thumbprint"] == other.thumbprint


def test_pfx_without_password(client, leaf, tmp_path):
    response = put(client, "nopw", {"data": b64(openssl_pfx(tmp_path, leaf, password=""))})
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["thumbprint"] == leaf.thumbprint


@pytest.mark.parametrize("encoding", ["der", "pem", "pem-text"])
def test_certificate_without_key_for_client_validation(client, leaf, encoding):
    data = {"der": b64(leaf.der), "pem": b64(leaf.cert_pem), "pem-text": leaf.cert_pem.decode()}
    response = put(client, "public", {"data": data[encoding]})
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["subject"] == "CN=upload.example.test"


def _refusal(response) -> tuple[str, str]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ValidationError"
    assert PASSWORD not in response.text and "wrong-password" not in response.text
    return error["message"], error["details"][0]["target"]


def test_wrong_password(client, leaf, tmp_path):
    data = b64(openssl_pfx(tmp_path, leaf))
    message, target = _refusal(put(client, "c", {"data": data, "password": "wrong-password"}))
    assert "password is wrong" in message and target == "password"
    message, target = _refusal(put(client, "c", {"data": data}))
    assert "password is required" in message and target == "password"
    assert client.get("/certificates/c").status_code == 404


def test_garbage_base64(client):
    message, target = _refusal(
        put(client, "c", {"data": "this is %%% not base64", "password": "x"})
    )
    assert "not valid base64" in message and target == "data"


def test_not_a_pkcs12(client):
    message, target = _refusal(put(client, "c", {"data": b64(os.urandom(600)), "password": "x"}))
    assert "not a PKCS#12" in message and target == "data"


def test_pfx_without_private_key(client, leaf, tmp_path):
    cert, _ = leaf.write(tmp_path, "keyless")
    out = tmp_path / "keyless.pfx"
    subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-export",
            "-nokeys",
            "-in",
            str(cert),
            "-out",
            str(out),
            "-passout",
            f"pass:{PASSWORD}",
        ],
        check=True,
        capture_output=True,
    )
    message, _ = _refusal(put(client, "c", {"data": b64(out.read_bytes()), "password": PASSWORD}))
    assert "no private key" in message


def test_pfx_with_empty_chain(client, leaf, tmp_path):
    _, key = leaf.write(tmp_path, "lonely")
    out = tmp_path / "lonely.pfx"
    subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-export",
            "-nocerts",
            "-inkey",
            str(key),
            "-out",
            str(out),
            "-passout",
            f"pass:{PASSWORD}",
        ],
        check=True,
        capture_output=True,
    )
    message, _ = _refusal(put(client, "c", {"data": b64(out.read_bytes()), "password": PASSWORD}))
    assert "no certificate" in message


def test_missing_data_and_bad_shapes(client):
    message, target = _refusal(put(client, "c", {"password": "x"}))
    assert "'data' is required" in message and target == "data"
    _refusal(client.put("/certificates/c", content=b"{not json"))
    _refusal(client.put("/certificates/c", json={"properties": []}))
    _refusal(put(client, "c", {"data": 42}))
    bad_id = client.put("/certificates/a:b", json={"properties": {}})
    assert bad_id.status_code == 400 and bad_id.json()["error"]["details"][0]["target"] == (
        "certificateId"
    )


def test_ten_megabyte_upload_is_refused_without_harm(client, leaf):
    huge = b64(os.urandom(10 * 1024 * 1024))
    response = put(client, "huge", {"data": huge, "password": PASSWORD})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "RequestEntityTooLarge"
    assert "4 MiB" in response.json()["error"]["message"]
    after = put(client, "small", {"data": b64(leaf.pfx(PASSWORD)), "password": PASSWORD})
    assert after.status_code == 201
    assert client.get("/certificates/huge").status_code == 404


def test_chunked_upload_without_length_is_cut_off(client):
    def chunks():
        for _ in range(10):
            yield b"A" * (1024 * 1024)

    response = client.put("/certificates/chunked", content=chunks())
    assert response.status_code == 413
    assert client.get("/certificates/chunked").status_code == 404


def test_material_round_trips_through_the_store(server, client, leaf):
    from certgate.certs.stored import certificate_material

    put(client, "c1", {"data": b64(leaf.pfx(PASSWORD)), "password": PASSWORD})
    material = certificate_material(server.store.get("certificates/c1"))
    assert material.thumbprint == leaf.thumbprint
    assert material.private_key is not None
    assert [c.subject for c in material.chain] == [leaf.chain[0].subject]


def test_a_token_decryption_certificate_must_hold_its_private_key(client, leaf):
    """validate-jwt's decryption-keys name a certificate to decrypt with: one stored without its
    key is refused when the policy is saved, naming the attribute."""
    assert put(client, "public", {"data": b64(leaf.cert_pem)}).status_code == 201
    assert put(client, "full", {"data": b64(leaf.pfx(PASSWORD)), "password": PASSWORD}).is_success
    api = {"path": "shop", "serviceUrl": "https://backend.test"}
    assert client.put("/apis/shop", json={"properties": api}).status_code == 201
    policy = (
        "<policies><inbound><validate-jwt header-name='Authorization' "
        "require-signed-tokens='false'><decryption-keys><key certificate-id='{id}'/>"
        "</decryption-keys></validate-jwt></inbound></policies>"
    )
    path = "/apis/shop/policies/policy"
    refused = client.put(path, json={"properties": {"value": policy.format(id="public")}})
    assert refused.status_code == 400, refused.text
    assert "'certificate-id': certificate 'public' has no private key" in refused.text
    saved = client.put(path, json={"properties": {"value": policy.format(id="full")}})
    assert saved.status_code == 201, saved.text
