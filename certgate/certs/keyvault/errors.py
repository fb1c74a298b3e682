"""Key vault failures, each with the `code` shown in `properties.keyVault.lastStatus.code`."""

from __future__ import annotations


class KeyVaultError(Exception):
    """A vault could not deliver a usable certificate. The message never contains a secret."""

    code = "KeyVaultError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidReference(KeyVaultError):
    """The secret identifier (or identity) is malformed: a client error, never retried."""

    code = "InvalidReference"


class AccessDenied(KeyVaultError):
    code = "AccessDenied"


class SecretNotFound(KeyVaultError):
    code = "SecretNotFound"


class VaultUnreachable(KeyVaultError):
    code = "VaultUnreachable"


class NotACertificate(KeyVaultError):
    code = "NotACertificate"


class NoPrivateKey(KeyVaultError):
    code = "NoPrivateKey"
