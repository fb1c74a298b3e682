"""Schemas the validation policies check bodies and parameters against (APIM's two kinds).

- `schemas/{schemaId}` (service schemas, `Microsoft.ApiManagement/service/schemas`): `schemaType`
  `json` with the schema in `document`, or `xml` with the XSD text in `value`; what
  `validate-content schema-id` names.
- `apis/{apiId}/schemas/{schemaId}` (`.../apis/schemas`): an API's definitions, `contentType`
  `application/vnd.oai.openapi.components+json` (`document.components.schemas`),
  `application/vnd.ms-azure-apim.swagger.definitions+json` (`document.definitions`) or
  `application/vnd.ms-azure-apim.xsd+xml` (`document.value`). An OpenAPI / Swagger import writes
  one; operations name its definitions with `schemaId` and `typeName`.

A schema is compiled when written, so one that does not compile is a 400 naming the field.
"""

from __future__ import annotations

import json

from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register
from certgate.policy.contract import compile_schema
from certgate.policy.schemas import API_SCHEMA_TYPES, JsonSchemas, SchemaProblem, XmlSchema

SCHEMA_TYPES = ("json", "xml")


def validate_service_schema(request: WriteRequest) -> Validated:
    props = request.properties
    kind = props.get("schemaType")
    if kind not in SCHEMA_TYPES:
        raise ValidationError("'schemaType' must be 'json' or 'xml'.", "schemaType")
    stored: dict = {"schemaType": kind}
    description = props.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise ValidationError("'description' must be a string.", "description")
        stored["description"] = description
    if kind == "xml":
        value = props.get("value")
        _compiles(lambda: XmlSchema(value), "value")
        stored["value"] = value
        return Validated(stored)
    document = props.get("document")
    if document is None and isinstance(props.get("value"), str):
        try:
            document = json.loads(props["value"])
        except ValueError:
            raise ValidationError(
                "'value' must be the JSON schema as JSON text.", "value"
            ) from None
    _compiles(lambda: JsonSchemas.for_service(document), "document")
    stored["document"] = document
    return Validated(stored)


def validate_api_schema(request: WriteRequest) -> Validated:
    props = request.properties
    content_type = props.get("contentType")
    if content_type not in API_SCHEMA_TYPES:
        raise ValidationError(
            f"'contentType' must be one of {', '.join(API_SCHEMA_TYPES)}.", "contentType"
        )
    stored = {"contentType": content_type, "document": props.get("document")}
    _compiles(lambda: compile_schema(stored), "document")
    return Validated(stored)


def _compiles(make, field: str) -> None:
    try:
        make()
    except SchemaProblem as error:
        raise ValidationError(f"'{field}': {error}", field) from None


SERVICE_SCHEMAS = register(
    Kind(
        name="schema",
        pattern="schemas/{schemaId}",
        arm_type="Microsoft.ApiManagement/service/schemas",
        validate=validate_service_schema,
        filter_fields={"name": "string", "schemaType": "string", "description": "string"},
        description="A JSON or XML schema validate-content can name with schema-id.",
    )
)

API_SCHEMAS = register(
    Kind(
        name="apiSchema",
        pattern="apis/{apiId}/schemas/{schemaId}",
        arm_type="Microsoft.ApiManagement/service/apis/schemas",
        validate=validate_api_schema,
        filter_fields={"name": "string", "contentType": "string"},
        description="An API's schema definitions, which its operations' contract refers to.",
    )
)
