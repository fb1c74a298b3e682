"""JSON and XML schemas the validation policies check messages against, compiled once.

An API schema (`apis/{id}/schemas/{schemaId}`: OpenAPI 3 `components`, Swagger 2 `definitions`
or an XSD) and a service schema (`schemas/{schemaId}`: a JSON schema or an XSD) become a
`JsonSchemas` or `XmlSchema`. JSON definitions are looked up by name (`typeName`) or JSON pointer
(`schema-ref`); their validators are built on first use per configuration and per variant
(`allow-additional-properties`, `case-insensitive-property-names`), then reused. OpenAPI 3.0's
`nullable` is honoured; Swagger 2 and OpenAPI 3.0 schemas are checked as JSON Schema draft 4 (their
`exclusiveMinimum` is a boolean), OpenAPI 3.1 and service JSON schemas by their `$schema`
(default draft 7).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any, TypeAlias

import jsonschema
import referencing
import referencing.jsonschema
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from lxml import etree

OPENAPI_COMPONENTS = "application/vnd.oai.openapi.components+json"
SWAGGER_DEFINITIONS = "application/vnd.ms-azure-apim.swagger.definitions+json"
XSD = "application/vnd.ms-azure-apim.xsd+xml"
API_SCHEMA_TYPES = (OPENAPI_COMPONENTS, SWAGGER_DEFINITIONS, XSD)
_ROOT = "urn:certgate:schema"
_SOAP_ENVELOPES = (
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://www.w3.org/2003/05/soap-envelope",
)
# Message bodies are parsed without entities, DTDs or network access (XXE, billion laughs).
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
# A parsed JSON value (dict, list, str, int, float, bool or None): schemas, stored API contracts
# and message bodies, whose shape is the document's, checked where it is read.
Json: TypeAlias = Any


class SchemaProblem(ValueError):
    """A stored schema that cannot be used (its message names what is wrong)."""


class Invalid(Exception):
    """A message that does not conform: `message` is what APIM's errors call valError.Message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class JsonSchemas:
    """A JSON document holding schemas: definitions by name, or any schema by JSON pointer."""

    __slots__ = ("_definitions", "_document", "_validators", "cls")

    def __init__(
        self, document: dict[str, Json], definitions: str | None, cls: type[Validator]
    ) -> None:
        self._document = document
        self._definitions = definitions  # "#/components/schemas" / "#/definitions" / None
        self.cls = cls
        self._validators: dict[tuple[str, bool | None, bool], Validator] = {}

    @classmethod
    def for_api(cls, content_type: str, document: dict[str, Json]) -> JsonSchemas:
        """An API schema (`contentType`, `document`); raises SchemaProblem."""
        if content_type == OPENAPI_COMPONENTS:
            components = document.get("components")
            if not isinstance(components, dict) or not isinstance(
                components.get("schemas", {}), dict
            ):
                raise SchemaProblem("'document.components.schemas' must be an object.")
            where = "#/components/schemas"
            names = components.get("schemas", {})
        else:
            names = document.get("definitions")
            if not isinstance(names, dict):
                raise SchemaProblem("'document.definitions' must be an object.")
            where = "#/definitions"
        schemas = cls(_nullable(document), where, jsonschema.Draft4Validator)
        for name, schema in names.items():
            schemas.check(f"{where}/{_escape(name)}", f"definition '{name}'", schema)
        return schemas

    @classmethod
    def for_service(cls, document: object) -> JsonSchemas:
        """A service JSON schema (`schemas/{id}` with `schemaType` json); raises SchemaProblem."""
        if not isinstance(document, dict):
            raise SchemaProblem("A JSON schema must be an object.")
        validator = jsonschema.validators.validator_for(document, jsonschema.Draft7Validator)
        schemas = cls(document, None, validator)
        schemas.check("#", "the schema", document)
        return schemas

    def check(self, pointer: str, label: str, schema: object) -> None:
        if not isinstance(schema, dict | bool):
            raise SchemaProblem(f"{label} is not a valid JSON schema: not an object or boolean")
        try:
            self.cls.check_schema(schema)  # type: ignore[arg-type]  # the stubs omit booleans
            self.validator(pointer)
        except (SchemaError, referencing.exceptions.Unresolvable) as error:
            raise SchemaProblem(
                f"{label} is not a valid JSON schema: {_first_line(error)}"
            ) from None

    def pointer(self, type_name: str) -> str | None:
        """The JSON pointer of definition `type_name`, or None when there is no such one."""
        if self._definitions is None:
            return None
        node: object = self._document
        for part in self._definitions.removeprefix("#/").split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or type_name not in node:
            return None
        return f"{self._definitions}/{_escape(type_name)}"

    def resolves(self, pointer: str) -> bool:
        try:
            self.validator(pointer)
        except (referencing.exceptions.Unresolvable, SchemaError):
            return False
        return True

    def validator(
        self, pointer: str, additional: bool | None = None, insensitive: bool = False
    ) -> Validator:
        """The validator of the schema at `pointer` (`#/...`), built once per variant."""
        key = (pointer, additional, insensitive)
        found = self._validators.get(key)
        if found is None:
            document = self._document
            if additional is not None or insensitive:
                document = _variant(copy.deepcopy(document), additional, insensitive)
            specification = referencing.jsonschema.specification_with(
                self.cls.META_SCHEMA.get("$schema", ""), default=referencing.jsonschema.DRAFT7
            )
            registry = referencing.Registry().with_resource(
                _ROOT, specification.create_resource(document)
            )
            registry.resolver().lookup(f"{_ROOT}{pointer}")  # an unknown pointer fails here
            found = self.cls({"$ref": f"{_ROOT}{pointer}"}, registry=registry)
            self._validators[key] = found
        return found

    def validate(
        self, pointer: str, instance: Json, additional: bool | None, insensitive: bool
    ) -> None:
        """Raises Invalid with the most relevant error when `instance` does not conform."""
        if insensitive:
            instance = _lower_keys(instance)
        error = best_match(self.validator(pointer, additional, insensitive).iter_errors(instance))
        if error is not None:
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
            where = f" Path '{path.lstrip('.')}'." if path else ""
            raise Invalid(f"{error.message}.{where}")


class XmlSchema:
    """An XSD; any of its top-level elements may be the message's root."""

    __slots__ = ("_schema",)

    def __init__(self, text: object) -> None:
        if not isinstance(text, str) or not text.strip():
            raise SchemaProblem("An XML schema must be the XSD text.")
        try:
            self._schema = etree.XMLSchema(etree.fromstring(text.encode(), _PARSER))
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as error:
            raise SchemaProblem(f"The XML schema does not compile: {error}") from None

    def validate(self, body: bytes, soap: bool) -> None:
        """Raises Invalid when `body` (a SOAP envelope with `soap`) does not conform."""
        try:
            root = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError as error:
            line, column = error.position
            raise Invalid(f"{error.msg} Line: {line}, Position: {column}") from None
        for element in _soap_payload(root) if soap else (root,):
            if not self._schema.validate(etree.ElementTree(copy.deepcopy(element))):
                last = self._schema.error_log.last_error
                raise Invalid(f"{last.message} Line: {last.line}, Position: {last.column}")


CompiledSchema: TypeAlias = JsonSchemas | XmlSchema


def parse_json(body: bytes) -> Json:
    """The body as JSON, or Invalid with the parser's message and position."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        raise Invalid(f"{error.msg}. Line: {error.lineno}, Position: {error.colno}") from None
    except (UnicodeDecodeError, RecursionError) as error:
        raise Invalid(f"The body is not JSON: {type(error).__name__}.") from None


def _soap_payload(root: etree._Element) -> Iterator[etree._Element]:
    namespace = etree.QName(root).namespace
    if etree.QName(root).localname != "Envelope" or namespace not in _SOAP_ENVELOPES:
        raise Invalid("The body is not a SOAP envelope.")
    body = root.find(f"{{{namespace}}}Body")
    if body is None:
        raise Invalid("The SOAP envelope has no Body.")
    yield from (child for child in body if isinstance(child.tag, str))


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _first_line(error: Exception) -> str:
    return str(getattr(error, "message", error)).splitlines()[0][:300]


def _walk(node: Json) -> Iterator[dict[str, Json]]:
    """Every object in a JSON document (schemas and everything else)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _nullable(document: dict[str, Json]) -> dict[str, Json]:
    """OpenAPI 3.0's `nullable: true` as JSON Schema: null is one more allowed type."""
    document = copy.deepcopy(document)
    for node in _walk(document):
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
    return document


def _variant(
    document: dict[str, Json], additional: bool | None, insensitive: bool
) -> dict[str, Json]:
    """`allow-additional-properties` forces every object schema's `additionalProperties`;
    `case-insensitive-property-names` lowers property names (instances are lowered too)."""
    for node in _walk(document):
        is_object = node.get("type") == "object" or isinstance(node.get("properties"), dict)
        if additional is not None and is_object:
            node["additionalProperties"] = additional
        if insensitive and isinstance(node.get("properties"), dict):
            node["properties"] = {k.lower(): v for k, v in node["properties"].items()}
            if isinstance(node.get("required"), list):
                node["required"] = [
                    r.lower() if isinstance(r, str) else r for r in node["required"]
                ]
    return document


def _lower_keys(value: Json) -> Json:
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value
