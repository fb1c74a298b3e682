"""Secret payloads -> certificate material: the layouts vaults hold certificates in."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from certgate.certs.keyvault.errors import NoPrivateKey, NotACertificate
from certgate.certs.material import CertificateLoadError, CertificateMaterial, load_certificate


@dataclass(frozen=True, repr=False)
class FetchedSecret:
    """One version of a vault secret, parsed; `layout` is `pfx` or `pem`."""

    material: CertificateMaterial
    version: str
    layout: str

    @property
    def not_after(self) -> dt.datetime:
        return self.material.not_after

    def __repr__(self) -> str:
        return f"FetchedSecret(version={self.version!r}, layout={self.layout!r})"


def from_vault_data(data: Any, version: str) -> FetchedSecret:
    """A KV v2 secret: `pfx` (base64) + optional `password`, or PEM `certificate` + `private_key`
    (+ optional `ca_chain`, a PEM string or a list of them, as Vault's PKI engine issues)."""
    if not isinstance(data, dict):
        raise NotACertificate("the secret holds no key/value data")
    if "pfx" in data:
        password = data.get("password") or None
        if password is not None and not isinstance(password, str):
            raise NotACertificate("the secret's 'password' field must be a string")
        return FetchedSecret(_load(_base64(data["pfx"], "pfx"), password), version, "pfx")
    if "certificate" in data:
        certificate = data["certificate"]
        if not isinstance(certificate, str) or not certificate.lstrip().startswith("-----BEGIN"):
            raise NotACertificate("the secret's 'certificate' field is not a PEM certificate")
        chain = data.get("ca_chain") or []
        chain = [chain] if isinstance(chain, str) else chain
        key = data.get("private_key") or ""
        if not isinstance(chain, list) or not all(isinstance(c, str) for c in [*chain, key]):
            raise NotACertificate("the secret's 'private_key' and 'ca_chain' must be PEM text")
        pem = "\n".join([certificate, *chain, key])
        return FetchedSecret(_load(pem.encode(), None), version, "pem")
    raise NotACertificate(
        "the secret holds neither 'pfx' (+ 'password') nor 'certificate' + 'private_key'"
    )


def from_azure_value(value: str | None, version: str) -> FetchedSecret:
    """An Azure Key Vault secret: base64 PKCS#12 (`application/x-pkcs12`, the form Key Vault
    certificates expose) or PEM text holding the certificate and its key
    (`application/x-pem-file`)."""
    if not value or not value.strip():
        raise NotACertificate("the secret is empty")
    if value.lstrip().startswith("-----BEGIN"):
        return FetchedSecret(_load(value.encode(), None), version, "pem")
    return FetchedSecret(_load(_base64(value, "value"), None), version, "pfx")


def _load(data: bytes, password: str | None) -> CertificateMaterial:
    try:
        material = load_certificate(data, password)
    except CertificateLoadError as error:
        if error.code == "NoPrivateKey":
            raise NoPrivateKey(
                f"the secret's certificate has no private key: {error.reason}"
            ) from None
        raise NotACertificate(f"the secret is not a usable certificate: {error.reason}") from None
    if material.private_key is None:
        raise NoPrivateKey("the secret holds a certificate without its private key")
    return material


def _base64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise NotACertificate(f"the secret's '{field}' field must be base64 text")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise NotACertificate(f"the secret's '{field}' field is not valid base64") from None
