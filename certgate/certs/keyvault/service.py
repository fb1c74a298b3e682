"""Process start-up for key vaults: service credentials, the API's vault access, the refresher."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from certgate.certs.keyvault.credentials import VaultCredentials
from certgate.certs.keyvault.refresher import DEFAULT_INTERVAL, KeyVaultRefresher
from certgate.certs.keyvault.vault import KeyVault
from certgate.config.leases import Lease
from certgate.config.store import Store

log = logging.getLogger("certgate.keyvault")


def start_refresher(
    store: Store,
    *,
    interval: float = DEFAULT_INTERVAL,
    on_change: Callable[[], Awaitable[None]] | None = None,
    address: str | None = None,
    token_file: str | Path | None = None,
    role_id_file: str | Path | None = None,
    secret_id_file: str | Path | None = None,
    ca_cert: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    lease: Lease | None = None,
) -> KeyVaultRefresher:
    """Reads the service's vault credentials (arguments, then files, then VAULT_* environment),
    makes them the management API's vault access, and starts the refresher on the running loop.
    Call it from the event loop of the process serving the management API; `await .stop()`."""
    from certgate.management.keyvault import configure_key_vault, create_refresher

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
    configure_key_vault(KeyVault(credentials))
    refresher = create_refresher(store, refresh_interval=interval, on_change=on_change, lease=lease)
    refresher.start()
    return refresher
