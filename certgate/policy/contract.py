"""An operation's contract as the validation policies read it, compiled with the configuration.

From the stored operation (`templateParameters`, `request.queryParameters`, `request.headers`,
`request.representations`, `responses[]` with their `headers` and `representations`) and its API's
schemas (`apis/{id}/schemas/{schemaId}`). A parameter or representation names its schema with
`schemaId` and `typeName`; one whose schema is missing keeps why (APIM's `ApiSchema` and
`MissingDefinition` errors), so requests get that error rather than a configuration failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from certgate.policy.schemas import (
    XSD,
    CompiledSchema,
    Invalid,
    Json,
    JsonSchemas,
    SchemaProblem,
    XmlSchema,
)

_TEMPLATE_NAMES = re.compile(r"\{\*?([^{}]+)\}")
NO_SCHEMA = "ApiSchema"
NO_DEFINITION = "MissingDefinition"


class Unparsable(Exception):
    """A parameter value that is not of its declared type."""


@dataclass(frozen=True, slots=True)
class Parameter:
    """A declared path, query or header parameter: its type, allowed values and schema."""

    name: str
    type: str = "string"
    values: tuple[str, ...] = ()
    schema: JsonSchemas | None = None
    pointer: str | None = None
    problem: str | None = None  # NO_SCHEMA / NO_DEFINITION: its schema does not resolve
    definition: str = ""

    def check(self, value: str) -> None:
        """Raises Unparsable (not of the type) or Invalid (not an allowed value)."""
        typed = _typed(self.type, value)
        if self.values and value not in self.values:
            raise Invalid(f"Value '{value}' is not one of: {', '.join(self.values)}.")
        if self.schema is not None and self.pointer is not None:
            self.schema.validate(self.pointer, typed, None, False)


@dataclass(frozen=True, slots=True)
class Representation:
    """A content type of a request or response and the schema its bodies follow."""

    content_type: str
    definition: str = ""  # typeName, shown in errors
    schema: CompiledSchema | None = None
    pointer: str | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """The headers and representations of a request, or of a response with one status code."""

    headers: Mapping[str, Parameter] = field(default_factory=dict)  # by lower-case name
    representations: Mapping[str, Representation] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Contract:
    path: Mapping[str, Parameter] = field(default_factory=dict)
    query: Mapping[str, Parameter] = field(default_factory=dict)
    request: Message = field(default_factory=Message)
    responses: Mapping[int, Message] = field(default_factory=dict)


EMPTY = Contract()


def compile_schema(properties: Mapping[str, Json]) -> CompiledSchema:
    """An API schema's compiled form (`contentType`, `document`); raises SchemaProblem."""
    content_type = properties.get("contentType")
    document = properties.get("document")
    if not isinstance(document, dict):
        raise SchemaProblem("'document' must be an object.")
    if content_type == XSD:
        return XmlSchema(document.get("value"))
    return JsonSchemas.for_api(str(content_type), document)


def build_contract(
    props: Mapping[str, Json], schemas: Mapping[str, CompiledSchema | None]
) -> Contract:
    """The contract of an operation with stored properties `props` (never raises on a schema)."""
    template = str(props.get("urlTemplate") or "")
    in_query = set(_TEMPLATE_NAMES.findall(template.partition("?")[2]))
    path: dict[str, Parameter] = {}
    query: dict[str, Parameter] = {}
    for item in props.get("templateParameters") or ():
        parameter = _parameter(item, schemas)
        (query if parameter.name in in_query else path)[parameter.name] = parameter
    request = props.get("request") or {}
    for item in request.get("queryParameters") or ():
        parameter = _parameter(item, schemas)
        query[parameter.name] = parameter
    responses = {
        int(response["statusCode"]): _message(response, schemas)
        for response in props.get("responses") or ()
    }
    return Contract(path, query, _message(request, schemas), responses)


def _message(contract: Mapping[str, Json], schemas: Mapping[str, CompiledSchema | None]) -> Message:
    headers = {}
    for item in contract.get("headers") or ():
        parameter = _parameter(item, schemas)
        headers[parameter.name.lower()] = parameter
    representations = {}
    for item in contract.get("representations") or ():
        schema, pointer, problem = _resolve(item, schemas)
        media = str(item["contentType"]).lower()
        representations[media] = Representation(
            media, str(item.get("typeName") or ""), schema, pointer, problem
        )
    return Message(headers, representations)


def _parameter(item: Mapping[str, Json], schemas: Mapping[str, CompiledSchema | None]) -> Parameter:
    schema, pointer, problem = _resolve(item, schemas)
    return Parameter(
        str(item["name"]),
        str(item.get("type") or "string"),
        tuple(str(v) for v in item.get("values") or ()),
        schema if isinstance(schema, JsonSchemas) else None,
        pointer,
        problem,
        str(item.get("typeName") or ""),
    )


def _resolve(
    item: Mapping[str, Json], schemas: Mapping[str, CompiledSchema | None]
) -> tuple[CompiledSchema | None, str | None, str | None]:
    """(schema, JSON pointer, problem) of what `schemaId` and `typeName` name."""
    schema_id, type_name = item.get("schemaId"), item.get("typeName")
    if not schema_id and not type_name:
        return None, None, None
    schema = schemas.get(str(schema_id)) if schema_id else None
    if schema is None:
        return None, None, NO_SCHEMA
    if isinstance(schema, XmlSchema):
        return schema, None, None
    pointer = schema.pointer(str(type_name)) if type_name else None
    if pointer is None or not schema.resolves(pointer):
        return None, None, NO_DEFINITION
    return schema, pointer, None


def _typed(kind: str, value: str) -> Json:
    """A parameter's text as its declared type (what its schema validates)."""
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        raise Unparsable(f"'{value}' is not a valid {kind}.") from None
    if kind == "boolean":
        if value.lower() not in ("true", "false"):
            raise Unparsable(f"'{value}' is not a valid boolean.")
        return value.lower() == "true"
    if kind == "array":
        return value.split(",")
    return value
