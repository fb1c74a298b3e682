"""OpenBao / HashiCorp Vault KV v2 through `hvac`.

Redirects are followed only within the vault's origin (scheme, host, port): hvac sends the token in
`X-Vault-Token`, which `requests` keeps on every redirect, so a redirect to another origin (a
compromised or misconfigured node, an HA standby pointing at an address nobody configured) would
hand the token to it. Point certgate at the active node or a load balancer instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from certgate.certs.keyvault.credentials import VaultCredentials
from certgate.certs.keyvault.errors import (
    AccessDenied,
    InvalidReference,
    KeyVaultError,
    SecretNotFound,
    VaultUnreachable,
)
from certgate.certs.keyvault.reference import VaultReference, normalize_origin
from certgate.certs.keyvault.secret import FetchedSecret, from_vault_data

T = TypeVar("T")
_TOKEN_MARGIN = 30.0  # log in again this many seconds before an AppRole token expires


class CrossOriginRedirect(requests.exceptions.RequestException):
    """The vault redirected to another origin; the request (and its token) is not sent there."""

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target  # the origin redirected to


class _SameOriginSession(requests.Session):
    def rebuild_auth(self, prepared_request, response) -> None:
        target = _origin(prepared_request.url)
        if target != _origin(response.request.url):
            raise CrossOriginRedirect(target, request=prepared_request, response=response)
        super().rebuild_auth(prepared_request, response)


def _origin(url: str) -> str:
    try:
        return normalize_origin(url)
    except (InvalidReference, ValueError):
        return "another address"


class OpenBaoProvider:
    """Reads certificates from KV v2. `current_version` reads only the secret's metadata."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._tokens: dict[VaultCredentials, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def fetch(self, ref: VaultReference, credentials: VaultCredentials) -> FetchedSecret:
        def read(client: hvac.Client) -> dict[str, Any]:
            return client.secrets.kv.v2.read_secret_version(
                ref.path, version=ref.version, mount_point=ref.mount, raise_on_deleted_version=True
            )

        body = self._call(ref, credentials, read)
        data = body.get("data") or {}
        version = str((data.get("metadata") or {}).get("version", ref.version or ""))
        return from_vault_data(data.get("data"), version)

    def current_version(self, ref: VaultReference, credentials: VaultCredentials) -> str:
        """The latest live version, from the metadata endpoint (falls back to a full read when
        the credentials may read the data but not the metadata)."""
        if ref.version is not None:
            return str(ref.version)

        def metadata(client: hvac.Client) -> dict[str, Any]:
            return client.secrets.kv.v2.read_secret_metadata(ref.path, mount_point=ref.mount)

        try:
            data = self._call(ref, credentials, metadata).get("data") or {}
        except AccessDenied:
            return self.fetch(ref, credentials).version
        current = str(data.get("current_version", ""))
        state = (data.get("versions") or {}).get(current) or {}
        if not current or current == "0" or state.get("deletion_time") or state.get("destroyed"):
            raise SecretNotFound(f"the latest version of '{ref.identifier}' is deleted")
        return current

    def _call(
        self, ref: VaultReference, credentials: VaultCredentials, action: Callable[[Any], T]
    ) -> T:
        if not credentials.serves(ref.origin):
            raise AccessDenied(
                f"no vault credentials for {ref.origin}: the service's credentials are for "
                f"{credentials.address}; name a keyVaultIdentities entry in identityClientId"
            )
        for attempt in (1, 2):
            client = hvac.Client(
                url=ref.origin,
                verify=credentials.ca_cert or True,
                timeout=self.timeout,
                namespace=credentials.namespace,
                session=_SameOriginSession(),
            )
            try:
                client.token = self._token(client, credentials)
                return action(client)
            except hvac.exceptions.Forbidden:
                if attempt == 1 and credentials.role_id:
                    self._forget(credentials)  # the AppRole token may have been revoked
                    continue
                raise AccessDenied(f"the vault denied reading '{ref.identifier}'") from None
            except hvac.exceptions.Unauthorized:
                raise AccessDenied(f"the vault denied reading '{ref.identifier}'") from None
            except hvac.exceptions.InvalidPath:
                raise SecretNotFound(f"no secret at '{ref.identifier}'") from None
            except (hvac.exceptions.VaultDown, hvac.exceptions.InternalServerError):
                raise VaultUnreachable(f"the vault at {ref.origin} is sealed or failing") from None
            except CrossOriginRedirect as error:
                raise VaultUnreachable(
                    f"the vault at {ref.origin} redirected to {error.target}; "
                    "certgate follows "
                    "redirects within the vault's origin only (configure the active node's address)"
                ) from None
            except requests.exceptions.SSLError:
                raise VaultUnreachable(
                    f"TLS to the vault at {ref.origin} failed (certificate not trusted?)"
                ) from None
            except requests.exceptions.RequestException as error:
                raise VaultUnreachable(
                    f"the vault at {ref.origin} is unreachable ({type(error).__name__})"
                ) from None
            except hvac.exceptions.VaultError as error:
                raise KeyVaultError(
                    f"the vault answered an unexpected {type(error).__name__} for "
                    f"'{ref.identifier}'"
                ) from None
            finally:
                client.adapter.close()
        raise AssertionError("unreachable")

    def _token(self, client: hvac.Client, credentials: VaultCredentials) -> str:
        if credentials.token:
            return credentials.token
        with self._lock:
            cached = self._tokens.get(credentials)
            if cached and cached[1] > time.monotonic():
                return cached[0]
        try:
            auth = client.auth.approle.login(
                credentials.role_id, credentials.secret_id, mount_point=credentials.approle_mount
            )["auth"]
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
            raise AccessDenied(
                f"AppRole login at {credentials.address} was refused (role-id/secret-id)"
            ) from None
        except hvac.exceptions.InvalidPath:
            raise AccessDenied(
                f"no AppRole auth mount '{credentials.approle_mount}' at {credentials.address}"
            ) from None
        ttl = float(auth.get("lease_duration") or 0) or 3600.0
        with self._lock:
            self._tokens[credentials] = (
                auth["client_token"],
                time.monotonic() + max(ttl - _TOKEN_MARGIN, 1.0),
            )
        return auth["client_token"]

    def _forget(self, credentials: VaultCredentials) -> None:
        with self._lock:
            self._tokens.pop(credentials, None)
