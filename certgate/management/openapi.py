"""An OpenAPI 3.1 document generated from the registered kinds (short paths)."""

from __future__ import annotations

from certgate import __version__
from certgate.management.kinds import Kind, KindRegistry
from certgate.management.status import STATUS_SCHEMA, status_path_item

_ERROR = {"$ref": "#/components/responses/Error"}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"}}


def openapi_document(kinds: KindRegistry) -> dict:
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = {"Error": _error_schema(), "Status": STATUS_SCHEMA}
    paths["/status"] = status_path_item()
    for kind in kinds:
        schemas[kind.title] = _contract_schema(kind)
        item = "/" + kind.pattern if kind.pattern else "/"
        paths[item] = _item_operations(kind)
        if kind.pattern:
            paths["/" + kind.collection] = {"get": _list_operation(kind)}
        for action in kind.actions:
            paths[f"{item}/{action}"] = {
                "post": _operation(kind, f"{kind.title}_{action}", _responses(kind, "200"))
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "certgate management API",
            "version": __version__,
            "description": "APIM-compatible ARM resources. Every path is also served under "
            "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.ApiManagement/service/{n}"
            " with ?api-version=.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "ARM error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
    }


def _item_operations(kind: Kind) -> dict:
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{kind.title}"}}},
    }
    operations = {
        "get": _operation(kind, f"{kind.title}_Get", _responses(kind, "200")),
        "head": _operation(kind, f"{kind.title}_GetEntityTag", {"200": {"description": "ETag"}}),
        "put": {
            **_operation(kind, f"{kind.title}_CreateOrUpdate", _responses(kind, "200", "201")),
            "requestBody": body,
        },
    }
    if kind.patch:
        operations["patch"] = {
            **_operation(kind, f"{kind.title}_Update", _responses(kind, "200")),
            "requestBody": body,
        }
    if kind.pattern:
        operations["delete"] = {
            **_operation(
                kind,
                f"{kind.title}_Delete",
                {"200": {"description": "Deleted"}, "204": {"description": "Deleted (APIs)"}},
            ),
            "parameters": [*_parameters(kind), _IF_MATCH],
        }
    return operations


def _list_operation(kind: Kind) -> dict:
    operation = _operation(
        kind,
        f"{kind.title}_ListByService",
        {
            "200": {
                "description": "A page of resources",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "value": {
                                    "type": "array",
                                    "items": {"$ref": f"#/components/schemas/{kind.title}"},
                                },
                                "count": {"type": "integer"},
                                "nextLink": {"type": ["string", "null"]},
                            },
                        }
                    }
                },
            },
            "default": _ERROR,
        },
        ids=kind.id_names[:-1],
    )
    query = [
        {
            "name": "$filter",
            "in": "query",
            "schema": {"type": "string"},
            "description": "Fields: " + ", ".join(sorted(kind.filter_fields)),
        },
        {"name": "$top", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "$skip", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    ]
    query += [{"name": p, "in": "query", "schema": {"type": "string"}} for p in kind.list_params]
    operation["parameters"] = operation["parameters"] + query
    return operation


def _operation(kind: Kind, operation_id: str, responses: dict, ids: list[str] | None = None):
    return {
        "operationId": operation_id,
        "tags": [kind.title],
        "summary": kind.description or kind.title,
        "parameters": _parameters(kind, ids),
        "responses": responses,
    }


def _parameters(kind: Kind, ids: list[str] | None = None) -> list[dict]:
    names = kind.id_names if ids is None else ids
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


def _responses(kind: Kind, *codes: str) -> dict:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{kind.title}"}}}
    responses: dict[str, dict] = {c: {"description": kind.title, "content": content} for c in codes}
    responses["default"] = _ERROR
    return responses


def _contract_schema(kind: Kind) -> dict:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "readOnly": True},
            "type": {"type": "string", "const": kind.arm_type, "readOnly": True},
            "name": {"type": "string", "readOnly": True},
            "properties": kind.schema or {"type": "object"},
        },
    }


def _error_schema() -> dict:
    detail = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "target": {"type": ["string", "null"]},
            "message": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": detail},
                },
            }
        },
    }
