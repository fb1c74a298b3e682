"""Body transformations: find-and-replace, xml-to-json, json-to-xml.

Each works on the request body in inbound/backend and on the response body in outbound/on-error,
buffered within `--max-buffered-body-bytes`. The conversions follow Json.NET's XmlNodeConverter
(APIM runs it): attributes are `@name` properties, text beside other content `#text`, CDATA
`#cdata-section`, repeated elements an array, every XML value a string (`certgate/policy/jsonxml.py`
does the conversion itself, without I/O).
"""

from __future__ import annotations

from dataclasses import dataclass

from certgate.policy.buffering import buffer_request_body, buffer_response_body
from certgate.policy.context import Context, Request, Response
from certgate.policy.elements.control import string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.jsonxml import ConversionError, JsonToXml, json_to_xml, xml_to_json
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.values import Const, Value, as_bool

_CONVERSION_SECTIONS = frozenset({"inbound", "outbound", "on-error"})


def _one_of(
    node: Node, loader: Loader, name: str, choices: tuple[str, ...], default: str | None = None
) -> Value:
    """An attribute whose constant value must be one of `choices` (checked at save time);
    without a `default` it is required."""
    if default is None:
        value = loader.attr(node, name, required=True)
    else:
        value = loader.attr(node, name, default)
    if isinstance(value, Const) and value.value not in choices:
        raise node.error(
            f"Attribute '{name}' must be one of {', '.join(choices)}, not '{value.value}'."
        )
    return value


def _boolean(node: Node, loader: Loader, name: str, default: str) -> Value:
    return _one_of(node, loader, name, ("true", "false"), default)


async def body_text(context: Context, response: bool) -> str | None:
    """The message's body as text (buffered, preserved), or None for a message without one."""
    message: Request | Response
    if response:
        await buffer_response_body(context)
        message = context.Response
    else:
        await buffer_request_body(context)
        message = context.Request
    if not message.Body.present:
        return None
    return message.Body.As(True)


def replace_body(
    context: Context, response: bool, text: str, content_type: str | None = None
) -> None:
    message: Request | Response = context.Response if response else context.Request
    message.Body.replace(text.encode("utf-8"))
    message.Headers.remove("Content-Length")
    if content_type is not None:
        message.Headers.set("Content-Type", [content_type])


@register("find-and-replace")
@dataclass(slots=True)
class FindAndReplace(Policy):
    """Replace every occurrence of `from` in the body with `to` (ordinal, case-sensitive)."""

    find: Value
    replacement: Value
    response: bool
    attributes = frozenset({"from", "to"})
    expressions = attributes

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        find = loader.attr(node, "from", required=True)
        if isinstance(find, Const) and not find.value:
            raise node.error("Attribute 'from' must not be empty.")
        replacement = loader.attr(node, "to", required=True)
        return cls(find, replacement, loader.target == "response")

    async def execute(self, context: Context) -> bool | int | None:
        find = string_of(self.find, context)
        if not find:
            raise PolicyRuntimeError(
                "ExpressionValueEvaluationFailure", "Attribute 'from' evaluated to an empty string."
            )
        text = await body_text(context, self.response)
        if text is not None and find in text:
            replace_body(
                context, self.response, text.replace(find, string_of(self.replacement, context))
            )
        return None


def _requested(context: Context, subtype: str) -> bool:
    """Whether the request's Accept header names `application/<subtype>`, `text/<subtype>` or
    `*+<subtype>` (`*/*` asks for nothing in particular)."""
    accept = context.Request.Headers.GetValueOrDefault("Accept") or ""
    for item in accept.split(","):
        media = item.partition(";")[0].strip().lower()
        if media in (f"application/{subtype}", f"text/{subtype}") or media.endswith(f"+{subtype}"):
            return True
    return False


def _is_type(message: Request | Response, subtype: str) -> bool:
    content_type = (message.Headers.GetValueOrDefault("Content-Type") or "").lower()
    media = content_type.partition(";")[0].strip()
    return media.endswith(f"/{subtype}") or media.endswith(f"+{subtype}")


@dataclass(slots=True)
class _Conversion(Policy):
    """xml-to-json and json-to-xml: when to convert (`apply`, `consider-accept-header`)."""

    apply: Value
    accept: Value
    response: bool
    sections = _CONVERSION_SECTIONS
    source = ""  # the content-type subtype converted from ("xml" / "json")
    target = ""  # the one converted to
    apply_choice = ""  # `apply`'s conditional value

    @classmethod
    def parse_common(cls, node: Node, loader: Loader) -> tuple[Value, Value, bool]:
        """`apply`, `consider-accept-header`, and whether the response is converted."""
        apply = _one_of(node, loader, "apply", ("always", cls.apply_choice))
        accept = _boolean(node, loader, "consider-accept-header", "true")
        return apply, accept, loader.target == "response"

    def wanted(self, context: Context) -> bool:
        message: Request | Response = context.Response if self.response else context.Request
        if string_of(self.apply, context) != "always" and not _is_type(message, self.source):
            return False
        return not as_bool(self.accept.evaluate(context)) or _requested(context, self.target)

    def convert(self, text: str, context: Context) -> str:
        raise NotImplementedError

    async def execute(self, context: Context) -> bool | int | None:
        if not self.wanted(context):
            return None
        text = await body_text(context, self.response)
        if text is None or not text.strip():
            return None
        try:
            converted = self.convert(text, context)
        except ConversionError as error:
            raise PolicyRuntimeError(None, str(error)) from None
        replace_body(context, self.response, converted, f"application/{self.target}")
        return None


@register("xml-to-json")
@dataclass(slots=True)
class XmlToJson(_Conversion):
    """Convert an XML body to JSON (`kind` direct: Json.NET's form; javascript-friendly: without
    the XML declaration, comments, namespace declarations and prefixes)."""

    kind: Value
    always_array: Value
    attributes = frozenset(
        {"kind", "apply", "consider-accept-header", "always-array-child-elements"}
    )
    expressions = attributes
    source, target, apply_choice = "xml", "json", "content-type-xml"

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        kind = _one_of(node, loader, "kind", ("javascript-friendly", "direct"))
        common = cls.parse_common(node, loader)
        always_array = _boolean(node, loader, "always-array-child-elements", "false")
        return cls(*common, kind, always_array)

    def convert(self, text: str, context: Context) -> str:
        return xml_to_json(
            text,
            direct=string_of(self.kind, context) == "direct",
            always_array=as_bool(self.always_array.evaluate(context)),
            max_depth=context.forwarder.limits.transform_max_depth,
        )


@register("json-to-xml")
@dataclass(slots=True)
class JsonToXmlPolicy(_Conversion):
    """Convert a JSON body to XML under a `Document` root element."""

    parse_date: Value
    separator: Value | None
    namespace_prefix: Value | None
    attribute_block: Value | None
    attributes = frozenset(
        {
            "apply",
            "consider-accept-header",
            "parse-date",
            "namespace-separator",
            "namespace-prefix",
            "attribute-block-name",
        }
    )
    expressions = attributes
    source, target, apply_choice = "json", "xml", "content-type-json"

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        common = cls.parse_common(node, loader)
        parse_date = _boolean(node, loader, "parse-date", "true")
        separator = loader.attr(node, "namespace-separator")
        if isinstance(separator, Const) and len(separator.value) != 1:
            raise node.error("Attribute 'namespace-separator' must be one character.")
        return cls(
            *common,
            parse_date,
            separator,
            loader.attr(node, "namespace-prefix"),
            loader.attr(node, "attribute-block-name"),
        )

    def convert(self, text: str, context: Context) -> str:
        def optional(value: Value | None) -> str | None:
            return None if value is None else string_of(value, context) or None

        options = JsonToXml(
            parse_date=as_bool(self.parse_date.evaluate(context)),
            separator=optional(self.separator),
            namespace_prefix=optional(self.namespace_prefix),
            attribute_block=optional(self.attribute_block),
            max_depth=context.forwarder.limits.transform_max_depth,
        )
        return json_to_xml(text, options)
