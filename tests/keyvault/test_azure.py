"""The Azure Key Vault provider: the REAL azure-keyvault-secrets + azure-identity SDKs, driven
against a local HTTPS endpoint implementing the documented Key Vault secrets REST calls and the
App Service managed-identity token endpoint (tests/keyvault/azure_endpoint.py)."""

from __future__ import annotations

import base64

import pytest

from certgate.certs.keyvault import (
    AccessDenied,
    AzureKeyVaultProvider,
    KeyVault,
    NoPrivateKey,
    NotACertificate,
    SecretNotFound,
    VaultUnreachable,
)
from tests import pki
from tests.keyvault.azure_endpoint import LocalKeyVault, LocalManagedIdentity
from tests.keyvault.bao import free_port

CA = pki.ca("Azure Test CA")
USER_ASSIGNED = "5b3d7a5e-0000-4000-8000-00000000c11d"
AZURE_ENV = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
)


@pytest.fixture(scope="module")
def azure(tmp_path_factory):
    identity = LocalManagedIdentity({USER_ASSIGNED})
    with identity, LocalKeyVault(identity, tmp_path_factory.mktemp("azure")) as vault:
        yield vault


@pytest.fixture
def azure_vault(azure, monkeypatch) -> KeyVault:
    """certgate's KeyVault with the SDK trusting the local CA. `verify_challenge_resource=False`
    because the challenge names https://vault.azure.net while the vault is 127.0.0.1."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in azure.identity.environ().items():
        monkeypatch.setenv(name, value)
    provider = AzureKeyVaultProvider(
        connection_verify=str(azure.ca_file), verify_challenge_resource=False, retry_total=0
    )
    return KeyVault(azure=provider)


@pytest.fixture
def service_vault(azure_vault) -> KeyVault:
    """The management API (`api`) fetches through the Azure stand-in."""
    return azure_vault


def pfx_value(issued) -> str:
    return base64.b64encode(issued.pfx(None)).decode()


def test_default_credential_chain_reads_a_pfx_secret(azure, azure_vault):
    leaf = pki.server(CA, "az.example")
    version = azure.set_secret("gw-default", pfx_value(leaf))
    fetched = azure_vault.fetch(azure.identifier("gw-default"))
    assert fetched.material.thumbprint == leaf.thumbprint
    assert fetched.version == version
    assert fetched.layout == "pfx"
    # the SDK's 401 challenge round trip happened (the SDK caches a vault's challenge per process,
    # so in another test order it happened on an earlier fetch of this module)
    assert azure.challenges >= 1


def test_user_assigned_identity_by_client_id(azure, azure_vault):
    leaf = pki.server(CA, "ua.example")
    azure.set_secret("gw-ua", pfx_value(leaf))
    with pytest.raises(AccessDenied):  # the identity exists but has no access policy yet
        azure_vault.fetch(azure.identifier("gw-ua"), USER_ASSIGNED)
    azure.readers.add(USER_ASSIGNED)
    try:
        fetched = azure_vault.fetch(azure.identifier("gw-ua"), USER_ASSIGNED)
    finally:
        azure.readers.discard(USER_ASSIGNED)
    assert fetched.material.thumbprint == leaf.thumbprint
    with pytest.raises(AccessDenied):
        azure_vault.fetch(azure.identifier("gw-ua"), "00000000-0000-0000-0000-0000000000ff")


def test_pem_secret_and_pinned_version(azure, azure_vault):
    first, second = pki.server(CA, "pem1.example"), pki.server(CA, "pem2.example")
    v1 = azure.set_secret(
        "gw-pem", (first.cert_pem + first.key_pem).decode(), "application/x-pem-file"
    )
    v2 = azure.set_secret("gw-pem", pfx_value(second))
    pinned = azure_vault.fetch(azure.identifier("gw-pem", v1))
    assert (pinned.material.thumbprint, pinned.layout) == (first.thumbprint, "pem")
    assert azure_vault.fetch(azure.identifier("gw-pem")).material.thumbprint == second.thumbprint
    assert azure_vault.current_version(azure.identifier("gw-pem")) == v2
    assert azure_vault.current_version(azure.identifier("gw-pem", v1)) == v1


def test_failures_map_to_codes(azure, azure_vault):
    with pytest.raises(SecretNotFound):
        azure_vault.fetch(azure.identifier("missing"))
    azure.set_secret("not-cert", "hello", "text/plain")
    with pytest.raises(NotACertificate):
        azure_vault.fetch(azure.identifier("not-cert"))
    azure.set_secret("no-key", pki.server(CA).cert_pem.decode(), "application/x-pem-file")
    with pytest.raises(NoPrivateKey):
        azure_vault.fetch(azure.identifier("no-key"))
    with pytest.raises(VaultUnreachable):
        azure_vault.fetch(f"https://127.0.0.1:{free_port()}/secrets/any")


def test_sdk_default_refuses_a_challenge_from_a_non_vault_host(azure, monkeypatch):
    """Production keeps the SDK's check: a token for vault.azure.net goes to vault hosts only."""
    for name, value in azure.identity.environ().items():
        monkeypatch.setenv(name, value)
    azure.set_secret("gw-check", pfx_value(pki.server(CA)))
    tokens = len(azure.identity.tokens)
    strict = KeyVault(azure=AzureKeyVaultProvider(connection_verify=str(azure.ca_file)))
    with pytest.raises(AccessDenied, match="challenge"):
        strict.fetch(azure.identifier("gw-check"))
    assert len(azure.identity.tokens) == tokens  # no token was even requested


def test_certificate_by_azure_reference_through_the_api(azure, api):
    first, second = pki.server(CA, "api1.example"), pki.server(CA, "api2.example")
    azure.set_secret("gw-api", pfx_value(first))
    body = {"properties": {"keyVault": {"secretIdentifier": azure.identifier("gw-api")}}}
    created = api.put("/certificates/azure", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["thumbprint"] == first.thumbprint
    azure.set_secret("gw-api", pfx_value(second))
    refreshed = api.post("/certificates/azure/refreshSecret").json()["properties"]
    assert refreshed["thumbprint"] == second.thumbprint
    assert refreshed["keyVault"]["lastStatus"]["code"] == "Success"
