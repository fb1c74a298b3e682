"""OpenAPI 3 and Swagger 2 definitions of an API: import as APIM does it, and export.

Pure functions, no I/O: `parse_definition(format, text)` turns a document into API properties and
operations with APIM's rules (docs/management.md): operation names from `operationId`, else
`{method}-{path}`, normalised; template parameters from the `{name}`s of the template and the
declared parameters; required query parameters into the template (`translateRequiredQueryParameters:
template`, APIM's default); the first server URL as `serviceUrl`. `export_definition(...)` turns a
stored API and its operations back into a document. `api_import` fetches `-link` formats first.

An operation with method `*` has no place in OpenAPI: it is written under the path item's
`x-certgate-any-method` extension, which the import reads back, so export -> import keeps it.
Templates with a query part (`/pets?limit={limit}`) go under APIM's `x-ms-paths` extension.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from certgate.management.errors import ApiError, ValidationError

INLINE_FORMATS = frozenset({"openapi", "openapi+json", "swagger-json"})
LINK_FORMATS = {
    "openapi-link": "openapi",
    "openapi+json-link": "openapi+json",
    "swagger-link-json": "swagger-json",
}
# APIM's other ContentFormat values: certgate has no SOAP, WADL, GraphQL, OData or gRPC APIs.
NOT_SUPPORTED = frozenset(
    {
        "wadl-xml",
        "wadl-link-json",
        "wsdl",
        "wsdl-link",
        "graphql-link",
        "odata",
        "odata-link",
        "grpc",
        "grpc-link",
    }
)
# Export formats: the inline ones and APIM's `-link` forms (ExportFormat of the SDK).
EXPORT_FORMATS = {
    "openapi": "openapi",
    "openapi+json": "openapi+json",
    "swagger": "swagger",
    "swagger-json": "swagger",
    "openapi-link": "openapi",
    "openapi+json-link": "openapi+json",
    "swagger-link": "swagger",
}
EXPORT_RESULT_FORMATS = {"swagger-link": "swagger-link-json", "openapi+json-link": "openapi-link"}
ANY_METHOD = "x-certgate-any-method"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MS_PATHS = "x-ms-paths"  # APIM: paths whose template has a query part
_PARAMETER_NAMES = re.compile(r"\{\*?([^{}]+)\}")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


@dataclass
class Definition:
    """What a document contributes: API properties (None = not in the document) and operations."""

    properties: dict[str, Any]
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_format(fmt: object) -> str:
    """The import format, or 400: NotSupported for APIM formats certgate has no API type for."""
    if not isinstance(fmt, str):
        raise ValidationError("'format' must be a string such as 'openapi+json'.", "format")
    if fmt in NOT_SUPPORTED:
        raise ApiError(
            400,
            "NotSupported",
            f"Importing '{fmt}' definitions is not supported: certgate imports OpenAPI 3 "
            "('openapi', 'openapi+json') and Swagger 2 ('swagger-json'), inline or as '-link'.",
            target="format",
        )
    if fmt not in INLINE_FORMATS and fmt not in LINK_FORMATS:
        known = ", ".join(sorted(INLINE_FORMATS | set(LINK_FORMATS)))
        raise ValidationError(f"'format' must be one of {known}; got '{fmt[:40]}'.", "format")
    return fmt


def parse_definition(
    fmt: str, text: str, existing: Iterable[str] = (), *, query_in_template: bool = True
) -> Definition:
    """The API and operations an inline OpenAPI 3 / Swagger 2 document (`value`) describes.

    An `operationId` naming one of the API's `existing` operations (case-insensitively) keeps
    that operation's name, as APIM matches them on re-import.
    """
    document = _load(fmt, text)
    if str(document.get("openapi", "")).startswith("3."):
        properties = {"serviceUrl": _server_url_v3(document.get("servers"))}
    elif str(document.get("swagger", "")) == "2.0":
        properties = {"serviceUrl": _server_url_v2(document)}
    else:
        raise ValidationError(
            "'value' is neither OpenAPI 3 ('openapi: 3.x') nor Swagger 2 ('swagger: \"2.0\"').",
            "value",
        )
    info = _object(document.get("info", {}), "info")
    properties["displayName"] = _optional_text(info, "title", "info.title")
    properties["description"] = _optional_text(info, "description", "info.description")
    return Definition(properties, _operations(document, existing, query_in_template))


def _load(fmt: str, text: str) -> dict:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("'value' must be the definition document.", "value")
    try:
        if fmt == "openapi":
            _refuse_aliases(text)
            document = yaml.load(text, Loader=yaml.CSafeLoader)
        else:
            document = json.loads(text)
    except RecursionError:
        raise ValidationError("'value' nests too deeply.", "value") from None
    except (ValueError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())[:200]
        raise ValidationError(f"'value' does not parse: {reason}", "value") from None
    if not isinstance(document, dict):
        raise ValidationError("'value' must be an OpenAPI document (an object).", "value")
    return document


def _refuse_aliases(text: str) -> None:
    """Refuses YAML aliases: nested aliases expand exponentially (billion laughs).

    libyaml (`CSafeLoader`) also bounds nesting (1000 levels) and runs in linear time; PyYAML's
    pure-Python scanner takes quadratic time on deep flow nesting.
    """
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ValidationError("'value' uses YAML aliases ('*name'); inline them.", "value")


def _server_url_v3(servers: object) -> str | None:
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return None
    url = servers[0].get("url")
    if not isinstance(url, str):
        return None
    variables = servers[0].get("variables") or {}
    for name, variable in variables.items() if isinstance(variables, dict) else ():
        if isinstance(variable, dict) and isinstance(variable.get("default"), str):
            url = url.replace("{" + name + "}", variable["default"])
    return url if urlsplit(url).scheme in ("http", "https") else None


def _server_url_v2(document: dict) -> str | None:
    host = document.get("host")
    if not isinstance(host, str) or not host:
        return None
    schemes = document.get("schemes") or ["https"]
    scheme = "https" if "https" in schemes else str(schemes[0])
    base = document.get("basePath") or ""
    return f"{scheme}://{host}{base if isinstance(base, str) else ''}".rstrip("/")


def _operations(document: dict, existing: Iterable[str], query_in_template: bool) -> dict:
    paths = _object(document.get("paths", {}), "paths")
    extra = _object(document.get(MS_PATHS, {}), MS_PATHS)
    known = {name.lower(): name for name in existing}
    operations: dict[str, dict] = {}
    for template, item in [*paths.items(), *extra.items()]:
        if not isinstance(template, str) or not template.startswith("/"):
            raise ValidationError(f"paths: '{str(template)[:80]}' must start with '/'.", "value")
        item = _object(item, f"paths.{template}")
        shared = _parameters(document, item.get("parameters"), template)
        for method in (*HTTP_METHODS, ANY_METHOD):
            if method not in item:
                continue
            operation = _object(item[method], f"paths.{template}.{method}")
            verb = "*" if method == ANY_METHOD else method.upper()
            given = operation.get("operationId")
            given = given.strip() if isinstance(given, str) else ""
            name = known.get(given.lower()) if given else None
            if name is None or name in operations:
                name = _unique(_normalise(given or f"{verb}-{template}"), operations)
            declared = {**shared, **_parameters(document, operation.get("parameters"), template)}
            url, parameters = _url_template(template, declared, query_in_template)
            display = operation.get("summary") or given or f"{method.capitalize()} - {template}"
            operations[name] = {
                "displayName": display,
                "description": operation.get("description") or "",
                "method": verb,
                "urlTemplate": url,
                "templateParameters": parameters,
            }
    return operations


def _normalise(text: str) -> str:
    """APIM's operation names: lower case, each run of other characters one '-', trimmed,
    at most 76 characters (the last four of the 80 are kept for a de-duplication suffix)."""
    return _NOT_ALPHANUMERIC.sub("-", text.lower()).strip("-")[:76] or "operation"


def _unique(name: str, taken: dict) -> str:
    """`name`, or APIM's `name-1` ... `name-999` when another operation of the document has it
    (an existing operation of that name not matched by operationId is replaced)."""
    for candidate in (name, *(f"{name}-{n}" for n in range(1, 1000))):
        if candidate not in taken:
            return candidate
    raise ValidationError(f"More than 1000 operations would be named '{name}'.", "value")


def _url_template(template: str, declared: dict[str, dict], query_in_template: bool):
    """The URL template and its parameters: every `{name}` of the template, and (APIM's default,
    `translateRequiredQueryParameters: template`) each required query parameter as `?q={q}`."""
    names = _PARAMETER_NAMES.findall(template)
    query = [
        name
        for name, parameter in declared.items()
        if parameter["in"] == "query" and parameter["required"] and name not in names
    ]
    if query_in_template and query:
        joined = "&".join(f"{name}={{{name}}}" for name in query)
        template = f"{template}{'&' if '?' in template else '?'}{joined}"
        names += query
    parameters = []
    for name in names:
        parameter = declared.get(name) or {"name": name, "type": "string"}
        kept = {k: v for k, v in parameter.items() if k not in ("in", "required")}
        parameters.append({**kept, "required": True})
    return template, parameters


def _resolve(document: dict, value: object) -> object:
    """A local `$ref` (`#/components/parameters/x`, `#/parameters/x`), one level deep."""
    if not isinstance(value, dict) or not isinstance(value.get("$ref"), str):
        return value
    node: object = document
    for part in value["$ref"].removeprefix("#/").split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _parameters(document: dict, parameters: object, template: str) -> dict[str, dict]:
    """The path and query parameters declared in `parameters`, by name (with `in` and
    `required`, which `_url_template` drops)."""
    found: dict[str, dict] = {}
    for parameter in parameters if isinstance(parameters, list) else ():
        parameter = _resolve(document, parameter)
        if not isinstance(parameter, dict) or parameter.get("in") not in ("path", "query"):
            continue
        name = parameter.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationError(f"paths.{template}: a parameter has no name.", "value")
        schema = parameter.get("schema")
        schema = schema if isinstance(schema, dict) else parameter  # Swagger 2: on the parameter
        kind = schema.get("type")
        entry: dict[str, Any] = {"name": name, "type": kind if isinstance(kind, str) else "string"}
        if isinstance(parameter.get("description"), str) and parameter["description"]:
            entry["description"] = parameter["description"]
        if isinstance(schema.get("default"), str | int | float | bool):
            entry["defaultValue"] = _text(schema["default"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            entry["values"] = [_text(v) for v in schema["enum"]]
        entry["in"] = parameter["in"]
        entry["required"] = parameter["in"] == "path" or parameter.get("required") is True
        found[name] = entry
    return found


def _text(value: object) -> str:
    """A JSON scalar as APIM keeps parameter values: strings (`true`, not `True`)."""
    return value if isinstance(value, str) else json.dumps(value)


def _object(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(f"'{where}' in 'value' must be an object.", "value")
    return value


def _optional_text(value: dict, name: str, where: str) -> str | None:
    text = value.get(name)
    if text is not None and not isinstance(text, str):
        raise ValidationError(f"'{where}' in 'value' must be a string.", "value")
    return text


# -- export ------------------------------------------------------------------------------------
def export_definition(kind: str, api: dict, operations: list[tuple[str, dict]]) -> dict:
    """The OpenAPI 3.0.1 (`kind` 'openapi'/'openapi+json') or Swagger 2.0 ('swagger') document.

    `servers` carries the API's backend `serviceUrl` (APIM writes its gateway URL there), so an
    exported document imports back into the same API.
    """
    info = {"title": api.get("displayName") or "", "version": "1.0"}
    if api.get("description"):
        info["description"] = api["description"]
    swagger = kind == "swagger"
    paths: dict[str, dict] = {}
    with_query: dict[str, dict] = {}  # APIM's x-ms-paths: templates with a query part
    for name, props in operations:
        method, template = props["method"], props["urlTemplate"]
        key = ANY_METHOD if method == "*" else method.lower()
        operation: dict[str, Any] = {"summary": props.get("displayName") or name}
        if props.get("description"):
            operation["description"] = props["description"]
        operation["operationId"] = name
        in_query = set(_PARAMETER_NAMES.findall(template.partition("?")[2]))
        parameters = [
            _export_parameter(p, "query" if p["name"] in in_query else "path", swagger)
            for p in props.get("templateParameters", [])
        ]
        if parameters:
            operation["parameters"] = parameters
        operation["responses"] = {"200": {"description": ""}}
        (with_query if "?" in template else paths).setdefault(template, {})[key] = operation
    document: dict[str, Any] = {"swagger": "2.0"} if swagger else {"openapi": "3.0.1"}
    document["info"] = info
    if api.get("serviceUrl") and swagger:
        url = urlsplit(api["serviceUrl"])
        document.update(host=url.netloc, basePath=url.path or "/", schemes=[url.scheme])
    elif api.get("serviceUrl"):
        document["servers"] = [{"url": api["serviceUrl"]}]
    document["paths"] = paths
    if with_query:
        document[MS_PATHS] = with_query
    return document


def _export_parameter(parameter: dict, where: str, swagger: bool) -> dict:
    out: dict[str, Any] = {"name": parameter["name"], "in": where, "required": True}
    if parameter.get("description"):
        out["description"] = parameter["description"]
    schema: dict[str, Any] = {"type": parameter.get("type") or "string"}
    if "defaultValue" in parameter:
        schema["default"] = parameter["defaultValue"]
    if parameter.get("values"):
        schema["enum"] = parameter["values"]
    if swagger:
        out.update(schema)
    else:
        out["schema"] = schema
    return out


def render(kind: str, document: dict) -> str:
    """The document as text: YAML for 'openapi', JSON otherwise."""
    if kind == "openapi":
        return yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True)
    return json.dumps(document, indent=2)
