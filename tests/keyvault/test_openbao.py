"""The OpenBao / Vault KV v2 provider against a real `bao server -dev`."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certgate.certs.keyvault import (
    AccessDenied,
    InvalidReference,
    KeyVault,
    NoPrivateKey,
    NotACertificate,
    SecretNotFound,
    VaultCredentials,
    VaultUnreachable,
)
from tests import pki
from tests.keyvault.bao import free_port

CA = pki.ca("Vault Test CA")


def test_pfx_layout_with_password(bao, key_vault):
    leaf = pki.server(CA, "api.example")
    version = bao.put_pfx("pfx/with-password", leaf.pfx("s3cret"), "s3cret")
    fetched = key_vault.fetch(bao.url("pfx/with-password"))
    assert fetched.version == str(version)
    assert fetched.layout == "pfx"
    assert fetched.material.thumbprint == leaf.thumbprint
    assert fetched.material.private_key is not None
    assert fetched.material.chain == ()


def test_pem_layout_issued_by_the_real_pki_engine(bao, key_vault):
    """The exact response of `pki/issue` stored in KV: certificate, private_key, ca_chain."""
    client = bao.client()
    if "pki/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": "87600h"})
        client.secrets.pki.generate_root(
            "internal", "Bao Root", extra_params={"ttl": "87600h"}, mount_point="pki"
        )
        client.secrets.pki.create_or_update_role(
            "gw", {"allowed_domains": "example", "allow_subdomains": True}, mount_point="pki"
        )
    issued = client.secrets.pki.generate_certificate(
        "gw", "api.example", extra_params={"ttl": "24h"}, mount_point="pki"
    )["data"]
    bao.put("pem/from-pki", issued)
    fetched = key_vault.fetch(bao.url("pem/from-pki"))
    cert = x509.load_pem_x509_certificate(issued["certificate"].encode())
    assert fetched.layout == "pem"
    assert fetched.material.thumbprint == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert [c.subject.rfc4514_string() for c in fetched.material.chain] == ["CN=Bao Root"]


def test_pem_layout_with_chain_list_and_rsa_key(bao, key_vault):
    intermediate = CA.issue("Vault Intermediate", ca=True)
    leaf = intermediate.issue("rsa.example", key_kind="rsa")
    bao.put(
        "pem/rsa",
        {
            "certificate": leaf.cert_pem.decode(),
            "private_key": leaf.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ).decode(),
            "ca_chain": [intermediate.cert_pem.decode(), CA.cert_pem.decode()],
        },
    )
    fetched = key_vault.fetch(bao.url("pem/rsa"))
    assert fetched.material.thumbprint == leaf.thumbprint
    assert len(fetched.material.chain) == 2


def test_pinned_version_reads_that_version(bao, key_vault):
    first, second = pki.server(CA, "v1.example"), pki.server(CA, "v2.example")
    v1 = bao.put_pfx("pinned", first.pfx(None))
    v2 = bao.put_pfx("pinned", second.pfx(None))
    assert key_vault.fetch(bao.url("pinned", v1)).material.thumbprint == first.thumbprint
    assert key_vault.fetch(bao.url("pinned")).material.thumbprint == second.thumbprint
    assert key_vault.current_version(bao.url("pinned", v1)) == str(v1)
    assert key_vault.current_version(bao.url("pinned")) == str(v2)


def test_current_version_reads_metadata_only(bao):
    """A token allowed the metadata but not the data still sees the version: the check is cheap."""
    bao.put_pfx("meta/only", pki.server(CA).pfx(None))
    token = bao.token("meta-only", 'path "secret/metadata/meta/*" { capabilities = ["read"] }')
    vault = KeyVault(VaultCredentials(address=bao.address, token=token))
    assert vault.current_version(bao.url("meta/only")) == "1"
    with pytest.raises(AccessDenied):
        vault.fetch(bao.url("meta/only"))


def test_token_without_read_permission_is_access_denied(bao):
    bao.put_pfx("denied", pki.server(CA).pfx(None))
    token = bao.token("other-path", 'path "secret/data/elsewhere" { capabilities = ["read"] }')
    vault = KeyVault(VaultCredentials(address=bao.address, token=token))
    with pytest.raises(AccessDenied) as caught:
        vault.fetch(bao.url("denied"))
    assert caught.value.code == "AccessDenied"
    assert token not in str(caught.value)
    with pytest.raises(AccessDenied):
        KeyVault(VaultCredentials(address=bao.address, token="wrong")).current_version(
            bao.url("denied")
        )


def test_missing_secret_is_secret_not_found(bao, key_vault):
    with pytest.raises(SecretNotFound):
        key_vault.fetch(bao.url("does/not/exist"))
    with pytest.raises(SecretNotFound):
        key_vault.current_version(bao.url("does/not/exist"))
    with pytest.raises(SecretNotFound):
        key_vault.fetch(f"{bao.address}/v1/nomount/data/x")


def test_soft_deleted_latest_version_is_secret_not_found(bao, key_vault):
    bao.put_pfx("soft", pki.server(CA).pfx(None))
    bao.client().secrets.kv.v2.delete_latest_version_of_secret("soft", mount_point="secret")
    with pytest.raises(SecretNotFound):
        key_vault.current_version(bao.url("soft"))
    with pytest.raises(SecretNotFound):
        key_vault.fetch(bao.url("soft"))


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        ({"username": "u", "password": "p"}, NotACertificate, "neither"),
        ({"pfx": "not base64!"}, NotACertificate, "base64"),
        ({"pfx": base64.b64encode(b"garbage").decode()}, NotACertificate, "not a PKCS#12"),
        ({"certificate": "hello", "private_key": "x"}, NotACertificate, "not a PEM"),
    ],
)
def test_not_a_certificate(bao, key_vault, data, error, reason):
    bao.put("junk", data)
    with pytest.raises(error, match=reason) as caught:
        key_vault.fetch(bao.url("junk"))
    assert caught.value.code == "NotACertificate"


def test_wrong_pfx_password_is_not_a_certificate_without_leaking_it(bao, key_vault):
    bao.put_pfx("wrong-password", pki.server(CA).pfx("right"), "wrong-one")
    with pytest.raises(NotACertificate, match="password") as caught:
        key_vault.fetch(bao.url("wrong-password"))
    assert "wrong-one" not in str(caught.value) and "right" not in str(caught.value)


def test_no_private_key(bao, key_vault):
    leaf = pki.server(CA)
    bao.put("nokey/pem", {"certificate": leaf.cert_pem.decode()})
    bao.put_pfx(
        "nokey/pfx",
        pkcs12.serialize_key_and_certificates(
            None, None, None, [leaf.cert], serialization.NoEncryption()
        ),
    )
    other = pki.server(CA)
    bao.put(
        "nokey/mismatch",
        {"certificate": leaf.cert_pem.decode(), "private_key": other.key_pem.decode()},
    )
    for path in ("nokey/pem", "nokey/pfx"):
        with pytest.raises(NoPrivateKey) as caught:
            key_vault.fetch(bao.url(path))
        assert caught.value.code == "NoPrivateKey"
    with pytest.raises(NotACertificate, match="match"):
        key_vault.fetch(bao.url("nokey/mismatch"))


def test_vault_unreachable():
    address = f"http://127.0.0.1:{free_port()}"
    vault = KeyVault(VaultCredentials(address=address, token="t"))
    with pytest.raises(VaultUnreachable, match="unreachable"):
        vault.fetch(f"{address}/v1/secret/data/c")


def test_service_token_is_never_sent_to_another_vault(bao, key_vault):
    other = f"http://127.0.0.1:{free_port()}/v1/secret/data/c"
    with pytest.raises(AccessDenied, match="no vault credentials for"):
        key_vault.fetch(other)


def test_no_credentials_and_unknown_identity(bao):
    with pytest.raises(AccessDenied, match="no vault credentials"):
        KeyVault(None).fetch(bao.url("anything"))
    with pytest.raises(InvalidReference, match="identityClientId 'ghost'"):
        KeyVault(None, identities=lambda _id: None).fetch(bao.url("anything"), "ghost")


def test_approle_login(bao):
    client = bao.client()
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    client.sys.create_or_update_policy(
        "gw-read", 'path "secret/data/approle/*" { capabilities = ["read"] }'
    )
    client.auth.approle.create_or_update_approle("gw", token_policies=["gw-read"])
    role_id = client.auth.approle.read_role_id("gw")["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("gw")["data"]["secret_id"]
    leaf = pki.server(CA, "approle.example")
    bao.put_pfx("approle/cert", leaf.pfx(None))
    identity = VaultCredentials(address=bao.address, role_id=role_id, secret_id=secret_id)
    vault = KeyVault(None, identities={"gw": identity}.get)
    assert vault.fetch(bao.url("approle/cert"), "gw").material.thumbprint == leaf.thumbprint
    assert vault.current_version(bao.url("approle/cert"), "gw") == "1"
    wrong = VaultCredentials(address=bao.address, role_id=role_id, secret_id="not-the-secret")
    with pytest.raises(AccessDenied, match="AppRole login") as caught:
        KeyVault(wrong).fetch(bao.url("approle/cert"))
    assert "not-the-secret" not in str(caught.value)
