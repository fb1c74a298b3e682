"""One entry point for every vault: an identifier goes to its provider with the right identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from certgate.certs.keyvault.azure import AzureKeyVaultProvider
from certgate.certs.keyvault.credentials import VaultCredentials
from certgate.certs.keyvault.errors import AccessDenied, InvalidReference
from certgate.certs.keyvault.openbao import OpenBaoProvider
from certgate.certs.keyvault.reference import (
    AzureReference,
    SecretReference,
    VaultReference,
    parse_identifier,
)
from certgate.certs.keyvault.secret import FetchedSecret

IdentityLookup = Callable[[str], VaultCredentials | None]


class KeyVault:
    """`fetch` / `current_version` for a `secretIdentifier` and an optional `identityClientId`.

    For OpenBao/Vault, `identityClientId` names a stored identity (`keyVaultIdentities/{id}`,
    resolved through `identities`); without one the service's own credentials are used. For
    Azure Key Vault it is the client id of a user-assigned managed identity; without one the
    default credential chain is used."""

    def __init__(
        self,
        service_credentials: VaultCredentials | None = None,
        *,
        identities: IdentityLookup | None = None,
        openbao: OpenBaoProvider | None = None,
        azure: AzureKeyVaultProvider | None = None,
    ) -> None:
        self.service_credentials = service_credentials
        self.identities = identities
        self.openbao = openbao or OpenBaoProvider()
        self.azure = azure or AzureKeyVaultProvider()

    def with_identities(self, identities: IdentityLookup) -> KeyVault:
        """The same providers (and token caches), resolving identities through `identities`."""
        return KeyVault(
            self.service_credentials, identities=identities, openbao=self.openbao, azure=self.azure
        )

    def fetch(self, identifier: str, identity_client_id: str | None = None) -> FetchedSecret:
        ref = parse_identifier(identifier)
        if isinstance(ref, AzureReference):
            return self.azure.fetch(ref, identity_client_id)
        return self.openbao.fetch(ref, self._vault_credentials(ref, identity_client_id))

    def current_version(self, identifier: str, identity_client_id: str | None = None) -> str:
        ref = parse_identifier(identifier)
        if isinstance(ref, AzureReference):
            return self.azure.current_version(ref, identity_client_id)
        return self.openbao.current_version(ref, self._vault_credentials(ref, identity_client_id))

    def check_identity(self, identifier: str, identity_client_id: str | None) -> SecretReference:
        """Validates the pair without contacting the vault (for 400 ValidationError on PUT)."""
        ref = parse_identifier(identifier)
        if isinstance(ref, VaultReference) and identity_client_id:
            self._vault_credentials(ref, identity_client_id)
        return ref

    def _vault_credentials(self, ref: VaultReference, identity_client_id: str | None):
        if identity_client_id:
            found = self.identities(identity_client_id) if self.identities else None
            if found is None:
                raise InvalidReference(
                    f"identityClientId '{identity_client_id}' names no keyVaultIdentities entry"
                )
            service_ca = self.service_credentials and self.service_credentials.ca_cert
            if found.ca_cert is None and service_ca:
                return replace(found, ca_cert=service_ca)  # the operator's trusted vault CAs
            return found
        if self.service_credentials is None:
            raise AccessDenied(
                f"certgate has no vault credentials for {ref.origin}: configure a token or "
                "AppRole at start (VAULT_TOKEN, ...) or name a keyVaultIdentities entry"
            )
        return self.service_credentials
