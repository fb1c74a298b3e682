"""Management kinds of the policy engine: policies at four scopes, named values, products,
product-API links and policy fragments.

Saving a policy or fragment parses and compiles it against the store (`StoreCatalog`); any problem
is a 400 `ValidationError` with APIM's message and nothing is stored. Every reference is indexed,
so deleting a certificate, backend, named value or fragment a policy uses is a 409.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from certgate.config.store import Resource
from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register
from certgate.policy.catalog import StoreCatalog
from certgate.policy.errors import PolicyValidationError
from certgate.policy.formats import to_raw, to_xml
from certgate.policy.loader import parse_document, parse_fragment

FORMATS = ("xml", "rawxml")
_NAME = re.compile(r"^[A-Za-z0-9\-._]+$")
_DOCUMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "format": {"type": "string", "enum": list(FORMATS)},
        "value": {"type": "string"},
        "description": {"type": "string"},
    },
    "required": ["value"],
}


def _document(request: WriteRequest) -> str:
    props = request.properties
    fmt = props.get("format", "xml")
    if fmt not in FORMATS:
        raise ValidationError(f"Format '{fmt}' is not supported; use 'xml' or 'rawxml'.", "format")
    value = props.get("value")
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("'value' must be the policy document.", "value")
    return value


def _refuse(exc: PolicyValidationError) -> ValidationError:
    return ValidationError(str(exc), exc.element or "value")


def policy_validator(scope: str) -> Callable[[WriteRequest], Validated]:
    """The validator of a policy document at `scope` (also run by actions that rewrite one)."""

    def validate(request: WriteRequest) -> Validated:
        if request.name != "policy":
            raise ValidationError("The policy id must be 'policy'.", "policyId")
        text = _document(request)
        try:
            document = parse_document(text, scope, StoreCatalog(request.store))
        except PolicyValidationError as exc:
            raise _refuse(exc) from None
        return Validated({"value": to_raw(text)}, references=sorted(document.references))

    return validate


def present_document(resource: Resource, query: Mapping[str, str]) -> dict:
    """`?format=rawxml` returns expressions as written; the default `xml` escapes them."""
    fmt = query.get("format", "xml")
    fmt = fmt if fmt in FORMATS else "xml"
    raw = resource.properties["value"]
    shown = {k: v for k, v in resource.properties.items() if k != "value"}
    return {**shown, "format": fmt, "value": raw if fmt == "rawxml" else to_xml(raw)}


def _policy_kind(name: str, pattern: str, arm_type: str, scope: str) -> Kind:
    return register(
        Kind(
            name=name,
            pattern=pattern,
            arm_type=arm_type,
            validate=policy_validator(scope),
            present=present_document,
            title="Policy",
            schema=_DOCUMENT_SCHEMA,
            description=f"The {scope}-scope policy document (id 'policy').",
        )
    )


_SERVICE = "Microsoft.ApiManagement/service"
GLOBAL_POLICY = _policy_kind("policy", "policies/{policyId}", f"{_SERVICE}/policies", "global")
PRODUCT_POLICY = _policy_kind(
    "productPolicy",
    "products/{productId}/policies/{policyId}",
    f"{_SERVICE}/products/policies",
    "product",
)
API_POLICY = _policy_kind(
    "apiPolicy", "apis/{apiId}/policies/{policyId}", f"{_SERVICE}/apis/policies", "api"
)
OPERATION_POLICY = _policy_kind(
    "operationPolicy",
    "apis/{apiId}/operations/{operationId}/policies/{policyId}",
    f"{_SERVICE}/apis/operations/policies",
    "operation",
)


def _validate_fragment(request: WriteRequest) -> Validated:
    text = _document(request)
    try:
        _, references = parse_fragment(text, StoreCatalog(request.store))
    except PolicyValidationError as exc:
        raise _refuse(exc) from None
    properties = {"value": to_raw(text)}
    description = request.properties.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise ValidationError("'description' must be a string.", "description")
        properties["description"] = description
    return Validated(properties, references=sorted(references))


FRAGMENTS = register(
    Kind(
        name="policyFragment",
        pattern="policyFragments/{id}",
        arm_type=f"{_SERVICE}/policyFragments",
        validate=_validate_fragment,
        present=present_document,
        schema=_DOCUMENT_SCHEMA,
        filter_fields={"name": "string", "description": "string"},
        description="A reusable `<fragment>` included with include-fragment.",
    )
)


def _validate_named_value(request: WriteRequest) -> Validated:
    props = request.properties
    display = props.get("displayName")
    if not isinstance(display, str) or not _NAME.match(display) or len(display) > 256:
        raise ValidationError(
            "'displayName' is required: letters, digits, '-', '.' and '_' (at most 256).",
            "displayName",
        )
    for row in request.store.list("namedValue"):
        if row.path != request.path and row.properties.get("displayName") == display:
            raise ValidationError(
                f"A named value with displayName '{display}' already exists.", "displayName"
            )
    secret = props.get("secret", False)
    if not isinstance(secret, bool):
        raise ValidationError("'secret' must be true or false.", "secret")
    value = props.get("value")
    if value is None and request.current is not None:
        current = request.current
        value = current.secrets.get("value", current.properties.get("value"))
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise ValidationError("'value' is required: a string of 1 to 4096 characters.", "value")
    tags = props.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationError("'tags' must be a list of strings.", "tags")
    public = {"displayName": display, "secret": secret, "tags": tags}
    if secret:
        return Validated(public, secrets={"value": value})
    return Validated({**public, "value": value})


def _present_named_value(resource: Resource) -> dict:
    """Secret values are never returned."""
    props = resource.properties
    return {k: v for k, v in props.items() if k != "value" or not props.get("secret")}


NAMED_VALUES = register(
    Kind(
        name="namedValue",
        pattern="namedValues/{namedValueId}",
        arm_type=f"{_SERVICE}/namedValues",
        validate=_validate_named_value,
        present=_present_named_value,
        filter_fields={"name": "string", "displayName": "string", "secret": "bool"},
        schema={
            "type": "object",
            "properties": {
                "displayName": {"type": "string"},
                "value": {"type": "string", "description": "Never returned when secret."},
                "secret": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["displayName", "value"],
        },
        description="`{{displayName}}` in policy documents is replaced by the value.",
    )
)


def _validate_product(request: WriteRequest) -> Validated:
    props = request.properties
    display = props.get("displayName")
    if not isinstance(display, str) or not display.strip() or len(display) > 300:
        raise ValidationError("'displayName' is required (at most 300 characters).", "displayName")
    state = props.get("state", "notPublished")
    if state not in ("published", "notPublished"):
        raise ValidationError("'state' must be 'published' or 'notPublished'.", "state")
    result = {"displayName": display, "state": state}
    for name in ("description", "terms"):
        if props.get(name) is not None:
            if not isinstance(props[name], str):
                raise ValidationError(f"'{name}' must be a string.", name)
            result[name] = props[name]
    for name in ("subscriptionRequired", "approvalRequired"):
        if props.get(name) is not None:
            if not isinstance(props[name], bool):
                raise ValidationError(f"'{name}' must be true or false.", name)
            result[name] = props[name]
    return Validated(result)


PRODUCTS = register(
    Kind(
        name="product",
        pattern="products/{productId}",
        arm_type=f"{_SERVICE}/products",
        validate=_validate_product,
        filter_fields={"name": "string", "displayName": "string", "state": "string"},
        description="A product: its policy applies to the APIs linked to it.",
    )
)


def _validate_product_api(request: WriteRequest) -> Validated:
    api = f"apis/{request.ids['apiId']}"
    if request.store.get(api) is None:
        raise ValidationError(f"API with id '{request.ids['apiId']}' not found.", "apiId")
    # Deleting the API deletes this link with it (the API kind's `linked`), as in APIM.
    return Validated({}, references=[api])


PRODUCT_APIS = register(
    Kind(
        name="productApi",
        pattern="products/{productId}/apis/{apiId}",
        arm_type=f"{_SERVICE}/products/apis",
        validate=_validate_product_api,
        link_to="apis",
        patch=False,
        description="Links an API to a product (PUT with an empty body).",
    )
)
