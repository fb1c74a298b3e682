"""The `backends/{backendId}` kind: APIM's backend entity (ARM 2024-05-01 shape, type `Single`).

Credential values (`credentials.header`, `credentials.query`, `credentials.authorization.parameter`)
and `proxy.password` are sealed secrets: responses show them as `*****`, and a write that sends
`*****` back for an existing entry keeps the stored value, so GET -> edit -> PUT round-trips.
Certificates named by `credentials.certificateIds` (ids or ARM ids) or `credentials.certificate`
(thumbprints, ignored when ids are given) must exist and have a private key; they are indexed as
references, so deleting one is a 409 naming the backend.

The Snapshot compiler compiles each stored backend with `compile_backend` over
`runtime_properties(properties, secrets)` (`certgate.gateway.upstream.backend`), which puts the
sealed values back for the data plane.
"""

from __future__ import annotations

from typing import Any, Literal, overload
from urllib.parse import urlsplit

from certgate.certs.stored import certificate_path
from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register

MASK = "*****"
_MAX_CERTIFICATES = 32

_SCHEMA = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "maxLength": 2000},
        "protocol": {"type": "string", "enum": ["http", "soap"]},
        "type": {"type": "string", "enum": ["Single"]},
        "title": {"type": "string", "maxLength": 300},
        "description": {"type": "string", "maxLength": 2000},
        "resourceId": {"type": "string", "maxLength": 2000},
        "tls": {
            "type": "object",
            "properties": {
                "validateCertificateChain": {"type": "boolean"},
                "validateCertificateName": {"type": "boolean"},
            },
        },
        "credentials": {
            "type": "object",
            "properties": {
                "certificateIds": {"type": "array", "items": {"type": "string"}},
                "certificate": {"type": "array", "items": {"type": "string"}},
                "header": {"type": "object"},
                "query": {"type": "object"},
                "authorization": {
                    "type": "object",
                    "properties": {"scheme": {"type": "string"}, "parameter": {"type": "string"}},
                },
            },
        },
        "proxy": {
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "username": {"type": "string"},
                "password": {"type": "string"},
            },
        },
    },
    "required": ["url"],
}


@overload
def _text(
    props: dict, name: str, max_length: int, *, required: Literal[True], prefix: str = ""
) -> str: ...
@overload
def _text(
    props: dict, name: str, max_length: int, *, required: bool = False, prefix: str = ""
) -> str | None: ...
def _text(
    props: dict, name: str, max_length: int, *, required: bool = False, prefix: str = ""
) -> str | None:
    value = props.get(name)
    target = prefix + name
    if value is None:
        if required:
            raise ValidationError(f"'{target}' is required.", target)
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        raise ValidationError(
            f"'{target}' must be a string of 1 to {max_length} characters.", target
        )
    return value


def _absolute_url(value: str, target: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError as error:  # e.g. "Invalid IPv6 URL"
        raise ValidationError(f"'{target}' is not a valid URL ({error}).", target) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"'{target}' must be an absolute http or https URL.", target)
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValidationError(f"'{target}' has an invalid port.", target) from None
    return value


def _tls(props: dict) -> dict | None:
    tls = props.get("tls")
    if tls is None:
        return None
    if not isinstance(tls, dict):
        raise ValidationError("'tls' must be an object.", "tls")
    out = {}
    for name in ("validateCertificateChain", "validateCertificateName"):
        value = tls.get(name)
        if value is not None:
            if not isinstance(value, bool):
                raise ValidationError(f"'tls.{name}' must be true or false.", f"tls.{name}")
            out[name] = value
    return out


def _string_list(value: Any, target: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValidationError(f"'{target}' must be a list of non-empty strings.", target)
    if len(value) > _MAX_CERTIFICATES:
        raise ValidationError(f"'{target}' allows at most {_MAX_CERTIFICATES} entries.", target)
    return value


def _value_map(value: Any, target: str, kept: dict) -> dict[str, list[str]]:
    """`{name: [values]}`; a value `*****` keeps the stored value at that position."""
    if not isinstance(value, dict):
        raise ValidationError(f"'{target}' must map names to lists of strings.", target)
    out = {}
    for name, values in value.items():
        if isinstance(values, str):
            values = [values]
        if not name or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationError(f"'{target}.{name}' must be a list of strings.", target)
        stored = kept.get(name, [])
        resolved = []
        for index, item in enumerate(values):
            if item == MASK:
                if index >= len(stored):
                    raise ValidationError(f"'{target}.{name}' has no stored value to keep.", target)
                item = stored[index]
            if "\r" in item or "\n" in item:
                raise ValidationError(f"'{target}.{name}' must not contain line breaks.", target)
            resolved.append(item)
        out[name] = resolved
    return out


def _certificates(request: WriteRequest, credentials: dict) -> tuple[dict, list[str]]:
    """The certificate fields as given, and the store paths they reference."""
    out: dict[str, list[str]] = {}
    references = []
    ids = credentials.get("certificateIds")
    if ids is not None:
        out["certificateIds"] = _string_list(ids, "credentials.certificateIds")
        for reference in ids:
            path = certificate_path(reference)
            references.append(_usable(request, path, f"id '{path.split('/', 1)[1]}'"))
    thumbprints = credentials.get("certificate")
    if thumbprints is not None:
        out["certificate"] = _string_list(thumbprints, "credentials.certificate")
        if not ids:
            by_thumbprint = {
                (c.properties.get("thumbprint") or "").upper(): c.path
                for c in request.store.list("certificate")
            }
            for thumbprint in thumbprints:
                found = by_thumbprint.get(thumbprint.strip().upper())
                if found is None:
                    raise ValidationError(
                        f"Certificate with thumbprint '{thumbprint}' not found.", "credentials"
                    )
                references.append(_usable(request, found, f"thumbprint '{thumbprint}'"))
    return out, references


def _usable(request: WriteRequest, path: str, what: str) -> str:
    """The stored path of the certificate at `path` (any case), refused unless it has its key."""
    stored = request.store.canonical(path)
    resource = None if stored is None else request.store.get(stored)
    if resource is None:
        raise ValidationError(f"Certificate with {what} not found.", "credentials")
    if resource.properties.get("hasPrivateKey") is False:
        raise ValidationError(
            f"Certificate with {what} has no private key: it cannot be presented to a backend.",
            "credentials",
        )
    return resource.path


def validate(request: WriteRequest) -> Validated:
    props = request.properties
    kind = props.get("type", "Single")
    if kind != "Single":
        raise ValidationError("Only backends of type 'Single' are supported.", "type")
    properties: dict[str, Any] = {"type": "Single"}
    properties["url"] = _absolute_url(_text(props, "url", 2000, required=True), "url")
    protocol = props.get("protocol", "http")
    if protocol not in ("http", "soap"):
        raise ValidationError("'protocol' must be 'http' or 'soap'.", "protocol")
    properties["protocol"] = protocol
    for name, limit in (("title", 300), ("description", 2000), ("resourceId", 2000)):
        value = _text(props, name, limit)
        if value is not None:
            properties[name] = value
    tls = _tls(props)
    if tls is not None:
        properties["tls"] = tls

    current = request.current.secrets if request.current is not None else {}
    stored = (current or {}).get("credentials", {})
    secrets: dict[str, Any] = {}
    references: list[str] = []
    credentials = props.get("credentials")
    if credentials is not None:
        if not isinstance(credentials, dict):
            raise ValidationError("'credentials' must be an object.", "credentials")
        shown, references = _certificates(request, credentials)
        sealed: dict[str, Any] = {}
        for name in ("header", "query"):
            if credentials.get(name) is not None:
                values = _value_map(credentials[name], f"credentials.{name}", stored.get(name, {}))
                sealed[name] = values
                shown[name] = {key: [MASK] * len(v) for key, v in values.items()}
        authorization = credentials.get("authorization")
        if authorization is not None:
            sealed["authorization"] = _authorization(authorization, stored.get("authorization"))
            shown["authorization"] = {
                "scheme": sealed["authorization"]["scheme"],
                "parameter": MASK,
            }
        properties["credentials"] = shown
        if sealed:
            secrets["credentials"] = sealed
    proxy = props.get("proxy")
    if proxy is not None:
        properties["proxy"], password = _proxy(proxy, (current or {}).get("proxyPassword"))
        if password is not None:
            secrets["proxyPassword"] = password
    return Validated(properties, secrets=secrets, references=sorted(set(references)))


def _authorization(value: Any, stored: dict | None) -> dict:
    target = "credentials.authorization"
    if not isinstance(value, dict):
        raise ValidationError(f"'{target}' must be an object with scheme and parameter.", target)
    scheme, parameter = value.get("scheme"), value.get("parameter")
    if parameter == MASK and stored:
        parameter = stored["parameter"]
    for name, item, limit in (("scheme", scheme, 100), ("parameter", parameter, 300)):
        if not isinstance(item, str) or not 1 <= len(item) <= limit:
            raise ValidationError(
                f"'{target}.{name}' must be a string of 1 to {limit} characters.", target
            )
        if "\r" in item or "\n" in item:
            raise ValidationError(f"'{target}.{name}' must not contain line breaks.", target)
    return {"scheme": scheme, "parameter": parameter}


def _proxy(value: Any, stored_password: str | None) -> tuple[dict, str | None]:
    if not isinstance(value, dict):
        raise ValidationError("'proxy' must be an object with a url.", "proxy")
    url = _absolute_url(_text(value, "url", 2000, required=True, prefix="proxy."), "proxy.url")
    shown: dict[str, Any] = {"url": url}
    username = value.get("username")
    if username is not None:
        if not isinstance(username, str):
            raise ValidationError("'proxy.username' must be a string.", "proxy.username")
        shown["username"] = username
    password = value.get("password")
    if password == MASK:
        password = stored_password
    if password is not None:
        if not isinstance(password, str):
            raise ValidationError("'proxy.password' must be a string.", "proxy.password")
        shown["password"] = MASK
    return shown, password


BACKENDS = register(
    Kind(
        name="backend",
        pattern="backends/{backendId}",
        arm_type="Microsoft.ApiManagement/service/backends",
        validate=validate,
        filter_fields={"name": "string", "title": "string", "url": "string"},
        schema=_SCHEMA,
        description="A backend: URL, TLS checks and credentials (client certificate included).",
    )
)
