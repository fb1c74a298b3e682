"""Key vault certificates in the management API, and the `keyVaultIdentities` kind.

- `properties.keyVault` on `certificates/{id}` (a certificate source): the secret is fetched and
  parsed at PUT time; any failure is a 400 whose code names the reason and nothing is stored.
- `POST certificates/{id}/refreshSecret` re-reads the secret now and returns the contract.
- `GET certificates?isKeyVaultRefreshFailed=true` lists the certificates whose last refresh failed.
- `keyVaultIdentities/{id}` (a certgate extension): OpenBao/Vault credentials (a token, or an
  AppRole role-id + secret-id) for one vault address, sealed at rest and never returned.
  A certificate names one in `keyVault.identityClientId`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, overload

import anyio.to_thread

from certgate.certs.keyvault import (
    InvalidReference,
    KeyVault,
    KeyVaultError,
    VaultCredentials,
    VaultReference,
    parse_identifier,
)
from certgate.certs.keyvault.reference import LOOPBACK_HOSTS, normalize_origin
from certgate.certs.keyvault.secret import FetchedSecret
from certgate.config.leases import Lease
from certgate.config.store import Resource, Store
from certgate.management.certificates import (
    CERTIFICATES,
    SourcedCertificate,
    certificate_result,
    register_certificate_source,
)
from certgate.management.errors import ApiError, Detail, ValidationError
from certgate.management.keyvault_refresher import (
    DEFAULT_INTERVAL,
    SUCCESS,
    VERSION_SECRET,
    KeyVaultRefresher,
    expiry_note,
    is_key_vault_certificate,
    status,
    sync_certificate,
)
from certgate.management.kinds import Kind, Validated, WriteRequest, register

log = logging.getLogger("certgate.keyvault")

IDENTITY_KIND = "keyVaultIdentity"
IDENTITIES = "keyVaultIdentities"
CERTIFICATE_FIELDS = ("subject", "thumbprint", "expirationDate", "hasPrivateKey")


# -- wiring ------------------------------------------------------------------------------------
def key_vault(vault: KeyVault, store: Store) -> KeyVault:
    """`vault` (the service's access, `create_management_app(key_vault=...)`) resolving
    `identityClientId` through `store`."""
    return vault.with_identities(store_identities(store))


def create_refresher(
    store: Store,
    vault: KeyVault,
    *,
    refresh_interval: float = DEFAULT_INTERVAL,
    jitter: float = 0.1,
    on_change: Callable[[], Awaitable[None]] | None = None,
    lease: Lease | None = None,
) -> KeyVaultRefresher:
    """The background refresher for `store`, fetching through `vault` (`.start()` then
    `await .stop()`); run it in the one process that serves the management API. `on_change` as
    in `create_management_app`; `lease` makes it one refresher across the nodes sharing `store`."""
    return KeyVaultRefresher(
        store,
        key_vault(vault, store),
        apply=store_fetched,
        refresh_interval=refresh_interval,
        jitter=jitter,
        on_change=on_change,
        lease=lease,
    )


def store_fetched(properties: dict, secrets: dict, fetched: FetchedSecret) -> tuple[dict, dict]:
    """A fetched version in the certificates kind's stored form (sealed PEM, new thumbprint...)."""
    extra = {k: v for k, v in properties.items() if k not in CERTIFICATE_FIELDS}
    kept = {k: v for k, v in secrets.items() if k != "pem"}
    public, sealed = certificate_result(fetched.material, extra, kept)
    return public, {**sealed, VERSION_SECRET: fetched.version}


# -- certificates: properties.keyVault ----------------------------------------------------------
async def key_vault_source(request: WriteRequest) -> SourcedCertificate:
    settings = request.properties.get("keyVault")
    if not isinstance(settings, dict):
        raise ValidationError("'keyVault' must be an object with 'secretIdentifier'.", "keyVault")
    identifier = settings.get("secretIdentifier")
    if not isinstance(identifier, str) or not identifier.strip():
        raise ValidationError(
            "'keyVault.secretIdentifier' is required: the URL of the secret in the vault.",
            "keyVault.secretIdentifier",
        )
    client_id = settings.get("identityClientId")
    if client_id is not None and not isinstance(client_id, str):
        raise ValidationError(
            "'keyVault.identityClientId' must be a string.", "keyVault.identityClientId"
        )
    if request.properties.get("password"):
        raise ValidationError("'password' does not apply to a key vault certificate.", "password")
    identifier, client_id = identifier.strip(), (client_id or "").strip() or None
    vault = key_vault(request.key_vault, request.store)
    try:
        ref = parse_identifier(identifier)
    except InvalidReference as error:
        raise ValidationError(
            f"Invalid key vault reference: {error.message}.", "keyVault.secretIdentifier"
        ) from None
    try:
        await anyio.to_thread.run_sync(vault.check_identity, identifier, client_id)
    except InvalidReference as error:
        raise ValidationError(
            f"Invalid key vault identity: {error.message}.", "keyVault.identityClientId"
        ) from None
    try:
        fetched = await anyio.to_thread.run_sync(vault.fetch, identifier, client_id)
    except KeyVaultError as error:
        raise _fetch_failed(error) from None
    now = dt.datetime.now(dt.UTC)
    note = expiry_note(fetched.not_after, now)
    if note:
        log.warning("certificate %s: %s", request.name, note)
    key_vault_properties: dict[str, Any] = {"secretIdentifier": identifier}
    if client_id:
        key_vault_properties["identityClientId"] = client_id
    key_vault_properties["lastStatus"] = status(SUCCESS, note, now)
    named_identity = isinstance(ref, VaultReference) and client_id
    return SourcedCertificate(
        fetched.material,
        {"keyVault": key_vault_properties},
        {VERSION_SECRET: fetched.version},
        [f"{IDENTITIES}/{client_id}"] if named_identity else [],
    )


def _fetch_failed(error: KeyVaultError) -> ApiError:
    target = "keyVault.secretIdentifier"
    return ApiError(
        400,
        error.code,
        f"The key vault secret could not be used ({error.code}): {error.message}.",
        [Detail(error.code, target, error.message)],
        target,
    )


async def refresh_secret(request: WriteRequest) -> Validated:
    """`POST certificates/{id}/refreshSecret`: re-read now; the outcome is in `lastStatus`."""
    current = request.current
    if current is None or not is_key_vault_certificate(current):
        raise ValidationError(
            f"Certificate '{request.name}' has no key vault reference to refresh.", "keyVault"
        )
    vault = key_vault(request.key_vault, request.store)
    result = await anyio.to_thread.run_sync(
        lambda: sync_certificate(current, vault, force=True, apply=store_fetched)
    )
    assert result.properties is not None  # a forced check always has properties to write
    references = await anyio.to_thread.run_sync(request.store.references, request.path)
    return Validated(result.properties, result.secrets, references)


def refresh_failed(resource: Resource, value: str) -> bool:
    """`isKeyVaultRefreshFailed=true`: only key vault certificates whose last refresh failed;
    `false`: every other certificate."""
    wanted = value.strip().lower()
    if wanted not in ("true", "false"):
        raise ValidationError(
            "'isKeyVaultRefreshFailed' must be true or false.", "isKeyVaultRefreshFailed"
        )
    last = (resource.properties.get("keyVault") or {}).get("lastStatus") or {}
    failed = is_key_vault_certificate(resource) and last.get("code") not in (None, SUCCESS)
    return failed == (wanted == "true")


# -- keyVaultIdentities ------------------------------------------------------------------------
def store_identities(store: Store):
    """`identityClientId` -> the stored identity's credentials (None when there is none)."""

    def lookup(identity_id: str) -> VaultCredentials | None:
        resource = store.get(f"{IDENTITIES}/{identity_id}")
        return identity_credentials(resource) if resource is not None else None

    return lookup


def identity_credentials(resource: Resource) -> VaultCredentials:
    properties, secrets = resource.properties, resource.secrets
    return VaultCredentials(
        address=properties["vaultAddress"],
        token=secrets.get("token"),
        role_id=secrets.get("roleId"),
        secret_id=secrets.get("secretId"),
        approle_mount=properties.get("appRoleMount") or "approle",
        namespace=properties.get("namespace"),
    )


def validate_identity(request: WriteRequest) -> Validated:
    properties = request.properties
    address = _string(properties, "vaultAddress", required=True)
    try:
        origin = normalize_origin(address)
    except InvalidReference:
        raise ValidationError(
            "'vaultAddress' must be the vault's https:// address (e.g. https://vault:8200).",
            "vaultAddress",
        ) from None
    host = origin.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
    if origin.startswith("http:") and host not in LOOPBACK_HOSTS:
        raise ValidationError(
            "'vaultAddress' must use https (http only for 127.0.0.1/localhost).", "vaultAddress"
        )
    token = _string(properties, "token")
    role_id, secret_id = _string(properties, "roleId"), _string(properties, "secretId")
    if token and (role_id or secret_id):
        raise ValidationError("Give either 'token' or 'roleId' + 'secretId', not both.", "token")
    if token:
        secrets = {"token": token}
    elif role_id or secret_id:
        if not (role_id and secret_id):
            missing = "secretId" if role_id else "roleId"
            raise ValidationError("AppRole needs both 'roleId' and 'secretId'.", missing)
        secrets = {"roleId": role_id, "secretId": secret_id}
    elif request.method == "PATCH" and request.current is not None:
        if normalize_origin(request.current.properties["vaultAddress"]) != origin:
            raise ValidationError(
                "Changing 'vaultAddress' requires new credentials ('token', or 'roleId' + "
                "'secretId'): stored credentials are never sent to another vault.",
                "vaultAddress",
            )
        secrets = dict(request.current.secrets)
    else:
        raise ValidationError(
            "Credentials are required: 'token', or 'roleId' + 'secretId' (AppRole).", "token"
        )
    public = {
        "vaultAddress": address.strip(),
        "authentication": "token" if "token" in secrets else "appRole",
    }
    for name in ("appRoleMount", "namespace", "description"):
        value = _string(properties, name)
        if value:
            public[name] = value
    if public["authentication"] == "token":
        public.pop("appRoleMount", None)
    return Validated(public, secrets)


@overload
def _string(properties: dict, name: str, *, required: Literal[True]) -> str: ...
@overload
def _string(properties: dict, name: str, *, required: bool = False) -> str | None: ...
def _string(properties: dict, name: str, *, required: bool = False) -> str | None:
    value = properties.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise ValidationError(f"'{name}' is required.", name)
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"'{name}' must be a non-empty string.", name)
    return value.strip()


register_certificate_source("keyVault", key_vault_source)
CERTIFICATES.actions["refreshSecret"] = refresh_secret
CERTIFICATES.list_params["isKeyVaultRefreshFailed"] = refresh_failed
if CERTIFICATES.schema is not None:
    CERTIFICATES.schema["properties"]["keyVault"] = {
        "type": "object",
        "description": "Key vault reference (OpenBao/Vault KV v2 or Azure Key Vault)",
        "properties": {
            "secretIdentifier": {"type": "string"},
            "identityClientId": {"type": "string"},
            "lastStatus": {"type": "object", "readOnly": True},
        },
    }

KEY_VAULT_IDENTITIES = register(
    Kind(
        name=IDENTITY_KIND,
        pattern=f"{IDENTITIES}/{{identityId}}",
        arm_type="Microsoft.ApiManagement/service/keyVaultIdentities",
        validate=validate_identity,
        title="KeyVaultIdentity",
        description="certgate extension: OpenBao/Vault credentials, write-only, sealed at rest",
        schema={
            "type": "object",
            "properties": {
                "vaultAddress": {"type": "string"},
                "authentication": {
                    "type": "string",
                    "enum": ["token", "appRole"],
                    "readOnly": True,
                },
                "token": {"type": "string", "writeOnly": True},
                "roleId": {"type": "string", "writeOnly": True},
                "secretId": {"type": "string", "writeOnly": True},
                "appRoleMount": {"type": "string"},
                "namespace": {"type": "string"},
                "description": {"type": "string"},
            },
        },
    )
)
