"""The service's own vault access, built once at process start-up and passed to its users (the
management API and the refresher: `create_management_app(key_vault=...)`, `create_refresher`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from certgate.certs.keyvault.credentials import VaultCredentials
from certgate.certs.keyvault.vault import KeyVault

log = logging.getLogger("certgate.keyvault")


def service_key_vault(
    *,
    address: str | None = None,
    token_file: str | Path | None = None,
    role_id_file: str | Path | None = None,
    secret_id_file: str | Path | None = None,
    ca_cert: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> KeyVault:
    """The vault access with the service's credentials (arguments, then files, then VAULT_*
    environment); without any, stored identities and Azure still work."""
    credentials = VaultCredentials.from_env_and_files(
        address=address,
        token_file=token_file,
        role_id_file=role_id_file,
        secret_id_file=secret_id_file,
        ca_cert=ca_cert,
        environ=environ,
    )
    if credentials is None:
        log.info("key vault: no service credentials (stored identities and Azure still work)")
    else:
        log.info(
            "key vault: service %s credentials for %s", credentials.method, credentials.address
        )
    return KeyVault(credentials)
