"""Key vault certificates and identities through the real management API (HTTPS) and OpenBao."""

from __future__ import annotations

import base64

import pytest

from tests import pki

CA = pki.ca("Mgmt KV CA")


def put_cert(api, name: str, key_vault: dict):
    return api.put(f"/certificates/{name}", json={"properties": {"keyVault": key_vault}})


def test_create_by_reference_pfx_layout(bao, api, management):
    leaf = pki.server(CA, "pfx.example")
    bao.put_pfx("mgmt/pfx", leaf.pfx("pw"), "pw")
    response = put_cert(api, "kv-pfx", {"secretIdentifier": bao.url("mgmt/pfx")})
    assert response.status_code == 201, response.text
    props = response.json()["properties"]
    assert props["thumbprint"] == leaf.thumbprint
    assert props["subject"] == "CN=pfx.example"
    assert props["keyVault"]["secretIdentifier"] == bao.url("mgmt/pfx")
    assert props["keyVault"]["lastStatus"]["code"] == "Success"
    assert props["keyVault"]["lastStatus"]["timeStampUtc"].endswith("Z")
    assert set(props) == {"subject", "thumbprint", "expirationDate", "hasPrivateKey", "keyVault"}
    stored = management.store.get("certificates/kv-pfx")
    assert stored.secrets["keyVaultVersion"] == "1"
    assert "BEGIN PRIVATE KEY" in stored.secrets["pem"]


def test_create_by_reference_pem_layout(bao, api):
    intermediate = CA.issue("Mgmt Intermediate", ca=True)
    leaf = intermediate.issue("pem.example")
    bao.put(
        "mgmt/pem",
        {
            "certificate": leaf.cert_pem.decode(),
            "private_key": leaf.key_pem.decode(),
            "ca_chain": [intermediate.cert_pem.decode()],
        },
    )
    response = put_cert(api, "kv-pem", {"secretIdentifier": bao.url("mgmt/pem")})
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["thumbprint"] == leaf.thumbprint


@pytest.mark.parametrize(
    ("seed", "code"),
    [
        (None, "SecretNotFound"),
        ({"username": "x"}, "NotACertificate"),
        ({"certificate": pki.server(CA).cert_pem.decode()}, "NoPrivateKey"),
    ],
)
def test_create_failures_are_400_with_the_reason_and_store_nothing(bao, api, seed, code):
    path = f"mgmt/bad-{code}"
    if seed:
        bao.put(path, seed)
    response = put_cert(api, "bad", {"secretIdentifier": bao.url(path)})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["details"][0]["target"] == "keyVault.secretIdentifier"
    assert api.get("/certificates/bad").status_code == 404


def test_create_with_unreachable_vault_and_bad_identifier(api):
    from tests.keyvault.bao import free_port

    response = put_cert(
        api, "bad", {"secretIdentifier": f"http://127.0.0.1:{free_port()}/v1/secret/data/x"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "AccessDenied"  # the service token is for bao only
    response = put_cert(api, "bad", {"secretIdentifier": "https://vault.example/v1/secret/x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ValidationError"
    assert response.json()["error"]["details"][0]["target"] == "keyVault.secretIdentifier"
    both = api.put(
        "/certificates/bad",
        json={"properties": {"data": "AAAA", "keyVault": {"secretIdentifier": "x"}}},
    )
    assert both.status_code == 400


def test_token_identity_is_write_only_sealed_and_used(bao, api, management):
    leaf = pki.server(CA, "identity.example")
    bao.put_pfx("mgmt/ident", leaf.pfx(None))
    token = bao.token("mgmt-ident", 'path "secret/data/mgmt/ident" { capabilities = ["read"] }')
    created = api.put(
        "/keyVaultIdentities/team-a",
        json={"properties": {"vaultAddress": bao.address, "token": token}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["properties"] == {"vaultAddress": bao.address, "authentication": "token"}
    assert token not in api.get("/keyVaultIdentities/team-a").text
    with management.store.engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "select properties, sealed from resources where path = 'keyVaultIdentities/team-a'"
        ).one()
    assert token not in raw[0] and token.encode() not in raw[1]

    response = put_cert(
        api,
        "by-identity",
        {"secretIdentifier": bao.url("mgmt/ident"), "identityClientId": "team-a"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["keyVault"]["identityClientId"] == "team-a"
    denied = put_cert(
        api, "denied", {"secretIdentifier": bao.url("mgmt/pfx"), "identityClientId": "team-a"}
    )
    assert denied.status_code == 400
    assert denied.json()["error"]["code"] == "AccessDenied"
    in_use = api.delete("/keyVaultIdentities/team-a", headers={"If-Match": "*"})
    assert in_use.status_code == 409
    unknown = put_cert(
        api, "ghost", {"secretIdentifier": bao.url("mgmt/ident"), "identityClientId": "ghost"}
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["details"][0]["target"] == "keyVault.identityClientId"


def test_approle_identity(bao, api):
    client = bao.client()
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    client.sys.create_or_update_policy(
        "mgmt-ar", 'path "secret/data/mgmt/*" { capabilities = ["read"] }'
    )
    client.auth.approle.create_or_update_approle("mgmt", token_policies=["mgmt-ar"])
    role_id = client.auth.approle.read_role_id("mgmt")["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("mgmt")["data"]["secret_id"]
    leaf = pki.server(CA, "approle.example")
    bao.put_pfx("mgmt/approle", leaf.pfx(None))
    missing = api.put(
        "/keyVaultIdentities/ar",
        json={"properties": {"vaultAddress": bao.address, "roleId": role_id}},
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["details"][0]["target"] == "secretId"
    created = api.put(
        "/keyVaultIdentities/ar",
        json={
            "properties": {"vaultAddress": bao.address, "roleId": role_id, "secretId": secret_id}
        },
    )
    assert created.status_code == 201
    assert created.json()["properties"]["authentication"] == "appRole"
    assert secret_id not in created.text and role_id not in created.text
    patched = api.patch("/keyVaultIdentities/ar", json={"properties": {"description": "team"}})
    assert patched.status_code == 200  # credentials kept without resending them
    response = put_cert(
        api, "ar-cert", {"secretIdentifier": bao.url("mgmt/approle"), "identityClientId": "ar"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["thumbprint"] == leaf.thumbprint


def test_refresh_secret_pinned_and_failed_filter(bao, api):
    first, second = pki.server(CA, "r1.example"), pki.server(CA, "r2.example")
    v1 = bao.put_pfx("mgmt/rotating", first.pfx(None))
    assert (
        put_cert(api, "latest", {"secretIdentifier": bao.url("mgmt/rotating")}).status_code == 201
    )
    pinned_url = bao.url("mgmt/rotating", v1)
    assert put_cert(api, "pinned", {"secretIdentifier": pinned_url}).status_code == 201
    bao.put_pfx("mgmt/rotating", second.pfx(None))

    refreshed = api.post("/certificates/latest/refreshSecret")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["properties"]["thumbprint"] == second.thumbprint
    assert refreshed.headers["ETag"]
    pinned = api.post("/certificates/pinned/refreshSecret")
    assert pinned.json()["properties"]["thumbprint"] == first.thumbprint

    bao.delete("mgmt/rotating")
    failed = api.post("/certificates/latest/refreshSecret").json()["properties"]
    assert failed["keyVault"]["lastStatus"]["code"] == "SecretNotFound"
    assert failed["thumbprint"] == second.thumbprint  # the last good certificate stays
    listed = api.get("/certificates", params={"isKeyVaultRefreshFailed": "true"}).json()
    assert [c["name"] for c in listed["value"]] == ["latest"]
    others = api.get("/certificates", params={"isKeyVaultRefreshFailed": "false"}).json()
    assert "latest" not in [c["name"] for c in others["value"]]
    assert api.get("/certificates", params={"isKeyVaultRefreshFailed": "maybe"}).status_code == 400

    plain = {"data": base64.b64encode(first.pfx("pw")).decode(), "password": "pw"}
    assert api.put("/certificates/plain", json={"properties": plain}).status_code == 201
    not_vault = api.post("/certificates/plain/refreshSecret")
    assert not_vault.status_code == 400


@pytest.mark.parametrize(
    ("properties", "target"),
    [
        ({"token": "t"}, "vaultAddress"),
        ({"vaultAddress": "http://vault.example:8200", "token": "t"}, "vaultAddress"),
        ({"vaultAddress": "not a url", "token": "t"}, "vaultAddress"),
        ({"vaultAddress": "https://vault.example"}, "token"),
        ({"vaultAddress": "https://vault.example", "token": "t", "roleId": "r"}, "token"),
    ],
)
def test_identity_validation_names_the_field(api, properties, target):
    response = api.put("/keyVaultIdentities/bad", json={"properties": properties})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["details"][0]["target"]) == ("ValidationError", target)
    assert '"t"' not in response.text
