"""`set-body template="liquid"`: a Liquid template rendered with APIM's DotLiquid conventions.

APIM runs DotLiquid with the C# naming convention, so filters are PascalCase (`{{ body.name |
Upcase }}`, `StripHtml`, `UrlEncode`, `Date: "yyyy-MM-dd"` with .NET format strings); tags are
Liquid's (`if`/`elsif`/`else`/`unless`/`for`/`case`/`assign`/`capture`/`comment`/`raw`). The
template sees `body` (the message body: JSON as objects and arrays, XML as Json.NET's object of
the document, other text as a string) and `context` (`context.Request.Url.Path`,
`context.Request.Headers.Accept`, `context.Variables.name`, ...: only the members C# expressions
may read). The template is parsed once when the policy is saved (a syntax error is a 400); a
rendering is bounded by `--liquid-max-output-chars` (what it writes, and what it holds in
`assign`/`capture` variables), `--liquid-loop-iterations` and `--liquid-render-timeout` (500,
`LastError.Reason` `LiquidTemplateLimit`). The engine is python-liquid.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from liquid import BoundTemplate, Environment
from liquid.exceptions import LiquidError, LiquidSyntaxError, ResourceLimitError

from certgate.expressions.dotnet.collections import KeyValuePair, ReadOnlyDictionary
from certgate.expressions.dotnet.datetimes import format_datetime
from certgate.expressions.dotnet.json import JToken, to_plain
from certgate.expressions.members import resolve_property
from certgate.expressions.model import CsObject
from certgate.expressions.runtime import cs_str
from certgate.policy.context import Context, Headers
from certgate.policy.elements.transforms import body_text, replace_body
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.jsonxml import ConversionError, xml_to_object
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy

# DotLiquid's standard filters (C# names) -> python-liquid's implementation of each.
_DOTLIQUID_FILTERS = {
    "".join(part.capitalize() for part in name.split("_")): name
    for name in (
        "abs",
        "append",
        "at_least",
        "at_most",
        "capitalize",
        "ceil",
        "compact",
        "default",
        "divided_by",
        "downcase",
        "escape",
        "escape_once",
        "first",
        "floor",
        "join",
        "last",
        "lstrip",
        "map",
        "minus",
        "modulo",
        "newline_to_br",
        "plus",
        "prepend",
        "remove",
        "remove_first",
        "replace",
        "replace_first",
        "reverse",
        "round",
        "rstrip",
        "size",
        "slice",
        "sort",
        "split",
        "strip",
        "strip_html",
        "strip_newlines",
        "times",
        "truncate",
        "uniq",
        "upcase",
        "url_decode",
        "url_encode",
    )
} | {"SortNatural": "sort_natural", "TruncateWords": "truncatewords", "H": "escape"}


def _date(value: Any, fmt: Any = None) -> Any:
    """DotLiquid's Date: `now`/`today` or an ISO date, formatted with a .NET format string."""
    if isinstance(value, str):
        if value.lower() in ("now", "today"):
            value = datetime.now(UTC)
        else:
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
    if not isinstance(value, datetime):
        return value
    return format_datetime(value, None if fmt is None else str(fmt))


class RenderTimeLimitError(ResourceLimitError):
    """A rendering ran past `--liquid-render-timeout` (checked at every filter call)."""


_deadline = math.inf  # of the rendering in progress (rendering never yields to the event loop)


def _timed(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that first checks the rendering's deadline: filters are where a template spends
    its time (`Replace` on a large body in a loop); loops alone are bounded by their count."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        if time.monotonic() > _deadline:
            raise RenderTimeLimitError("render time limit reached", token=None)
        return function(*args, **kwargs)

    return call


def _dotliquid_environment(output_chars: int, loop_iterations: int) -> Environment:
    class DotLiquid(Environment):
        output_stream_limit: ClassVar[int | None] = output_chars
        local_namespace_limit: ClassVar[int | None] = output_chars  # assign / capture values
        loop_iteration_limit: ClassVar[int | None] = loop_iterations

    env = DotLiquid(strict_filters=False)  # DotLiquid leaves a value with an unknown filter
    ruby = dict(env.filters)
    env.filters.clear()
    env.filters.update({name: _timed(ruby[r]) for name, r in _DOTLIQUID_FILTERS.items()})
    env.filters["Date"] = _timed(_date)
    return env


_PARSING = _dotliquid_environment(1, 1)
_ENVIRONMENTS: dict[tuple[int, int], Environment] = {}


def _environment(limits: Any) -> Environment:
    key = (limits.liquid_max_output_chars, limits.liquid_loop_iterations)
    env = _ENVIRONMENTS.get(key)
    if env is None:
        env = _ENVIRONMENTS[key] = _dotliquid_environment(*key)
    return env


class _View:
    """A C# object as Liquid sees it: its allow-listed properties by name, nothing else."""

    __slots__ = ("_obj",)

    def __init__(self, obj: CsObject) -> None:
        self._obj = obj

    def __getitem__(self, name: Any) -> Any:
        kind = type(self._obj)
        if isinstance(name, str) and name in kind.__cs_members__ and name != "Body":
            value = resolve_property(kind, name)(self._obj)
            if not callable(value):
                return view(value)
        raise KeyError(name)

    def __str__(self) -> str:
        return cs_str(self._obj)


class _Dictionary(Sequence):
    """Headers, Variables, query and matched parameters: `d["name"]` / `d.name` gives the value
    (several values joined with commas); `for pair in d` gives pairs with `Key` and `Value`."""

    __slots__ = ("_obj", "_pairs")

    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self._pairs: list[Any] | None = None

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            if self._pairs is None:
                self._pairs = [
                    _View(KeyValuePair(pair.Key, _joined(pair.Value))) for pair in self._obj
                ]
            return self._pairs[key]
        if key in ("size", "Count"):
            return len(self._obj)
        return _joined(self._obj[key])

    def __len__(self) -> int:
        return len(self._obj)


def view(value: Any) -> Any:
    """What a template sees of a value: JSON tokens as plain values, dictionaries as
    `_Dictionary`, other C# objects through `_View`, the rest as it is."""
    if isinstance(value, JToken):
        return to_plain(value)
    if isinstance(value, Headers | ReadOnlyDictionary):
        return _Dictionary(value)
    if isinstance(value, CsObject):
        return _View(value)
    if isinstance(value, list | tuple):
        return [view(v) for v in value]
    return value


def _joined(value: Any) -> Any:
    """A header's or parameter's values as one string (APIM's GetValueOrDefault)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return view(value)


def body_object(text: str | None, content_type: str, nil_blank: bool, max_depth: int) -> Any:
    """The body as the template's `body`: JSON or XML as objects, other text as a string."""
    if text is None:
        return None
    stripped = text.lstrip()
    if "json" in content_type or stripped[:1] in ("{", "["):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    if "xml" in content_type or stripped[:1] == "<":
        try:
            document = xml_to_object(
                text, direct=False, always_array=False, max_depth=max_depth, nil_blank=nil_blank
            )
        except ConversionError:
            return text
        return next(iter(document.values()))
    return text


def inner_markup(node: Node) -> str:
    """The element's content as written: text, and child elements as XML (a Liquid template
    that writes XML holds elements such as `<data val="{{ x }}"/>`)."""
    out: list[str] = []
    for part in node.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        attributes = "".join(
            f' {name}="{value.replace("&", "&amp;").replace(chr(34), "&quot;")}"'
            for name, value in part.attrib.items()
        )
        inner = inner_markup(part)
        out.append(
            f"<{part.tag}{attributes}>{inner}</{part.tag}>"
            if inner
            else f"<{part.tag}{attributes} />"
        )
    return "".join(out)


@dataclass(slots=True)
class LiquidSetBody(Policy):
    """set-body with `template="liquid"` (built by SetBody.parse, which owns the element name)."""

    source: str
    nil_blank: bool
    response: bool
    templates: dict[Environment, BoundTemplate] = field(default_factory=dict)  # per limits
    name: ClassVar[str] = "set-body"

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        if node.text_is_expr:
            raise node.error("A Liquid template cannot be a policy expression.")
        nil = loader.literal(node, "xsi-nil", "blank")
        if nil not in ("blank", "null"):
            raise node.error(f"Attribute 'xsi-nil' must be one of blank, null, not '{nil}'.")
        loader.const_bool(node, "parse-date", True)
        source = inner_markup(node).strip()
        try:
            _PARSING.from_string(source)
        except LiquidSyntaxError as error:
            raise node.error(f"Liquid template: {error.message}") from None
        return cls(source, nil == "blank", loader.target == "response")

    async def execute(self, context: Context) -> bool | int | None:
        limits = context.forwarder.limits
        env = _environment(limits)
        template = self.templates.get(env)
        if template is None:
            template = self.templates[env] = env.from_string(self.source)
        message = context.Response if self.response else context.Request
        content_type = (message.Headers.GetValueOrDefault("Content-Type") or "").lower()
        text = await body_text(context, self.response)
        body = body_object(text, content_type, self.nil_blank, limits.transform_max_depth)
        global _deadline
        _deadline = time.monotonic() + limits.liquid_render_timeout
        try:
            rendered = template.render(body=body, context=_View(context))
        except LiquidError as error:
            raise PolicyRuntimeError(
                "LiquidTemplateLimit" if isinstance(error, ResourceLimitError) else None,
                f"Liquid template: {error.message}",
            ) from None
        finally:
            _deadline = math.inf
        replace_body(context, self.response, rendered)
        return None
