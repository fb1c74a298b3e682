"""The `apis/{apiId}` and `apis/{apiId}/operations/{operationId}` kinds (APIM's API contracts).

`validate` checks the shape of each field; whether the gateway can route what is stored (a URL
template, a service URL, a path no other API uses) is decided by the Snapshot compiler itself,
which every write runs before it commits. Deleting an API deletes its product links, as in APIM.
A PUT with `format` and `value` imports an OpenAPI / Swagger definition (`api_definitions`): the
API's operations become exactly the document's, each checked by the router's compiler before
anything is written, and the request's own properties win over the document. The API, its
operations and its schema are one write (`Children`): stored together, or not at all.
"""

from __future__ import annotations

from typing import Any

from certgate.gateway.router import RouteConfigError, api_path_problem, operation_route
from certgate.management.api_import import imported_definition
from certgate.management.arm import check_id
from certgate.management.errors import ValidationError
from certgate.management.kinds import Children, Kind, Validated, WriteRequest, register
from certgate.policy.engine import Pipeline
from certgate.policy.examples import check_responses

IMPORT_ONLY = ("format", "value", "translateRequiredQueryParameters")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "*"})
# an imported operation's route is compiled only to check its template: it runs no policies
_NO_POLICIES = Pipeline((), (), (), ())


def validate_api(request: WriteRequest) -> Validated:
    props = request.properties
    definition = None
    if "format" in props or "value" in props:
        existing = [row.name for row in request.store.list("operation", parent=request.path)]
        definition = imported_definition(props, existing)
    if definition is not None:
        given = {k: v for k, v in props.items() if k not in IMPORT_ONLY}
        found = {k: v for k, v in definition.properties.items() if v is not None}
        props = {**found, **given}  # what the request says wins over the document
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
    if definition is None:
        return Validated(stored)
    operations = {}
    for name, operation in definition.operations.items():
        try:
            check_id("operationId", name)
            properties = operation_properties(name, operation)
            operation_route(name, properties, _NO_POLICIES)
        except ValidationError as error:
            raise ValidationError(f"Operation '{name}': {error.message}", "value") from None
        except RouteConfigError as error:
            raise ValidationError(f"Operation '{name}': {error}", "value") from None
        operations[f"{request.path}/operations/{name}"] = properties
    schemas = {f"{request.path}/schemas/{key}": value for key, value in definition.schemas.items()}
    return Validated(
        stored, children=(Children("apiSchema", schemas), Children("operation", operations))
    )


def validate_operation(request: WriteRequest) -> Validated:
    return Validated(operation_properties(request.name, request.properties))


def operation_properties(name: str, props: dict) -> dict:
    """The stored properties of operation `name`, or 400 naming the field."""
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
    stored: dict[str, Any] = {
        "displayName": _string(props, "displayName", default=name),
        "description": _string(props, "description", default=""),
        "method": method.upper(),
        "urlTemplate": template,
        "templateParameters": _parameters(props.get("templateParameters") or []),
        "request": _request(props.get("request") or {}),
        "responses": props.get("responses") or [],
    }
    problem = check_responses(stored["responses"])
    if problem is not None:
        raise ValidationError(problem, "responses")
    for index, response in enumerate(stored["responses"]):
        _parameters(response.get("headers") or [], f"responses[{index}].headers", False)
    return stored


def _request(value: object) -> dict:
    """APIM's request contract: `queryParameters`, `headers`, `representations` (each with the
    `schemaId` and `typeName` of its schema), `description`."""
    if not isinstance(value, dict):
        raise ValidationError("'request' must be an object.", "request")
    request: dict[str, Any] = {
        "queryParameters": _parameters(
            value.get("queryParameters") or [], "request.queryParameters", False
        ),
        "headers": _parameters(value.get("headers") or [], "request.headers", False),
        "representations": value.get("representations") or [],
    }
    problem = check_responses([{"statusCode": 200, "representations": request["representations"]}])
    if problem is not None:
        raise ValidationError(
            problem.replace("responses[0].", "request."), "request.representations"
        )
    description = _string(value, "description", default=None)
    if description:
        request["description"] = description
    return request


def _parameters(
    value: object, target: str = "templateParameters", required: bool = True
) -> list[dict]:
    """`[{name, type, required, description?, defaultValue?, values?, schemaId?, typeName?}]`,
    defaults filled in, so definitions round-trip."""
    if not isinstance(value, list):
        raise ValidationError(f"'{target}' must be a list of objects with a 'name'.", target)
    out = []
    for index, item in enumerate(value):
        where = f"{target}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ValidationError(f"'{where}' must be an object with a 'name'.", where)
        entry = {
            "name": item["name"],
            "type": _string(item, "type", default="string"),
            "required": _bool(item, "required", default=required),
        }
        for reference in ("schemaId", "typeName"):
            if _string(item, reference, default=None):
                entry[reference] = item[reference]
        description = _string(item, "description", default=None)
        if description:
            entry["description"] = description
        default = _string(item, "defaultValue", default=None)
        if default is not None:
            entry["defaultValue"] = default
        values = item.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationError(f"'{where}.values' must be a list of strings.", where)
        if values:
            entry["values"] = values
        out.append(entry)
    return out


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
