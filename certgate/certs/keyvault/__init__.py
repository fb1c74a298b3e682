"""Key vault certificates: OpenBao / HashiCorp Vault KV v2 and Azure Key Vault, and their rotation.

See docs/keyvault.md. `KeyVault` fetches by `secretIdentifier`; the refresher that keeps the
stored certificates current works on the store and is in `certgate.management.keyvault_refresher`.
"""

from certgate.certs.keyvault.azure import AzureKeyVaultProvider
from certgate.certs.keyvault.credentials import VaultCredentials
from certgate.certs.keyvault.errors import (
    AccessDenied,
    InvalidReference,
    KeyVaultError,
    NoPrivateKey,
    NotACertificate,
    SecretNotFound,
    VaultUnreachable,
)
from certgate.certs.keyvault.openbao import OpenBaoProvider
from certgate.certs.keyvault.reference import AzureReference, VaultReference, parse_identifier
from certgate.certs.keyvault.secret import FetchedSecret
from certgate.certs.keyvault.vault import KeyVault

__all__ = [
    "AccessDenied",
    "AzureKeyVaultProvider",
    "AzureReference",
    "FetchedSecret",
    "InvalidReference",
    "KeyVault",
    "KeyVaultError",
    "NoPrivateKey",
    "NotACertificate",
    "OpenBaoProvider",
    "SecretNotFound",
    "VaultCredentials",
    "VaultReference",
    "VaultUnreachable",
    "parse_identifier",
]
