"""The `apis/{apiId}` and `apis/{apiId}/operations/{operationId}` kinds (APIM's API contracts).

Validation reuses the data plane's route compilers, so what is stored is exactly what the gateway
can route; fields the router does not read (`displayName`, `subscriptionRequired`) are checked here.
"""

from __future__ import annotations

from typing import Any

from certgate.gateway.router import RouteConfigError, api_path_problem, api_route, operation_route
from certgate.management.errors import ApiError, ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register
from certgate.policy.examples import check_responses

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
    _compiles(lambda: api_route(request.name, stored), "serviceUrl")
    _check_unique_path(request, stored["path"])
    return Validated(stored)


def _check_unique_path(request: WriteRequest, path: str) -> None:
    for other in request.store.list("api", parent=""):
        if other.name != request.name and other.properties.get("path", "").lower() == path.lower():
            raise ValidationError(
                f"Cannot create API '{request.name}' with the same Path '{path}' as API "
                f"'{other.name}' unless it's a part of the same version set.",
                "path",
            )


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
        "responses": props.get("responses") or [],
    }
    problem = check_responses(stored["responses"])
    if problem is not None:
        raise ValidationError(problem, "responses")
    _compiles(lambda: operation_route(request.name, stored, None), "urlTemplate")
    return Validated(stored)


def _compiles(build, target: str) -> None:
    try:
        build()
    except (RouteConfigError, ValueError) as error:
        raise ValidationError(str(error), target) from None


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
