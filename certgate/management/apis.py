"""The `apis/{apiId}` and `apis/{apiId}/operations/{operationId}` kinds (APIM's API contracts).

`validate` checks the shape of each field; whether the gateway can route what is stored (a URL
template, a service URL, a path no other API uses) is decided by the Snapshot compiler itself,
which every write runs before it commits. Deleting an API deletes its product links, as in APIM.
"""

from __future__ import annotations

from typing import Any

from certgate.gateway.router import api_path_problem
from certgate.management.errors import ApiError, ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "*"})


def validate_api(request: WriteRequest) -> Validated:
    props = request.properties
    imported = next((name for name in ("format", "value") if name in props), None)
    if imported:
        raise ApiError(
            400,
            "NotSupported",
            "Importing an API from a definition ('format' and 'value') is not supported yet: "
            "create the API, then its operations.",
            target=imported,
        )
    path = _string(props, "path", default=None)
    if path is None:
        raise ValidationError("'path' is required (use '' for the root).", "path")
    service_url = props.get("serviceUrl")
    if service_url is not None and not isinstance(service_url, str):
        raise ValidationError("'serviceUrl' must be a string.", "serviceUrl")
    protocols = props.get("protocols") or ["https"]
    if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
        raise ValidationError("'protocols' must be a list of 'https' and 'http'.", "protocols")
    problem = api_path_problem(path.strip("/"))
    if problem is not None:
        raise ValidationError(problem, "path")
    stored: dict[str, Any] = {
        "displayName": _string(props, "displayName", default=request.name),
        "description": _string(props, "description", default=""),
        "path": path.strip("/"),
        "serviceUrl": service_url,
        "protocols": sorted({p.lower() for p in protocols}),
        "subscriptionRequired": _bool(props, "subscriptionRequired", default=False),
        # certgate extension: send the verified client certificate to the backend (RFC 9440)
        "forwardClientCertificate": _bool(props, "forwardClientCertificate", default=False),
        "apiRevision": "1",
        "isCurrent": True,
    }
    return Validated(stored)


def validate_operation(request: WriteRequest) -> Validated:
    props = request.properties
    method = _string(props, "method", default=None)
    if not method:
        raise ValidationError(
            "'method' is required: an HTTP method such as GET or POST, or '*'.", "method"
        )
    if method.upper() not in METHODS:
        raise ValidationError(
            f"'method' must be one of {', '.join(sorted(METHODS))}, not '{method[:20]}'.",
            "method",
        )
    template = _string(props, "urlTemplate", default=None)
    if not template or not template.startswith("/"):
        raise ValidationError("'urlTemplate' is required and must start with '/'.", "urlTemplate")
    stored = {
        "displayName": _string(props, "displayName", default=request.name),
        "description": _string(props, "description", default=""),
        "method": method.upper(),
        "urlTemplate": template,
        "templateParameters": props.get("templateParameters") or [],
    }
    return Validated(stored)


def _string(props: dict, name: str, *, default: str | None) -> str | None:
    value = props.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValidationError(f"'{name}' must be a string.", name)
    return value


def _bool(props: dict, name: str, default: bool) -> bool:
    value = props.get(name, default)
    if not isinstance(value, bool):
        raise ValidationError(f"'{name}' must be true or false.", name)
    return value


APIS = register(
    Kind(
        name="api",
        pattern="apis/{apiId}",
        arm_type="Microsoft.ApiManagement/service/apis",
        validate=validate_api,
        filter_fields={"name": "string", "displayName": "string", "path": "string"},
        linked=("productApi",),
        description="An API: the path prefix it is served under and the backend service URL.",
    )
)

OPERATIONS = register(
    Kind(
        name="operation",
        pattern="apis/{apiId}/operations/{operationId}",
        arm_type="Microsoft.ApiManagement/service/apis/operations",
        validate=validate_operation,
        filter_fields={"name": "string", "displayName": "string", "method": "string"},
        description="An operation of an API: an HTTP method and a URL template.",
    )
)
