"""Credentials for OpenBao / HashiCorp Vault: a token or an AppRole role-id + secret-id.

They are bound to one vault address: certgate sends them only to that origin, so a certificate
whose identifier names another host can never make the gateway hand its token to that host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from certgate.certs.keyvault.errors import InvalidReference
from certgate.certs.keyvault.reference import normalize_origin

DEFAULT_ADDRESS = "https://127.0.0.1:8200"  # the default of Vault's and OpenBao's own tools
DEFAULT_APPROLE_MOUNT = "approle"


@dataclass(frozen=True, repr=False)
class VaultCredentials:
    """A token, or AppRole `role_id` + `secret_id` (logged in on demand), for the vault at
    `address`."""

    address: str
    token: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    approle_mount: str = DEFAULT_APPROLE_MOUNT
    namespace: str | None = None
    ca_cert: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", normalize_origin(self.address))
        if bool(self.token) == bool(self.role_id and self.secret_id):
            raise InvalidReference("vault credentials need either a token or role-id + secret-id")

    def __repr__(self) -> str:
        method = "token" if self.token else "approle"
        return f"VaultCredentials(address={self.address!r}, method={method!r})"

    @property
    def method(self) -> str:
        return "token" if self.token else "appRole"

    def serves(self, origin: str) -> bool:
        return normalize_origin(origin) == self.address

    @classmethod
    def from_env_and_files(
        cls,
        *,
        address: str | None = None,
        token: str | None = None,
        token_file: str | Path | None = None,
        role_id: str | None = None,
        role_id_file: str | Path | None = None,
        secret_id: str | None = None,
        secret_id_file: str | Path | None = None,
        approle_mount: str | None = None,
        namespace: str | None = None,
        ca_cert: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> VaultCredentials | None:
        """The service's own vault credentials, from flags (arguments) first, then files, then
        the environment Vault's tools read: VAULT_ADDR, VAULT_TOKEN, VAULT_ROLE_ID,
        VAULT_SECRET_ID, VAULT_APPROLE_MOUNT, VAULT_NAMESPACE, VAULT_CACERT, and the
        `*_FILE` variants VAULT_TOKEN_FILE / VAULT_ROLE_ID_FILE / VAULT_SECRET_ID_FILE.
        Returns None when no token or AppRole pair is configured."""
        env = os.environ if environ is None else environ

        def pick(value, file, name: str) -> str | None:
            if value:
                return value
            path = file or env.get(f"{name}_FILE")
            if path:
                try:
                    return Path(path).read_text().strip() or None
                except OSError as error:
                    raise InvalidReference(
                        f"cannot read {name.lower()} file '{path}': {error.strerror}"
                    ) from None
            return env.get(name) or None

        token = pick(token, token_file, "VAULT_TOKEN")
        role_id = pick(role_id, role_id_file, "VAULT_ROLE_ID")
        secret_id = pick(secret_id, secret_id_file, "VAULT_SECRET_ID")
        if not token and not (role_id and secret_id):
            if role_id or secret_id:
                raise InvalidReference("AppRole login needs both a role-id and a secret-id")
            return None
        return cls(
            address=address or env.get("VAULT_ADDR") or DEFAULT_ADDRESS,
            token=token,
            role_id=None if token else role_id,
            secret_id=None if token else secret_id,
            approle_mount=approle_mount or env.get("VAULT_APPROLE_MOUNT") or DEFAULT_APPROLE_MOUNT,
            namespace=namespace or env.get("VAULT_NAMESPACE") or None,
            ca_cert=str(ca_cert) if ca_cert else env.get("VAULT_CACERT") or None,
        )
