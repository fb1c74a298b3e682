"""Azure Key Vault secrets through the official `azure-keyvault-secrets` + `azure-identity` SDKs."""

from __future__ import annotations

import threading
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import (
    CredentialUnavailableError,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from azure.keyvault.secrets import SecretClient

from certgate.certs.keyvault.errors import (
    AccessDenied,
    SecretNotFound,
    VaultUnreachable,
)
from certgate.certs.keyvault.reference import AzureReference
from certgate.certs.keyvault.secret import FetchedSecret, from_azure_value


class AzureKeyVaultProvider:
    """`identity_client_id` selects a user-assigned managed identity; None means the default
    credential chain (environment, workload identity, system-assigned managed identity, ...).

    `client_options` go to every `SecretClient` (azure-core transport/pipeline keywords such as
    `connection_verify`, `retry_total`, `verify_challenge_resource`). Key Vault has no
    metadata-only read of the latest version, so `current_version` is a GET of the secret; it is
    parsed only when its version changed."""

    def __init__(self, **client_options: Any) -> None:
        self.client_options = {"retry_total": 2, **client_options}
        self._clients: dict[tuple[str, str | None], SecretClient] = {}
        self._credentials: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    def fetch(self, ref: AzureReference, identity_client_id: str | None) -> FetchedSecret:
        secret = self._get(ref, identity_client_id)
        return from_azure_value(secret.value, self._version(secret))

    def current_version(self, ref: AzureReference, identity_client_id: str | None) -> str:
        if ref.version is not None:
            return ref.version
        return self._version(self._get(ref, identity_client_id))

    @staticmethod
    def _version(secret) -> str:
        return secret.properties.version or ""

    def _get(self, ref: AzureReference, identity_client_id: str | None):
        client = self._client(ref.vault_url, identity_client_id)
        try:
            secret = client.get_secret(ref.name, ref.version or "")
        except ResourceNotFoundError:
            raise SecretNotFound(f"no secret at '{ref.identifier}'") from None
        except (ClientAuthenticationError, CredentialUnavailableError) as error:
            raise AccessDenied(
                f"no token for Azure Key Vault {ref.vault_url}: {_first_line(error)}"
            ) from None
        except HttpResponseError as error:
            if error.status_code in (401, 403):
                raise AccessDenied(f"Azure Key Vault denied reading '{ref.identifier}'") from None
            if error.status_code == 404:
                raise SecretNotFound(f"no secret at '{ref.identifier}'") from None
            raise VaultUnreachable(
                f"Azure Key Vault {ref.vault_url} answered HTTP {error.status_code}"
            ) from None
        except (ServiceRequestError, ServiceResponseError) as error:
            raise VaultUnreachable(
                f"Azure Key Vault {ref.vault_url} is unreachable ({type(error).__name__})"
            ) from None
        except ValueError as error:  # the SDK's challenge-resource check
            raise AccessDenied(
                f"Azure Key Vault challenge rejected: {_first_line(error)}"
            ) from None
        return secret

    def _client(self, vault_url: str, identity_client_id: str | None) -> SecretClient:
        with self._lock:
            key = (vault_url, identity_client_id)
            if key not in self._clients:
                self._clients[key] = SecretClient(
                    vault_url, self._credential(identity_client_id), **self.client_options
                )
            return self._clients[key]

    def _credential(self, identity_client_id: str | None):
        if identity_client_id not in self._credentials:
            self._credentials[identity_client_id] = (
                ManagedIdentityCredential(client_id=identity_client_id)
                if identity_client_id
                else DefaultAzureCredential()
            )
        return self._credentials[identity_client_id]


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
