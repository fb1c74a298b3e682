"""The service resource (`/` and the ARM service root): CA certificates, hostnames, client trust.

Stored properties (what the Snapshot compiler reads):
- `certificates`: `[{storeName: Root|CertificateAuthority, encodedCertificate: base64 DER,
  certificate: {expiry, subject, thumbprint}}]` (no cap; the password and any key are dropped);
- `hostnameConfigurations`: `[{type: Proxy, hostName, certificateId (as sent, or absent = the dev
  server certificate; `certificate_path()` resolves it), negotiateClientCertificate,
  defaultSslBinding}]`;
- `clientCertificateTrust`: `{useSystemRoots (default true), requireRevocationInformation
  (default false), extendedKeyUsages (optional list of OIDs; absent or [] = unchecked, as APIM)}`,
  a certgate extension (see docs/verification.md);
- `accessLog`: `{enabled (default true)}`, a certgate extension: switches the gateway's access log
  (`certgate serve --access-log`, which names where it goes) on and off without a restart.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from cryptography.hazmat.primitives import serialization

from certgate.certs.stored import certificate_path
from certgate.config.store import Resource
from certgate.management.certificates import decode_data, iso_z, load_uploaded
from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register

STORE_NAMES = {"root": "Root", "certificateauthority": "CertificateAuthority"}
TRUST_DEFAULTS = {"useSystemRoots": True, "requireRevocationInformation": False}
ACCESS_LOG_DEFAULTS = {"enabled": True}
_HOSTNAME = re.compile(
    r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)


def validate(request: WriteRequest) -> Validated:
    properties = request.properties
    current = request.current.properties if request.current else {}
    certificates = _ca_certificates(
        _list(properties, "certificates"), current.get("certificates", [])
    )
    hostnames, references = _hostnames(request, _list(properties, "hostnameConfigurations"))
    trust = _trust(properties.get("clientCertificateTrust") or {})
    stored = {
        "certificates": certificates,
        "hostnameConfigurations": hostnames,
        "clientCertificateTrust": trust,
        "accessLog": _access_log(properties.get("accessLog") or {}),
    }
    return Validated(stored, None, references)


def present(resource: Resource) -> dict:
    properties = resource.properties
    return {
        "provisioningState": "Succeeded",
        "certificates": [
            {
                "storeName": c["storeName"],
                "encodedCertificate": None,
                "certificate": c["certificate"],
            }
            for c in properties.get("certificates", [])
        ],
        "hostnameConfigurations": properties.get("hostnameConfigurations", []),
        "clientCertificateTrust": properties.get("clientCertificateTrust", dict(TRUST_DEFAULTS)),
        "accessLog": properties.get("accessLog", dict(ACCESS_LOG_DEFAULTS)),
    }


def _list(properties: dict, name: str) -> list:
    value = properties.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValidationError(f"'{name}' must be a list of objects.", name)
    return value


def _ca_certificates(entries: list[dict], existing: list[dict]) -> list[dict]:
    known = {c["certificate"]["thumbprint"]: c for c in existing}
    result, seen = [], set()
    for index, entry in enumerate(entries):
        target = f"certificates[{index}]"
        store = STORE_NAMES.get(str(entry.get("storeName", "")).lower())
        if store is None:
            raise ValidationError(
                f"'{target}.storeName' must be Root or CertificateAuthority.",
                f"{target}.storeName",
            )
        if entry.get("encodedCertificate"):
            data = decode_data(entry["encodedCertificate"], f"{target}.encodedCertificate")
            material = load_uploaded(
                data,
                entry.get("certificatePassword"),
                f"{target}.encodedCertificate",
                f"{target}.certificatePassword",
            )
            der = material.certificate.public_bytes(serialization.Encoding.DER)
            stored: dict[str, Any] = {
                "storeName": store,
                "encodedCertificate": base64.b64encode(der).decode(),
                "certificate": {
                    "expiry": iso_z(material.not_after),
                    "subject": material.subject,
                    "thumbprint": material.thumbprint,
                },
            }
        else:
            thumbprint = str((entry.get("certificate") or {}).get("thumbprint", "")).upper()
            if thumbprint not in known:
                raise ValidationError(
                    f"'{target}.encodedCertificate' is required (base64 DER, or a PFX with "
                    "'certificatePassword').",
                    f"{target}.encodedCertificate",
                )
            stored = {**known[thumbprint], "storeName": store}
        key = (store, stored["certificate"]["thumbprint"])
        if key in seen:
            raise ValidationError(f"'{target}' is listed twice in {store}.", target)
        seen.add(key)
        result.append(stored)
    return result


def _hostnames(request: WriteRequest, entries: list[dict]) -> tuple[list[dict], list[str]]:
    result, references, names = [], [], set()
    for index, entry in enumerate(entries):
        target = f"hostnameConfigurations[{index}]"
        kind = str(entry.get("type", "Proxy"))
        if kind.lower() != "proxy":
            raise ValidationError(
                f"'{target}.type' must be Proxy (the only hostname type certgate serves).",
                f"{target}.type",
            )
        host = entry.get("hostName")
        if not isinstance(host, str) or not _HOSTNAME.match(host) or len(host) > 253:
            raise ValidationError(
                f"'{target}.hostName' is not a valid host name.", f"{target}.hostName"
            )
        if host.lower() in names:
            raise ValidationError(
                f"'{target}.hostName' {host} is configured twice.", f"{target}.hostName"
            )
        names.add(host.lower())
        stored: dict[str, Any] = {
            "type": "Proxy",
            "hostName": host,
            "negotiateClientCertificate": _bool(entry, "negotiateClientCertificate", False, target),
            "defaultSslBinding": _bool(entry, "defaultSslBinding", False, target),
        }
        if entry.get("certificateId"):
            stored["certificateId"] = str(entry["certificateId"])
            path = certificate_path(stored["certificateId"])
            path = request.store.canonical(path) or path
            certificate = request.store.get(path)
            if certificate is None or certificate.kind != "certificate":
                raise ValidationError(
                    f"Certificate with id '{path.split('/', 1)[1]}' not found.",
                    f"{target}.certificateId",
                )
            if not certificate.properties.get("hasPrivateKey"):
                raise ValidationError(
                    f"Certificate '{path.split('/', 1)[1]}' has no private key; a hostname "
                    "needs one.",
                    f"{target}.certificateId",
                )
            references.append(path)
        result.append(stored)
    if sum(1 for h in result if h["defaultSslBinding"]) > 1:
        raise ValidationError(
            "Only one hostname configuration may have defaultSslBinding true.",
            "hostnameConfigurations",
        )
    return result, references


def _trust(value: object) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(
            "'clientCertificateTrust' must be an object.", "clientCertificateTrust"
        )
    trust: dict[str, bool | list[str]] = {
        name: _bool(value, name, default, "clientCertificateTrust")
        for name, default in TRUST_DEFAULTS.items()
    }
    usages = value.get("extendedKeyUsages")
    if usages is not None:
        target = "clientCertificateTrust.extendedKeyUsages"
        if not isinstance(usages, list) or not all(
            isinstance(u, str) and re.fullmatch(r"[0-2](\.\d+)+", u) for u in usages
        ):
            raise ValidationError(f"'{target}' must be a list of dotted OIDs.", target)
        trust["extendedKeyUsages"] = usages
    return trust


def _access_log(value: object) -> dict:
    if not isinstance(value, dict):
        raise ValidationError("'accessLog' must be an object.", "accessLog")
    return {
        name: _bool(value, name, default, "accessLog")
        for name, default in ACCESS_LOG_DEFAULTS.items()
    }


def access_log_enabled(service_properties: dict) -> bool:
    """Whether the gateway writes its access log (where `--access-log` names a destination)."""
    return bool((service_properties.get("accessLog") or ACCESS_LOG_DEFAULTS)["enabled"])


def _bool(entry: dict, name: str, default: bool, target: str) -> bool:
    value = entry.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(f"'{target}.{name}' must be true or false.", f"{target}.{name}")
    return value


SERVICE = register(
    Kind(
        name="service",
        pattern="",
        arm_type="Microsoft.ApiManagement/service",
        validate=validate,
        present=present,
        description="The service: CA certificates, hostname configurations, client trust",
    )
)
