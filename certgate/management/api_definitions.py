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
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from certgate.management.errors import ApiError, ValidationError
from certgate.policy.schemas import OPENAPI_COMPONENTS, SWAGGER_DEFINITIONS

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
IMPORTED_SCHEMA = "definitions"  # the id of the API schema an import writes
_PARAMETER_NAMES = re.compile(r"\{\*?([^{}]+)\}")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


@dataclass
class Definition:
    """What a document contributes: API properties (None = not in the document), operations,
    and its schema definitions as API schemas (`schemaId` -> `apis/{id}/schemas` properties)."""

    properties: dict[str, Any]
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Schemas:
    """The document's definitions, and the inline schemas operations add to them (APIM names
    them after the operation), all stored as one API schema."""

    schema_id: str
    prefix: str  # "#/components/schemas/" or "#/definitions/"
    definitions: dict[str, Any]

    def target(self, schema: dict) -> str | None:
        """The definition a schema that is only a local `$ref` names (None: another schema)."""
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(self.prefix) and len(schema) == 1:
            name = ref[len(self.prefix) :].replace("~1", "/").replace("~0", "~")
            if isinstance(self.definitions.get(name), dict):
                return name
        return None

    def type_name(self, schema: object, name: str) -> str | None:
        """The definition a schema object is: a local `$ref`'s target, else a new one."""
        if not isinstance(schema, dict) or not schema:
            return None
        target = self.target(schema)
        if target is not None:
            return target
        name = _unique(name, self.definitions)
        self.definitions[name] = schema
        return name

    def reference(self, schema: object, name: str) -> dict[str, str]:
        type_name = self.type_name(schema, name)
        return {} if type_name is None else {"schemaId": self.schema_id, "typeName": type_name}

    def contract(self, swagger: bool) -> dict[str, dict[str, Any]]:
        if not self.definitions:
            return {}
        if swagger:
            kind, document = SWAGGER_DEFINITIONS, {"definitions": self.definitions}
        else:
            kind, document = OPENAPI_COMPONENTS, {"components": {"schemas": self.definitions}}
        return {self.schema_id: {"contentType": kind, "document": document}}


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
    swagger = "swagger" in document
    if swagger:
        found, prefix = document.get("definitions") or {}, "#/definitions/"
    else:
        components = _object(document.get("components") or {}, "components")
        found, prefix = components.get("schemas") or {}, "#/components/schemas/"
    schemas = _Schemas(IMPORTED_SCHEMA, prefix, dict(_object(found, prefix[2:-1])))
    operations = _operations(document, existing, query_in_template, schemas)
    return Definition(properties, operations, schemas.contract(swagger))


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


def _operations(
    document: dict, existing: Iterable[str], query_in_template: bool, schemas: _Schemas
) -> dict:
    paths = _object(document.get("paths", {}), "paths")
    extra = _object(document.get(MS_PATHS, {}), MS_PATHS)
    known = {name.lower(): name for name in existing}
    operations: dict[str, dict] = {}
    taken: set[str] = set()  # names as ARM compares them (case-insensitively)
    for template, item in [*paths.items(), *extra.items()]:
        if not isinstance(template, str) or not template.startswith("/"):
            raise ValidationError(f"paths: '{str(template)[:80]}' must start with '/'.", "value")
        item = _object(item, f"paths.{template}")
        shared = _parameters(document, item.get("parameters"), template, schemas)
        for method in (*HTTP_METHODS, ANY_METHOD):
            if method not in item:
                continue
            operation = _object(item[method], f"paths.{template}.{method}")
            verb = "*" if method == ANY_METHOD else method.upper()
            given = operation.get("operationId")
            given = given.strip() if isinstance(given, str) else ""
            name = known.get(given.lower()) if given else None
            if name is None or name.lower() in taken:
                name = _unique(_normalise(given or f"{verb}-{template}"), taken)
            taken.add(name.lower())
            own = _parameters(document, operation.get("parameters"), template, schemas)
            declared = {**shared, **own}
            url, parameters = _url_template(template, declared, query_in_template)
            display = operation.get("summary") or given or f"{method.capitalize()} - {template}"
            in_template = {parameter["name"] for parameter in parameters}
            operations[name] = {
                "displayName": display,
                "description": operation.get("description") or "",
                "method": verb,
                "urlTemplate": url,
                "templateParameters": parameters,
                "request": _request(document, operation, declared, in_template, name, schemas),
                "responses": _responses(document, operation, name, schemas),
            }
    return operations


def _request(
    document: dict,
    operation: dict,
    declared: dict[str, dict],
    in_template: set[str],
    name: str,
    schemas: _Schemas,
) -> dict:
    """APIM's request contract: query parameters outside the template, headers, and the body's
    representations (OpenAPI 3 `requestBody`, Swagger 2's `in: body` parameter)."""
    query = [_stored(p) for n, p in declared.items() if p["in"] == "query" and n not in in_template]
    headers = [_stored(p) for p in declared.values() if p["in"] == "header"]
    representations = []
    if "swagger" in document:
        for parameter in operation.get("parameters") or ():
            parameter = _resolve(document, parameter)
            if isinstance(parameter, dict) and parameter.get("in") == "body":
                reference = schemas.reference(parameter.get("schema"), f"{name}Request")
                for media in _media_types(operation, document, "consumes"):
                    representations.append({"contentType": media, **reference})
    else:
        body = _resolve(document, operation.get("requestBody"))
        content = body.get("content") if isinstance(body, dict) else None
        for media, entry in (content or {}).items():
            entry = entry if isinstance(entry, dict) else {}
            reference = schemas.reference(entry.get("schema"), f"{name}Request")
            representations.append({"contentType": media, **reference, **_examples(entry)})
    return {"queryParameters": query, "headers": headers, "representations": representations}


def _responses(document: dict, operation: dict, name: str, schemas: _Schemas) -> list[dict]:
    """APIM's responses: status codes with their headers and representations (a range such as
    `2XX` or `default` has no status code of its own and is left out, as APIM does)."""
    swagger = "swagger" in document
    found = []
    responses = operation.get("responses")
    for code, response in (responses if isinstance(responses, dict) else {}).items():
        if not str(code).isdigit() or not 100 <= int(code) <= 599:
            continue
        response = _resolve(document, response)
        response = response if isinstance(response, dict) else {}
        headers = []
        raw_headers = response.get("headers")
        for header, spec in (raw_headers if isinstance(raw_headers, dict) else {}).items():
            spec = _resolve(document, spec)
            if isinstance(spec, dict):
                own_schema = spec.get("schema")
                schema = own_schema if isinstance(own_schema, dict) else spec
                headers.append(
                    {**_parameter_entry(header, schema, schemas, f"{name}{code}{header}Header")}
                )
        representations = []
        if swagger:
            if isinstance(response.get("schema"), dict):
                reference = schemas.reference(response["schema"], f"{name}{code}Response")
                for media in _media_types(operation, document, "produces"):
                    representations.append({"contentType": media, **reference})
        else:
            content = response.get("content")
            for media, entry in (content if isinstance(content, dict) else {}).items():
                entry = entry if isinstance(entry, dict) else {}
                reference = schemas.reference(entry.get("schema"), f"{name}{code}Response")
                representations.append({"contentType": media, **reference, **_examples(entry)})
        found.append(
            {
                "statusCode": int(code),
                "description": str(response.get("description") or ""),
                "representations": representations,
                "headers": headers,
            }
        )
    return found


def _media_types(operation: dict, document: dict, key: str) -> list[str]:
    media = operation.get(key) or document.get(key) or ["application/json"]
    return [m for m in media if isinstance(m, str) and m] if isinstance(media, list) else []


def _examples(entry: dict) -> dict:
    """OpenAPI 3 `example` / `examples` as APIM's representation examples (mock-response)."""
    examples = {}
    if "example" in entry:
        examples["default"] = {"value": entry["example"]}
    for key, example in (entry.get("examples") or {}).items():
        if isinstance(example, dict) and "value" in example:
            examples[str(key)] = {"value": example["value"]}
    return {"examples": examples} if examples else {}


def _stored(parameter: dict) -> dict:
    """A parameter as stored (without `in`)."""
    return {k: v for k, v in parameter.items() if k != "in"}


def _normalise(text: str) -> str:
    """APIM's operation names: lower case, each run of other characters one '-', trimmed,
    at most 76 characters (the last four of the 80 are kept for a de-duplication suffix)."""
    return _NOT_ALPHANUMERIC.sub("-", text.lower()).strip("-")[:76] or "operation"


def _unique(name: str, taken: Container[str]) -> str:
    """`name`, or APIM's `name-1` ... `name-999` when `taken` has it: the document's operation
    names in lower case (ARM names match in any case), or its definitions. An existing operation
    of that name not matched by operationId is replaced."""
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


# Schema keywords a parameter's `type`, `values` and `defaultValue` already carry.
_PLAIN = frozenset({"type", "enum", "default", "description", "name", "in", "required"})


def _resolve(document: dict, value: object) -> object:
    """A local `$ref` (`#/components/parameters/x`, `#/parameters/x`), one level deep."""
    if not isinstance(value, dict) or not isinstance(value.get("$ref"), str):
        return value
    node: object = document
    for part in value["$ref"].removeprefix("#/").split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _parameters(
    document: dict, parameters: object, template: str, schemas: _Schemas
) -> dict[str, dict]:
    """The path, query and header parameters declared in `parameters`, by name (with `in` and
    `required`, which `_url_template` drops)."""
    found: dict[str, dict] = {}
    for parameter in parameters if isinstance(parameters, list) else ():
        parameter = _resolve(document, parameter)
        if not isinstance(parameter, dict) or parameter.get("in") not in (
            "path",
            "query",
            "header",
        ):
            continue
        name = parameter.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationError(f"paths.{template}: a parameter has no name.", "value")
        schema = parameter.get("schema")
        schema = schema if isinstance(schema, dict) else parameter  # Swagger 2: on the parameter
        entry = _parameter_entry(name, schema, schemas, f"{name}Parameter")
        if isinstance(parameter.get("description"), str) and parameter["description"]:
            entry["description"] = parameter["description"]
        entry["in"] = parameter["in"]
        entry["required"] = parameter["in"] == "path" or parameter.get("required") is True
        found[name] = entry
    return found


def _parameter_entry(name: str, schema: dict, schemas: _Schemas, type_name: str) -> dict:
    """`name`, `type`, `defaultValue`, `values`, and a definition when the schema says more
    (a `$ref` to a definition keeps naming it; its type and values come from it)."""
    target = schemas.target(schema)
    if target is not None:
        defined = _parameter_entry(name, schemas.definitions[target], schemas, type_name)
        return {**defined, "schemaId": schemas.schema_id, "typeName": target}
    kind = schema.get("type")
    entry: dict[str, Any] = {"name": name, "type": kind if isinstance(kind, str) else "string"}
    if isinstance(schema.get("default"), str | int | float | bool):
        entry["defaultValue"] = _text(schema["default"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        entry["values"] = [_text(v) for v in schema["enum"]]
    constraints = {k: v for k, v in schema.items() if k not in _PLAIN and not k.startswith("x-")}
    if constraints:
        own = {k: v for k, v in schema.items() if k not in ("name", "in", "required")}
        entry.update(schemas.reference(own, type_name))
    return entry


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
def export_definition(
    kind: str,
    api: dict,
    operations: list[tuple[str, dict]],
    schemas: list[dict] | None = None,
) -> dict:
    """The OpenAPI 3.0.1 (`kind` 'openapi'/'openapi+json') or Swagger 2.0 ('swagger') document.

    `servers` carries the API's backend `serviceUrl` (APIM writes its gateway URL there), so an
    exported document imports back into the same API. The definitions of the API's JSON
    `schemas` become `components.schemas` / `definitions`, which operations refer to.
    """
    info = {"title": api.get("displayName") or "", "version": "1.0"}
    if api.get("description"):
        info["description"] = api["description"]
    swagger = kind == "swagger"
    definitions = _definitions(schemas or [])
    prefix = "#/definitions/" if swagger else "#/components/schemas/"
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
        request = props.get("request") or {}
        listed = [
            *(
                (p, "query" if p["name"] in in_query else "path")
                for p in props.get("templateParameters", [])
            ),
            *((p, "query") for p in request.get("queryParameters") or ()),
            *((p, "header") for p in request.get("headers") or ()),
        ]
        parameters = [
            _export_parameter(p, where, swagger, definitions, prefix) for p, where in listed
        ]
        representations = request.get("representations") or []
        if representations and swagger:
            first = representations[0]
            body = {"name": "body", "in": "body", "schema": _schema_of(first, prefix)}
            parameters.append(body)
            operation["consumes"] = [r["contentType"] for r in representations]
        elif representations:
            content = {r["contentType"]: _media(r, prefix) for r in representations}
            operation["requestBody"] = {"content": content}
        if parameters:
            operation["parameters"] = parameters
        operation["responses"] = _export_responses(props, swagger, definitions, prefix, operation)
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
    if definitions and swagger:
        document["definitions"] = definitions
    elif definitions:
        document["components"] = {"schemas": definitions}
    return document


def _definitions(schemas: list[dict]) -> dict:
    found: dict = {}
    for schema in schemas:
        document = schema.get("document") or {}
        if schema.get("contentType") == OPENAPI_COMPONENTS:
            found.update((document.get("components") or {}).get("schemas") or {})
        elif schema.get("contentType") == SWAGGER_DEFINITIONS:
            found.update(document.get("definitions") or {})
    return found


def _schema_of(entry: dict, prefix: str) -> dict:
    name = entry.get("typeName")
    return {"$ref": prefix + name.replace("~", "~0").replace("/", "~1")} if name else {}


def _media(representation: dict, prefix: str) -> dict:
    media: dict[str, Any] = {}
    if representation.get("typeName"):
        media["schema"] = _schema_of(representation, prefix)
    if representation.get("examples"):
        media["examples"] = representation["examples"]
    return media


def _export_responses(
    props: dict, swagger: bool, definitions: dict, prefix: str, operation: dict
) -> dict:
    responses: dict[str, Any] = {}
    produces: list[str] = []
    for response in props.get("responses") or ():
        out: dict[str, Any] = {"description": response.get("description") or ""}
        headers = {
            h["name"]: _export_parameter(h, "header", swagger, definitions, prefix, header=True)
            for h in response.get("headers") or ()
        }
        if headers:
            out["headers"] = headers
        representations = response.get("representations") or []
        if representations and swagger:
            produces.extend(r["contentType"] for r in representations)
            typed = [r for r in representations if r.get("typeName")]
            if typed:
                out["schema"] = _schema_of(typed[0], prefix)
        elif representations:
            out["content"] = {r["contentType"]: _media(r, prefix) for r in representations}
        responses[str(response["statusCode"])] = out
    if produces:
        operation["produces"] = list(dict.fromkeys(produces))
    # OpenAPI needs one response; `default` has no status code, so it imports back as none
    return responses or {"default": {"description": ""}}


def _export_parameter(
    parameter: dict,
    where: str,
    swagger: bool,
    definitions: dict,
    prefix: str,
    *,
    header: bool = False,
) -> dict:
    out: dict[str, Any] = {} if header else {"name": parameter["name"], "in": where}
    if not header:
        out["required"] = where == "path" or parameter.get("required", True)
    if parameter.get("description"):
        out["description"] = parameter["description"]
    schema: dict[str, Any] = {"type": parameter.get("type") or "string"}
    if "defaultValue" in parameter:
        schema["default"] = parameter["defaultValue"]
    if parameter.get("values"):
        schema["enum"] = parameter["values"]
    type_name = parameter.get("typeName")
    if type_name and swagger and isinstance(definitions.get(type_name), dict):
        schema = {**definitions[type_name], **schema}
    elif type_name and type_name in definitions:
        schema = _schema_of(parameter, prefix)
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
