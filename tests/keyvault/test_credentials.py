"""The service's vault credentials: flags first, then files, then Vault's usual environment."""

from __future__ import annotations

import pytest

from certgate.certs.keyvault import InvalidReference, VaultCredentials


def test_vault_token_and_addr_from_the_environment():
    creds = VaultCredentials.from_env_and_files(
        environ={"VAULT_ADDR": "https://vault.internal:8200", "VAULT_TOKEN": "hvs.env"}
    )
    assert (creds.address, creds.token, creds.method) == (
        "https://vault.internal:8200",
        "hvs.env",
        "token",
    )
    assert "hvs.env" not in repr(creds)
    assert creds.serves("https://VAULT.internal:8200/v1/secret/data/x")
    assert not creds.serves("https://other:8200")


def test_flags_beat_files_beat_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("hvs.file\n")
    env = {"VAULT_TOKEN": "hvs.env", "VAULT_TOKEN_FILE": str(tmp_path / "missing")}
    assert VaultCredentials.from_env_and_files(token_file=token_file, environ=env).token == (
        "hvs.file"
    )
    assert VaultCredentials.from_env_and_files(token="hvs.flag", environ=env).token == "hvs.flag"
    with pytest.raises(InvalidReference, match="cannot read vault_token file"):
        VaultCredentials.from_env_and_files(environ=env)


def test_approle_from_files_and_default_address(tmp_path):
    (tmp_path / "role").write_text("role-123")
    (tmp_path / "secret").write_text("secret-456")
    creds = VaultCredentials.from_env_and_files(
        environ={
            "VAULT_ROLE_ID_FILE": str(tmp_path / "role"),
            "VAULT_SECRET_ID_FILE": str(tmp_path / "secret"),
            "VAULT_APPROLE_MOUNT": "gw-approle",
        }
    )
    assert (creds.role_id, creds.secret_id, creds.approle_mount, creds.method) == (
        "role-123",
        "secret-456",
        "gw-approle",
        "appRole",
    )
    assert creds.address == "https://127.0.0.1:8200"  # the default of Vault's own tools
    assert "secret-456" not in repr(creds)


def test_nothing_configured_and_half_an_approle():
    assert VaultCredentials.from_env_and_files(environ={}) is None
    with pytest.raises(InvalidReference, match="both a role-id and a secret-id"):
        VaultCredentials.from_env_and_files(environ={"VAULT_ROLE_ID": "r"})
