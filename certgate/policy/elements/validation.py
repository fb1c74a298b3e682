"""APIM's content validation policies: validate-content, validate-parameters, validate-headers,
validate-status-code and validate-odata-request.

They check a request or response against the operation's contract (`context.Operation.contract`,
compiled with the configuration from the operation and its API's schemas) or, for
`validate-content schema-id`, a service schema compiled when the document is saved. Each finding
has an action: `ignore` skips it, `detect` records it in the `errors-variable-name` variable
(a JSON array of `{Name, Type, ValidationRule, Details, Action}`, APIM's shape) and goes on,
`prevent` records it and ends the request: `context.LastError` gets Reason `Bad request` (inbound)
or `Response not allowed` (outbound, on-error) with the details as its Message, and the client
gets 400 with APIM's public message (inbound) or 502 with a generic one (a response: what went
wrong with the backend's answer is not the client's to read).

Actions may be policy expressions (evaluated per request); every constant is checked at save.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypedDict, overload

from certgate.expressions.dotnet.json import to_token
from certgate.policy.buffering import buffer_request_body, buffer_response_body
from certgate.policy.context import Context, Request, Response
from certgate.policy.contract import EMPTY, NO_SCHEMA, Contract, Message, Parameter, Unparsable
from certgate.policy.elements.control import condition_true, string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.schemas import (
    CompiledSchema,
    Invalid,
    JsonSchemas,
    SchemaProblem,
    XmlSchema,
    parse_json,
)
from certgate.policy.values import Const, Value

ACTIONS = ("ignore", "prevent", "detect")
# APIM's documented maximum of `max-size` (4 MiB; the body is read within the process's
# --max-buffered-body-bytes as for any policy reading a body).
MAX_CONTENT_SIZE = 4 * 1024 * 1024
INTERNAL = "The request could not be processed due to an internal error. Contact the API owner."
_NO_SCHEMA_DETAILS = "API's schema does not exist or it could not be resolved."
# Framing headers describe one connection, not the API's contract.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_ODATA_VERSIONS = ("4.0", "4.01")
_ODATA_OPTIONS = frozenset(
    {
        "$filter",
        "$select",
        "$expand",
        "$orderby",
        "$top",
        "$skip",
        "$count",
        "$search",
        "$format",
        "$compute",
        "$index",
        "$skiptoken",
        "$deltatoken",
        "$apply",
        "$schemaversion",
        "$id",
    }
)


# -- shared ------------------------------------------------------------------------------------
@overload
def _action(node: Node, loader: Loader, name: str, *, required: Literal[True] = True) -> Value: ...
@overload
def _action(node: Node, loader: Loader, name: str, *, required: bool) -> Value | None: ...
def _action(node: Node, loader: Loader, name: str, *, required: bool = True) -> Value | None:
    """An action attribute: a checked constant, or an expression checked per request."""
    value = loader.attr(node, name, required=required)
    if isinstance(value, Const) and value.value.strip().lower() not in ACTIONS:
        raise node.error(
            f"Attribute '{name}' must be ignore, prevent or detect, not '{value.value}'."
        )
    return value


def _act(value: Value, context: Context) -> str:
    action = string_of(value, context).strip().lower()
    if action not in ACTIONS:
        raise PolicyRuntimeError(
            "PolicyInvalid",
            f"A validation action must be ignore, prevent or detect, not '{action}'.",
        )
    return action


def _only(node: Node, allowed: set[str]) -> None:
    for name in node.attrib:
        if name not in allowed:
            raise node.error(f"Attribute '{name}' is not allowed in '{node.tag}'.")


def _overrides(node: Node, loader: Loader, tag: str, key: str = "name") -> dict[str, Value]:
    """`<parameter name= action=/>`-style children: name -> action."""
    found: dict[str, Value] = {}
    for child in loader.children(node, {tag}):
        _only(child, {key, "action"})
        loader.no_children(child)
        name = loader.literal(child, key, required=True) or ""
        found[name.lower() if key == "name" else name] = _action(child, loader, "action")
    return found


class _Finding(TypedDict):
    """One item of the errors variable, in APIM's shape."""

    Name: str | None
    Type: str
    ValidationRule: str | None
    Details: str
    Action: str


class _Findings:
    """The findings of one policy run: recorded in the errors variable; `prevent` ends it."""

    __slots__ = ("context", "items", "response", "variable")

    def __init__(self, variable: str | None, context: Context, response: bool) -> None:
        self.variable, self.context, self.response = variable, context, response
        self.items: list[_Finding] = []

    def add(
        self,
        action: str,
        name: str | None,
        kind: str,
        rule: str | None,
        details: str,
        public: str | None = None,
    ) -> None:
        if action == "ignore":
            return
        self.items.append(
            {
                "Name": name,
                "Type": kind,
                "ValidationRule": rule,
                "Details": details,
                "Action": action,
            }
        )
        if action == "prevent":
            self.publish()
            if self.response:
                raise PolicyRuntimeError(
                    "Response not allowed", details, 502, public_message=INTERNAL
                )
            raise PolicyRuntimeError("Bad request", details, 400, public_message=public or INTERNAL)

    def publish(self) -> None:
        if self.variable:
            self.context.Variables.set(self.variable, to_token(self.items))


def _contract(context: Context) -> Contract:
    """The contract of the request's operation (none: the empty one, where nothing is declared)."""
    operation = context.Operation
    return operation.contract if operation is not None else EMPTY


# -- validate-content --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Content:
    type: str  # lower case; "" applies to every content type of the API schema
    validate_as: str
    action: Value
    schema: CompiledSchema | None  # a service schema (schema-id)
    pointer: str | None
    label: str
    additional: bool | None
    insensitive: bool


@dataclass(frozen=True, slots=True)
class _TypeMap:
    source: str | None  # `from`, lower case
    when: Value | None
    to: str


@register("validate-content")
@dataclass(slots=True)
class ValidateContent(Policy):
    """A request's (inbound) or response's body: size, content type, schema."""

    unspecified: Value
    max_size: Value
    size_action: Value
    errors_variable: str | None
    contents: tuple[_Content, ...]
    maps: tuple[_TypeMap, ...]
    any_type: str | None
    missing_type: str | None

    attributes = frozenset(
        {
            "unspecified-content-type-action",
            "max-size",
            "size-exceeded-action",
            "errors-variable-name",
        }
    )
    expressions = frozenset(
        {
            "unspecified-content-type-action",
            "max-size",
            "size-exceeded-action",
            "content/action",
            "type/when",
        }
    )
    sections = frozenset({"inbound", "outbound", "on-error"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        max_size = loader.attr(node, "max-size", required=True)
        if isinstance(max_size, Const):
            _size(node, max_size.value)
        contents: list[_Content] = []
        maps: list[_TypeMap] = []
        any_type = missing_type = None
        for child in loader.children(node, {"content-type-map", "content"}):
            if child.tag == "content":
                contents.append(_content(child, loader))
                continue
            _only(child, {"any-content-type-value", "missing-content-type-value"})
            any_type = loader.literal(child, "any-content-type-value")
            missing_type = loader.literal(child, "missing-content-type-value")
            for item in loader.children(child, {"type"}):
                _only(item, {"from", "when", "to"})
                loader.no_children(item)
                source, when = loader.literal(item, "from"), loader.attr(item, "when")
                if (source is None) == (when is None):
                    raise item.error("Element 'type' needs exactly one of 'from' or 'when'.")
                to = (loader.literal(item, "to", required=True) or "").lower()
                maps.append(_TypeMap(source.lower() if source else None, when, to))
        return cls(
            _action(node, loader, "unspecified-content-type-action"),
            max_size,
            _action(node, loader, "size-exceeded-action"),
            loader.literal(node, "errors-variable-name"),
            tuple(contents),
            tuple(maps),
            any_type.lower() if any_type else None,
            missing_type.lower() if missing_type else None,
        )

    async def execute(self, context: Context) -> bool | int | None:
        response = self.section != "inbound"
        findings = _Findings(self.errors_variable, context, response)
        message = context.Response if response else context.Request
        side = "Response" if response else "Request"
        declared = message.Headers.GetValueOrDefault("Content-Length")
        await (buffer_response_body if response else buffer_request_body)(context)
        body = message.Body.stream()
        data = body if isinstance(body, bytes) else b""
        size = int(declared) if declared and declared.isdigit() else len(data)
        limit = _size(None, string_of(self.max_size, context))
        if size > limit:
            findings.add(
                _act(self.size_action, context),
                None,
                f"{side}Body",
                "SizeLimit",
                f"{side}'s body is {size} bytes long and it exceeds the configured limit of "
                f"{limit} bytes.",
                f"{side}'s body is {size} bytes long and it exceeds the limit of {limit} bytes.",
            )
        else:
            self.check_body(context, findings, message, data, response)
        findings.publish()
        return None

    def content_type(self, context: Context, message: Request | Response) -> str:
        header = message.Headers.GetValueOrDefault("Content-Type") or ""
        media = header.partition(";")[0].strip().lower()
        for mapping in self.maps:
            if mapping.source is not None and mapping.source == media:
                return mapping.to
            if mapping.when is not None and condition_true(mapping.when, context):
                return mapping.to
        if self.any_type:
            return self.any_type
        if not media and self.missing_type:
            return self.missing_type
        return media

    def check_body(
        self,
        context: Context,
        findings: _Findings,
        message: Request | Response,
        data: bytes,
        response: bool,
    ) -> None:
        header = message.Headers.GetValueOrDefault("Content-Type")
        if not data and not header:
            return  # no body: nothing to validate
        media = self.content_type(context, message)
        contract = _contract(context)
        expected = (
            contract.responses.get(message.StatusCode, Message())
            if isinstance(message, Response)
            else contract.request
        )
        representation = expected.representations.get(media)
        content = next((c for c in self.contents if c.type == media), None)
        if content is None and representation is not None:
            content = next((c for c in self.contents if not c.type), None)
        side = "Response" if response else "Request"
        kind = f"{side}Body"
        if representation is None and (content is None or content.schema is None):
            findings.add(
                _act(self.unspecified, context),
                media,
                kind,
                "Unspecified",
                f"Unspecified content type {media} is not allowed.",
                f"Unspecified content type {media} is not allowed.",
            )
            return
        if content is None:
            return
        action = _act(content.action, context)
        if action == "ignore":
            return
        schema, pointer, label = content.schema, content.pointer, content.label
        if schema is None and representation is not None:
            if representation.problem == NO_SCHEMA:
                findings.add(action, None, "ApiSchema", None, _NO_SCHEMA_DETAILS, INTERNAL)
                return
            label = representation.definition
            if representation.problem is not None:
                findings.add(
                    action,
                    media,
                    kind,
                    "MissingDefinition",
                    f"API's schema does not contain definition {label}, which is associated "
                    f"with the content type {media}.",
                    INTERNAL,
                )
                return
            schema, pointer = representation.schema, representation.pointer
        if schema is None:
            return  # the content type has no schema to check
        try:
            _validate(content, schema, pointer, data)
        except Invalid as error:
            what = "response" if response else "request"
            details = (
                f"Body of the {what} does not conform to the definition {label}, which is "
                f"associated with the content type {media}. {error.message}"
            )
            findings.add(action, media, kind, "IncorrectMessage", details, details)
        except SchemaProblem as error:
            details = (
                f"Body of the {side.lower()} cannot be validated for the content type "
                f"{media}. {error}"
            )
            findings.add(action, None, kind, "ValidationException", details, INTERNAL)


def _validate(content: _Content, schema: CompiledSchema, pointer: str | None, data: bytes) -> None:
    if content.validate_as == "json":
        if not isinstance(schema, JsonSchemas) or pointer is None:
            raise SchemaProblem("The schema is not a JSON schema.")
        schema.validate(pointer, parse_json(data), content.additional, content.insensitive)
    else:
        if not isinstance(schema, XmlSchema):
            raise SchemaProblem("The schema is not an XML schema.")
        schema.validate(data, content.validate_as == "soap")


def _size(node: Node | None, text: str) -> int:
    try:
        size = int(text.strip())
        if not 0 <= size <= MAX_CONTENT_SIZE:
            raise ValueError
    except ValueError:
        reason = f"Attribute 'max-size' must be a number of bytes from 0 to {MAX_CONTENT_SIZE}."
        if node is not None:
            raise node.error(reason) from None
        raise PolicyRuntimeError("PolicyInvalid", reason) from None
    return size


def _content(node: Node, loader: Loader) -> _Content:
    _only(
        node,
        {
            "type",
            "validate-as",
            "schema-id",
            "schema-ref",
            "action",
            "allow-additional-properties",
            "case-insensitive-property-names",
        },
    )
    loader.no_children(node)
    validate_as = loader.literal(node, "validate-as", required=True)
    if validate_as not in ("json", "xml", "soap"):
        raise node.error(f"Attribute 'validate-as' must be json, xml or soap, not '{validate_as}'.")
    schema_id = loader.literal(node, "schema-id")
    schema_ref = loader.literal(node, "schema-ref")
    additional = None
    if "allow-additional-properties" in node.attrib:
        additional = loader.const_bool(node, "allow-additional-properties", True)
    schema: CompiledSchema | None = None
    pointer = label = None
    if schema_id:
        schema, pointer = _service_schema(node, loader, schema_id, schema_ref, validate_as)
        label = schema_id
    elif schema_ref:
        raise node.error("Attribute 'schema-ref' needs 'schema-id'.")
    return _Content(
        (loader.literal(node, "type") or "").strip().lower(),
        validate_as,
        _action(node, loader, "action", required=False) or Const("ignore"),
        schema,
        pointer,
        label or "",
        additional,
        loader.const_bool(node, "case-insensitive-property-names", False),
    )


def _service_schema(
    node: Node, loader: Loader, schema_id: str, schema_ref: str | None, validate_as: str
) -> tuple[CompiledSchema, str | None]:
    """The service schema `schemas/{schema_id}`, compiled now (and `schema-ref`'s pointer)."""
    missing = f"Schema with id '{schema_id}' could not be found."
    schema_id = loader.reference(node, f"schemas/{schema_id}", missing)
    properties = loader.catalog.schema(schema_id)
    if properties is None:
        raise node.error(missing)
    try:
        if properties.get("schemaType") == "xml":
            if validate_as == "json":
                raise node.error(f"Schema '{schema_id}' is an XML schema: use validate-as xml.")
            if schema_ref:
                raise node.error("Attribute 'schema-ref' applies to JSON schemas only.")
            return XmlSchema(properties.get("value")), None
        if validate_as != "json":
            raise node.error(f"Schema '{schema_id}' is a JSON schema: use validate-as json.")
        schema = JsonSchemas.for_service(properties.get("document"))
    except SchemaProblem as error:
        raise node.error(f"Schema '{schema_id}': {error}") from None
    pointer = "#" + (schema_ref or "#").removeprefix("#")
    if not schema.resolves(pointer):
        raise node.error(
            f"Attribute 'schema-ref': '{schema_ref}' is not a schema in '{schema_id}'."
        )
    return schema, pointer


# -- validate-parameters -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Group:
    """Actions of `headers`, `query` or `path` (None: the policy's own)."""

    specified: Value | None
    unspecified: Value | None
    names: dict[str, Value]


_NO_GROUP = _Group(None, None, {})
_LABELS = {"path": "path parameter", "query": "query parameter", "headers": "header"}
_TYPES = {"path": "PathParameter", "query": "QueryParameter", "headers": "RequestHeader"}


@register("validate-parameters")
@dataclass(slots=True)
class ValidateParameters(Policy):
    """A request's path, query and header parameters against the operation's contract."""

    specified: Value
    unspecified: Value
    errors_variable: str | None
    groups: dict[str, _Group]

    attributes = frozenset(
        {"specified-parameter-action", "unspecified-parameter-action", "errors-variable-name"}
    )
    expressions = frozenset(
        {"specified-parameter-action", "unspecified-parameter-action"}
        | {f"{g}/{a}" for g in _LABELS for a in ("specified-parameter-action",)}
        | {f"{g}/unspecified-parameter-action" for g in ("headers", "query")}
        | {"parameter/action"}
    )
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        groups: dict[str, _Group] = {}
        for child in loader.children(node, set(_LABELS)):
            if child.tag in groups:
                raise child.error(f"Element '{child.tag}' appears more than once.")
            allowed = {"specified-parameter-action"}
            if child.tag != "path":
                allowed.add("unspecified-parameter-action")
            _only(child, allowed)
            groups[child.tag] = _Group(
                _action(child, loader, "specified-parameter-action", required=False),
                _action(child, loader, "unspecified-parameter-action", required=False)
                if child.tag != "path"
                else None,
                _overrides(child, loader, "parameter"),
            )
        return cls(
            _action(node, loader, "specified-parameter-action"),
            _action(node, loader, "unspecified-parameter-action"),
            loader.literal(node, "errors-variable-name"),
            groups,
        )

    async def execute(self, context: Context) -> bool | int | None:
        findings = _Findings(self.errors_variable, context, False)
        contract = _contract(context)
        request = context.Request
        query = request.Url.Query
        headers = request.Headers
        sources = {
            "path": (contract.path, {k: [v] for k, v in request.MatchedParameters.items()}),
            "query": (contract.query, {name: list(query[name]) for name in query.Keys}),
            "headers": (
                contract.request.headers,
                {name: headers.get_all(name) for name in headers.Keys},
            ),
        }
        for group_name, (declared, present) in sources.items():
            group = self.groups.get(group_name, _NO_GROUP)
            for name, values in present.items():
                key = name.lower()
                parameter = declared.get(key if group_name == "headers" else name)
                override = group.names.get(key)
                if parameter is None:
                    if group_name == "path":
                        continue
                    action = override or group.unspecified or self.unspecified
                    label = _LABELS[group_name]
                    text = f"Unspecified {label} {name} is not allowed."
                    findings.add(
                        _act(action, context), name, _TYPES[group_name], "Unspecified", text, text
                    )
                    continue
                action = override or group.specified or self.specified
                _check_value(
                    findings, _act(action, context), parameter, values, group_name, name, False
                )
        findings.publish()
        return None


def _check_value(
    findings: _Findings,
    action: str,
    parameter: Parameter,
    values: list[str],
    group: str,
    name: str,
    response: bool,
) -> None:
    """One declared parameter or header: a single value that parses and conforms."""
    if action == "ignore":
        return
    label = _LABELS[group]
    kind = "ResponseHeader" if response else _TYPES[group]
    if parameter.problem is not None:
        if parameter.problem == NO_SCHEMA:
            findings.add(action, None, "ApiSchema", None, _NO_SCHEMA_DETAILS, INTERNAL)
        else:
            details = (
                f"API's schema does not contain definition {parameter.definition}, which is "
                f"associated with the {label} {name}."
            )
            findings.add(action, name, kind, "MissingDefinition", details, INTERNAL)
        return
    if len(values) > 1:
        who = "Response" if response else "Request"
        text = f"{who} cannot contain multiple values for the {label} {name}."
        findings.add(action, name, kind, "IncorrectMessage", text, text)
        return
    try:
        parameter.check(values[0] if values else "")
    except Unparsable as error:
        text = f"Value of the {label} {name} cannot be parsed according to the definition. {error}"
        findings.add(action, name, kind, "IncorrectMessage", text, text)
    except Invalid as error:
        text = f"Value of the {label} {name} does not conform to the definition. {error.message}"
        findings.add(action, name, kind, "IncorrectMessage", text, text)


# -- validate-headers --------------------------------------------------------------------------
@register("validate-headers")
@dataclass(slots=True)
class ValidateHeaders(Policy):
    """A response's headers against the contract of its status code."""

    specified: Value
    unspecified: Value
    errors_variable: str | None
    names: dict[str, Value]

    attributes = frozenset(
        {"specified-header-action", "unspecified-header-action", "errors-variable-name"}
    )
    expressions = frozenset(
        {"specified-header-action", "unspecified-header-action", "header/action"}
    )
    sections = frozenset({"outbound", "on-error"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        return cls(
            _action(node, loader, "specified-header-action"),
            _action(node, loader, "unspecified-header-action"),
            loader.literal(node, "errors-variable-name"),
            _overrides(node, loader, "header"),
        )

    async def execute(self, context: Context) -> bool | int | None:
        findings = _Findings(self.errors_variable, context, True)
        response = context.Response
        contract = _contract(context)
        declared = contract.responses.get(response.StatusCode, Message()).headers
        for name in response.Headers.Keys:
            key = name.lower()
            if key in _FRAMING:
                continue
            parameter = declared.get(key)
            override = self.names.get(key)
            if parameter is None:
                text = f"Unspecified header {name} is not allowed."
                action = _act(override or self.unspecified, context)
                findings.add(action, name, "ResponseHeader", "Unspecified", text, INTERNAL)
                continue
            action = _act(override or self.specified, context)
            values = response.Headers.get_all(name)
            _check_value(findings, action, parameter, values, "headers", name, True)
        findings.publish()
        return None


# -- validate-status-code ----------------------------------------------------------------------
@register("validate-status-code")
@dataclass(slots=True)
class ValidateStatusCode(Policy):
    """A response's status code: one the contract does not list is `unspecified`."""

    unspecified: Value
    errors_variable: str | None
    codes: dict[str, Value]

    # `error-variable-name`: how Microsoft's policy toolkit spells `errors-variable-name` here.
    attributes = frozenset(
        {"unspecified-status-code-action", "errors-variable-name", "error-variable-name"}
    )
    expressions = frozenset({"unspecified-status-code-action", "status-code/action"})
    sections = frozenset({"outbound", "on-error"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        codes = _overrides(node, loader, "status-code", key="code")
        for code in codes:
            if not code.isdigit() or not 100 <= int(code) <= 599:
                raise node.error(f"Attribute 'code' must be an HTTP status code, not '{code}'.")
        return cls(
            _action(node, loader, "unspecified-status-code-action"),
            loader.literal(node, "errors-variable-name")
            or loader.literal(node, "error-variable-name"),
            {str(int(code)): action for code, action in codes.items()},
        )

    async def execute(self, context: Context) -> bool | int | None:
        findings = _Findings(self.errors_variable, context, True)
        status = context.Response.StatusCode
        contract = _contract(context)
        if status not in contract.responses:
            action = _act(self.codes.get(str(status)) or self.unspecified, context)
            text = f"Response status code {status} is not allowed."
            findings.add(action, str(status), "StatusCode", "Unspecified", text, INTERNAL)
        findings.publish()
        return None


# -- validate-odata-request --------------------------------------------------------------------
_VERSION = re.compile(r"^\d+\.\d+$")


@register("validate-odata-request")
@dataclass(slots=True)
class ValidateODataRequest(Policy):
    """An OData request: its `OData-Version`, system query options and size."""

    errors_variable: str | None
    default_version: str
    minimum: str | None
    maximum: str | None
    max_size: int | None

    attributes = frozenset(
        {
            "error-variable-name",
            "default-odata-version",
            "min-odata-version",
            "max-odata-version",
            "max-size",
        }
    )
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        versions = {}
        for name in ("default-odata-version", "min-odata-version", "max-odata-version"):
            value = loader.literal(node, name)
            if value is not None and value not in _ODATA_VERSIONS:
                raise node.error(
                    f"Attribute '{name}' must be an OData version ({', '.join(_ODATA_VERSIONS)})."
                )
            versions[name] = value
        max_size = loader.const_int(node, "max-size")
        if max_size is not None and max_size < 0:
            raise node.error("Attribute 'max-size' must not be negative.")
        return cls(
            loader.literal(node, "error-variable-name"),
            versions["default-odata-version"] or "4.0",
            versions["min-odata-version"],
            versions["max-odata-version"],
            max_size,
        )

    async def execute(self, context: Context) -> bool | int | None:
        findings = _Findings(self.errors_variable, context, False)
        request = context.Request
        version = (request.Headers.GetValueOrDefault("OData-Version") or "").strip()
        if version and version not in _ODATA_VERSIONS:
            text = f"OData-Version '{version}' is not a supported OData version."
            findings.add(
                "prevent", "OData-Version", "RequestHeader", "IncorrectMessage", text, text
            )
        version = version or self.default_version
        if (self.minimum and _key(version) < _key(self.minimum)) or (
            self.maximum and _key(version) > _key(self.maximum)
        ):
            text = (
                f"OData version {version} is not allowed: the API accepts "
                f"{self.minimum or _ODATA_VERSIONS[0]} to {self.maximum or _ODATA_VERSIONS[-1]}."
            )
            findings.add(
                "prevent", "OData-Version", "RequestHeader", "IncorrectMessage", text, text
            )
        query = request.Url.Query
        for name in query.Keys:
            option = name.lower() if version != "4.0" else name
            if not name.startswith("$"):
                continue
            values = list(query[name])
            problem = None
            if option not in _ODATA_OPTIONS:
                problem = f"The query option '{name}' is not an OData system query option."
            elif len(values) > 1:
                problem = f"The query option '{name}' appears more than once."
            elif option in ("$top", "$skip") and not values[0].isdigit():
                problem = f"The query option '{name}' must be a non-negative integer."
            elif option == "$count" and values[0].lower() not in ("true", "false"):
                problem = f"The query option '{name}' must be true or false."
            if problem is not None:
                findings.add(
                    "prevent", name, "QueryParameter", "IncorrectMessage", problem, problem
                )
        if self.max_size is not None:
            declared = request.Headers.GetValueOrDefault("Content-Length")
            if declared and declared.isdigit():
                size = int(declared)
            else:
                await buffer_request_body(context)
                body = request.Body.stream()
                size = len(body) if isinstance(body, bytes) else 0
            if size > self.max_size:
                text = (
                    f"Request's body is {size} bytes long and it exceeds the limit of "
                    f"{self.max_size} bytes."
                )
                findings.add("prevent", None, "RequestBody", "SizeLimit", text, text)
        findings.publish()
        return None


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")) if _VERSION.match(version) else (0,)
