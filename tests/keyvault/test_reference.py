"""Secret identifiers: the forms users type, and the clear errors for the ones that are wrong."""

from __future__ import annotations

import pytest

from certgate.certs.keyvault import (
    AzureReference,
    InvalidReference,
    VaultReference,
    parse_identifier,
)


def test_vault_kv2_identifier_follows_latest_without_version():
    ref = parse_identifier("https://vault.example:8200/v1/secret/data/apps/gw/server")
    assert isinstance(ref, VaultReference)
    assert (ref.origin, ref.mount, ref.path, ref.version) == (
        "https://vault.example:8200",
        "secret",
        "apps/gw/server",
        None,
    )
    assert not ref.pinned


def test_vault_identifier_with_version_is_pinned_and_nested_mounts_work():
    ref = parse_identifier("https://vault.example/v1/team/kv/data/cert?version=3")
    assert (ref.origin, ref.mount, ref.path, ref.version) == (
        "https://vault.example:443",
        "team/kv",
        "cert",
        3,
    )
    assert ref.pinned


def test_http_is_accepted_for_loopback_only():
    assert parse_identifier("http://127.0.0.1:8200/v1/secret/data/c").origin == (
        "http://127.0.0.1:8200"
    )
    with pytest.raises(InvalidReference, match="https"):
        parse_identifier("http://vault.example:8200/v1/secret/data/c")


def test_azure_identifier_with_and_without_version():
    latest = parse_identifier("https://contoso.vault.azure.net/secrets/gw-cert")
    pinned = parse_identifier(
        "https://contoso.vault.azure.net/secrets/gw-cert/0123456789abcdef0123456789abcdef"
    )
    assert isinstance(latest, AzureReference)
    assert (latest.vault_url, latest.name, latest.pinned) == (
        "https://contoso.vault.azure.net",
        "gw-cert",
        False,
    )
    assert pinned.version == "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("identifier", "reason"),
    [
        ("", "non-empty"),
        ("ftp://vault/v1/secret/data/c", "https"),
        ("https://vault.example/v1/secret/c", "data"),
        ("https://vault.example/v1/secret/data/c?version=x", "version=N"),
        ("https://vault.example/v1/secret/data/c?version=0", "version=N"),
        ("https://vault.example/v1/secret/data/c?other=1", "version=N"),
        ("https://user:pw@vault.example/v1/secret/data/c", "credentials"),
        ("https://evil.example/secrets/name", "vault.azure.net"),
        ("https://contoso.vault.azure.net/secrets/a/b/c", "secrets/<name>"),
        ("https://vault.example/other", "KV v2"),
    ],
)
def test_malformed_identifiers_name_the_problem(identifier, reason):
    with pytest.raises(InvalidReference, match=reason) as caught:
        parse_identifier(identifier)
    assert caught.value.code == "InvalidReference"
