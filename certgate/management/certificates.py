"""The `certificates` kind: PFX / DER / PEM uploads, validated, with keys and passwords sealed.

Stored public properties: `subject`, `thumbprint`, `expirationDate`, `hasPrivateKey` (internal, not
presented), plus whatever a certificate source adds (e.g. `keyVault`). Sealed secrets: `pem`, the
certificate, its chain and the key (if any) as one PEM text; `certgate.certs.stored` reads it
back.

Extension point for other sources of certificate bytes (key vaults): `register_certificate_source`
claims a property name (`keyVault`); a PUT carrying it is handed to that source instead of `data`.
"""

from __future__ import annotations

import base64
import binascii
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio.to_thread

from certgate.certs.material import CertificateLoadError, CertificateMaterial, load_certificate
from certgate.config.store import Resource
from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register

# `hasPrivateKey` is a certgate extension (APIM shows it only in the portal)
PRESENTED = ("subject", "thumbprint", "expirationDate", "hasPrivateKey", "keyVault")


@dataclass
class SourcedCertificate:
    """What a certificate source returns: the material, public properties and secrets to keep."""

    material: CertificateMaterial
    properties: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)
    references: list[str] = field(default_factory=list)


CertificateSource = Callable[[WriteRequest], "SourcedCertificate | Awaitable[SourcedCertificate]"]
_sources: dict[str, CertificateSource] = {}


def register_certificate_source(property_name: str, source: CertificateSource) -> None:
    """Routes PUTs whose `properties` carry `property_name` to `source` (instead of `data`)."""
    _sources[property_name] = source


def certificate_result(
    material: CertificateMaterial, properties: dict | None = None, secrets: dict | None = None
) -> tuple[dict, dict]:
    """The stored form of a certificate, (properties, secrets); sources and actions
    (refreshSecret) store this."""
    public = {
        "subject": material.subject,
        "thumbprint": material.thumbprint,
        "expirationDate": iso_z(material.not_after),
        "hasPrivateKey": material.private_key is not None,
        **(properties or {}),
    }
    return public, {**(secrets or {}), "pem": material.to_pem().decode()}


def iso_z(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_data(value: object, target: str) -> bytes:
    """Base64 (whitespace allowed) or PEM text -> bytes; 400 naming `target` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"'{target}' must be a non-empty base64 string.", target)
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"'{target}' is not valid base64.", target) from None


def load_uploaded(data: bytes, password: object, target: str, password_target: str):
    """load_certificate with errors turned into 400s naming the field, never the password."""
    if password is not None and not isinstance(password, str):
        raise ValidationError(f"'{password_target}' must be a string.", password_target)
    try:
        return load_certificate(data, password or None)
    except CertificateLoadError as error:
        blamed = password_target if error.code in ("WrongPassword", "PasswordRequired") else target
        raise ValidationError(f"Invalid certificate: {error.reason}.", blamed) from None


async def validate(request: WriteRequest) -> Validated:
    properties = request.properties
    claimed = [name for name in properties if name in _sources]
    if claimed:
        if properties.get("data"):
            raise ValidationError(f"Give either 'data' or '{claimed[0]}', not both.", "data")
        result = _sources[claimed[0]](request)
        sourced = await result if inspect.isawaitable(result) else result
        public, secrets = certificate_result(sourced.material, sourced.properties, sourced.secrets)
        return Validated(public, secrets, list(sourced.references))
    if "keyVault" in properties:
        raise ValidationError("Key vault references are not available in this build.", "keyVault")
    if "data" not in properties:
        if request.method == "PATCH" and request.current is not None:
            return Validated(request.current.properties, request.current.secrets)
        raise ValidationError(
            "'data' is required: a base64 PFX (with 'password'), or a DER/PEM certificate.",
            "data",
        )
    data = decode_data(properties["data"], "data")
    material = await anyio.to_thread.run_sync(
        load_uploaded, data, properties.get("password"), "data", "password"
    )
    return Validated(*certificate_result(material))


def present(resource: Resource) -> dict:
    return {key: resource.properties[key] for key in PRESENTED if key in resource.properties}


CERTIFICATES = register(
    Kind(
        name="certificate",
        pattern="certificates/{certificateId}",
        arm_type="Microsoft.ApiManagement/service/certificates",
        validate=validate,
        present=present,
        filter_fields={
            "name": "string",
            "subject": "string",
            "thumbprint": "string",
            "expirationDate": "datetime",
        },
        description="Certificates: PFX with private key, or a DER/PEM certificate without one",
        schema={
            "type": "object",
            "properties": {
                "data": {"type": "string", "writeOnly": True, "description": "base64 PFX/DER/PEM"},
                "password": {"type": "string", "writeOnly": True},
                "subject": {"type": "string", "readOnly": True},
                "thumbprint": {"type": "string", "readOnly": True},
                "expirationDate": {"type": "string", "format": "date-time", "readOnly": True},
            },
        },
    )
)
