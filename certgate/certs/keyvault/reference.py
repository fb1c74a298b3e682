"""Secret identifiers: which vault, which secret, pinned to a version or following the latest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from certgate.certs.keyvault.errors import InvalidReference

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
AZURE_VAULT_SUFFIXES = (
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
)
_AZURE_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_AZURE_VERSION = re.compile(r"^[0-9A-Za-z]{1,64}$")


@dataclass(frozen=True)
class VaultReference:
    """OpenBao / HashiCorp Vault KV v2: `https://host:port/v1/<mount>/data/<path>[?version=N]`."""

    identifier: str
    origin: str
    mount: str
    path: str
    version: int | None

    @property
    def pinned(self) -> bool:
        return self.version is not None


@dataclass(frozen=True)
class AzureReference:
    """Azure Key Vault: `https://<vault>.vault.azure.net/secrets/<name>[/<version>]`."""

    identifier: str
    vault_url: str
    name: str
    version: str | None

    @property
    def origin(self) -> str:
        return self.vault_url

    @property
    def pinned(self) -> bool:
        return self.version is not None


SecretReference = VaultReference | AzureReference


def normalize_origin(url: str) -> str:
    """`scheme://host:port` in lower case with the default port made explicit, for comparisons."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidReference(f"'{url}' is not an http(s) address")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host.lower()}:{port}"


def parse_identifier(identifier: str) -> SecretReference:
    """Parses `properties.keyVault.secretIdentifier`; raises InvalidReference naming the problem."""
    if not isinstance(identifier, str) or not identifier.strip():
        raise InvalidReference("secretIdentifier must be a non-empty URL")
    try:
        parts = urlsplit(identifier.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as error:
        raise InvalidReference(f"secretIdentifier is not a valid URL: {error}") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidReference("secretIdentifier must be an https:// URL")
    if parts.username or parts.password or parts.fragment:
        raise InvalidReference("secretIdentifier must not carry credentials or a fragment")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise InvalidReference(
            "secretIdentifier must use https (http only for 127.0.0.1/localhost)"
        )
    if parts.path.startswith("/v1/"):
        return _vault(identifier, parts)
    if parts.path.startswith("/secrets/"):
        return _azure(identifier, parts, host)
    raise InvalidReference(
        "secretIdentifier must be 'https://host:port/v1/<mount>/data/<path>' (OpenBao/Vault KV v2)"
        " or 'https://<vault>.vault.azure.net/secrets/<name>[/<version>]' (Azure Key Vault)"
    )


def _vault(identifier: str, parts) -> VaultReference:
    rest = parts.path[len("/v1/") :]
    mount, sep, path = rest.partition("/data/")
    mount, path = mount.strip("/"), path.strip("/")
    if not sep or not mount or not path or "//" in path or ".." in path.split("/"):
        raise InvalidReference(
            "secretIdentifier for OpenBao/Vault must be 'https://host:port/v1/<mount>/data/<path>'"
        )
    version = None
    if parts.query:
        query = parse_qs(parts.query, keep_blank_values=True)
        values = query.get("version", [])
        if set(query) != {"version"} or len(values) != 1 or not values[0].isdigit():
            raise InvalidReference("secretIdentifier query may only be '?version=N' (N >= 1)")
        version = int(values[0])
        if version < 1:
            raise InvalidReference("secretIdentifier query may only be '?version=N' (N >= 1)")
    return VaultReference(identifier, normalize_origin(identifier), mount, path, version)


def _azure(identifier: str, parts, host: str) -> AzureReference:
    if parts.scheme != "https":
        raise InvalidReference("an Azure Key Vault secretIdentifier must use https")
    if not (host.endswith(AZURE_VAULT_SUFFIXES) or host in LOOPBACK_HOSTS):
        raise InvalidReference(
            "an Azure Key Vault secretIdentifier must name a '<vault>.vault.azure.net' host"
        )
    if parts.query:
        raise InvalidReference("an Azure Key Vault secretIdentifier takes no query")
    segments = parts.path[len("/secrets/") :].strip("/").split("/")
    if not 1 <= len(segments) <= 2 or not _AZURE_NAME.match(segments[0]):
        raise InvalidReference(
            "an Azure Key Vault secretIdentifier is '.../secrets/<name>[/<version>]'"
        )
    version = segments[1] if len(segments) == 2 else None
    if version is not None and not _AZURE_VERSION.match(version):
        raise InvalidReference("the Azure Key Vault secret version must be alphanumeric")
    port = f":{parts.port}" if parts.port else ""
    bracketed = f"[{host}]" if ":" in host else host
    return AzureReference(identifier, f"https://{bracketed}{port}", segments[0], version)
