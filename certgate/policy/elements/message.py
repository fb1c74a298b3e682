"""Changing the request or response: headers, query, body, method, status, URL; trace."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from certgate.headerkinds import POLICY_FIXED
from certgate.httpsyntax import host_problem, method_problem, name_problem, value_problem
from certgate.policy.context import Context, Request, Response, quote_path, reason_phrase
from certgate.policy.elements.control import string_of
from certgate.policy.elements.liquid import LiquidSetBody
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.values import Const, Value, as_bool, as_int, as_string

_ACTIONS = ("override", "skip", "append", "delete")
# Headers whose multiple values APIM sends as separate header lines instead of one CSV value.
_SEPARATE = frozenset(
    {
        "user-agent",
        "www-authenticate",
        "proxy-authenticate",
        "cookie",
        "set-cookie",
        "warning",
        "date",
        "expires",
        "last-modified",
        "if-modified-since",
        "if-unmodified-since",
        "retry-after",
    }
)


def _action(node: Node, loader: Loader) -> Value:
    action = loader.attr(node, "exists-action", "override")
    if isinstance(action, Const) and action.value not in _ACTIONS:
        raise node.error(
            f"Attribute 'exists-action' must be one of {', '.join(_ACTIONS)}, not '{action.value}'."
        )
    return action


def _values(
    node: Node, loader: Loader, check: Callable[[str], str | None] | None = None
) -> tuple[Value, ...]:
    """The `value` children; `check` refuses a constant one (a message, or None when fine)."""
    values = []
    for child in loader.children(node, {"value"}):
        if child.attrib:
            raise child.error("Element 'value' takes no attributes.")
        loader.no_children(child)
        value = loader.text(child, strip=False)
        if check is not None and isinstance(value, Const):
            problem = check(value.value)
            if problem is not None:
                raise node.error(f"Element 'value': {problem}")
        values.append(value)
    return tuple(values)


def _computed_value_error(problem: str) -> PolicyRuntimeError:
    """A value an expression computed cannot go on the wire: the policy fails, nothing is sent."""
    return PolicyRuntimeError("ExpressionValueEvaluationFailure", problem)


@register("set-header")
@dataclass(slots=True)
class SetHeader(Policy):
    """Set, append, skip or delete a request header (inbound/backend) or response header."""

    header: Value
    response: bool  # changes the response (outbound, on-error, return-response)
    action: Value
    values: tuple[Value, ...]
    computed: bool  # a name or value is an expression: checked when it runs
    attributes = frozenset({"name", "exists-action"})
    expressions = frozenset({"name", "exists-action", "value/#text"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        header = loader.attr(node, "name", required=True)
        response = loader.target == "response"
        check: Callable[[str], str | None] = value_problem
        if isinstance(header, Const):
            name = header.value
            if name.lower() in POLICY_FIXED:
                raise node.error(f"Header '{name}' cannot be modified.")
            problem = name_problem(name)
            if problem is not None:
                raise node.error(f"Attribute 'name': {problem}")
            if name.lower() == "host" and not response:
                check = _host_value_problem
        action = _action(node, loader)
        values = _values(node, loader, check)
        # Constants were checked above; computed names and values are checked when they run.
        computed = not all(isinstance(v, Const) for v in (header, *values))
        return cls(header, response, action, values, computed)

    async def execute(self, context: Context) -> bool | int | None:
        self.apply(context, context.Response if self.response else context.Request)
        return None

    def apply(self, context: Context, message: Request | Response) -> None:
        """Change `message`'s headers, evaluating against `context` (send-request's own request
        is not `context.Request`)."""
        headers = message.Headers
        name = string_of(self.header, context)
        action = string_of(self.action, context)
        if action == "delete":
            headers.remove(name)
            return
        if action == "skip" and headers.ContainsKey(name):
            return
        values = [as_string(value.evaluate(context)) for value in self.values] or [""]
        if self.computed:
            self._check(name, values)
        if len(values) > 1 and name.lower() not in _SEPARATE:
            values = [",".join(values)]
        if action == "append":
            headers.add(name, values)
        else:
            headers.set(name, values)

    def _check(self, name: str, values: list[str]) -> None:
        problem = name_problem(name)
        if problem is None and name.lower() in POLICY_FIXED:  # smuggling if a policy set it
            problem = f"Header '{name}' cannot be modified."
        if problem is None:
            check = _host_value_problem if name.lower() == "host" and not self.response else None
            for value in values:
                problem = value_problem(value) or (check(value) if check else None)
                if problem is not None:
                    break
        if problem is not None:
            raise _computed_value_error(problem)


def _host_value_problem(value: str) -> str | None:
    return value_problem(value) or host_problem(value)


@register("set-query-parameter")
@dataclass(slots=True)
class SetQueryParameter(Policy):
    """Set, append, skip or delete a query parameter of the backend request."""

    parameter: Value
    action: Value
    values: tuple[Value, ...]
    attributes = frozenset({"name", "exists-action"})
    expressions = frozenset({"name", "exists-action", "value/#text"})
    sections = frozenset({"inbound", "backend"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        parameter = loader.attr(node, "name", required=True)
        return cls(parameter, _action(node, loader), _values(node, loader))

    async def execute(self, context: Context) -> bool | int | None:
        params = context.Request.url_for_change().params()
        name = string_of(self.parameter, context)
        action = string_of(self.action, context)
        if action == "delete":
            params.pop(name, None)
            return None
        if action == "skip" and name in params:
            return None
        values = [as_string(value.evaluate(context)) for value in self.values]
        if action == "append":
            params.setdefault(name, []).extend(values)
        else:
            params[name] = values
        return None


def body_bytes(value: object) -> bytes:
    """A set-body value as bytes: byte[] as is, anything else printed as C# would (UTF-8)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return as_string(value).encode("utf-8")


@register("set-body")
@dataclass(slots=True)
class SetBody(Policy):
    """Replace the request body (inbound/backend) or the response body; `template="liquid"`
    is `LiquidSetBody`."""

    content: Value
    response: bool
    attributes = frozenset({"template", "xsi-nil", "parse-date"})
    expressions = frozenset({"#text"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        template = loader.literal(node, "template")
        if template is not None and template.lower() == "liquid":
            return LiquidSetBody.parse(node, loader)
        if template is not None and template.lower() != "none":
            raise node.error(f"Unknown set-body template '{template}'.")
        loader.no_children(node)
        return cls(loader.text(node), loader.target == "response")

    async def execute(self, context: Context) -> bool | int | None:
        self.apply(context, context.Response if self.response else context.Request)
        return None

    def apply(self, context: Context, message: Request | Response) -> None:
        message.Body.replace(body_bytes(self.content.evaluate(context)))
        message.Headers.remove("Content-Length")


@register("set-method")
@dataclass(slots=True)
class SetMethod(Policy):
    """Change the backend request's HTTP method."""

    method: Value
    expressions = frozenset({"#text"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        method = loader.text(node)
        if isinstance(method, Const):
            problem = method_problem(method.value)
            if problem is not None:
                raise node.error(problem)
        return cls(method)

    async def execute(self, context: Context) -> bool | int | None:
        self.apply(context, context.Request)
        return None

    def apply(self, context: Context, request: Request) -> None:
        method = string_of(self.method, context).upper()
        if not isinstance(self.method, Const):
            problem = method_problem(method)
            if problem is not None:
                raise _computed_value_error(problem)
        request.Method = method


@register("set-status")
@dataclass(slots=True)
class SetStatus(Policy):
    """Set the response's status code and reason phrase."""

    code: Value
    reason: Value | None
    attributes = frozenset({"code", "reason"})
    expressions = attributes

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        code = loader.attr(node, "code", required=True)
        if isinstance(code, Const):
            try:
                number = int(code.value)
            except ValueError:
                number = 0
            if not 100 <= number <= 599:
                raise node.error(f"'{code.value}' is not a valid HTTP status code.")
            code = Const(number)
        reason = loader.attr(node, "reason")
        if isinstance(reason, Const):
            problem = value_problem(reason.value, "reason phrase")
            if problem is not None:
                raise node.error(f"Attribute 'reason': {problem}")
        return cls(code, reason)

    async def execute(self, context: Context) -> bool | int | None:
        response = context.Response
        code = as_int(self.code.evaluate(context))
        if not 100 <= code <= 599:
            raise PolicyRuntimeError(None, f"Status code {code} is not valid.")
        if self.reason is None:
            reason = reason_phrase(code)
        else:
            reason = string_of(self.reason, context)
            if not isinstance(self.reason, Const):
                problem = value_problem(reason, "reason phrase")
                if problem is not None:
                    raise _computed_value_error(problem)
        response.StatusCode = code
        response.StatusReason = reason
        return None


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"  # RFC 3986 pchar without '%': what a value may keep raw


def _segment(value: str) -> str:
    """`value` as (part of) one path segment: its '/', '?', '#' and '%' escaped, and a value that
    is a whole dot segment escaped too, so that no value can climb out of the template's path."""
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe=_SEGMENT_SAFE)


def _path_value(placeholder: str, value: str) -> str:
    """A `{name}` value is one segment; a `{*name}` (the rest of a wildcard template) keeps its
    '/' and has each of its segments escaped."""
    if placeholder.startswith("*"):
        return "/".join(_segment(part) for part in value.split("/"))
    return _segment(value)


@register("rewrite-uri")
@dataclass(slots=True)
class RewriteUri(Policy):
    """Replace the backend path (and query) with a template filled from the request.

    Values fill the template escaped for where they land (a path segment, a query value), as a
    URI template expands them: a value cannot add a segment, a `..`, or a query parameter."""

    template: Value
    copy_unmatched: Value
    attributes = frozenset({"template", "copy-unmatched-params"})
    expressions = attributes
    sections = frozenset({"inbound", "backend"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls(
            loader.attr(node, "template", required=True),
            loader.attr(node, "copy-unmatched-params", "true"),
        )

    async def execute(self, context: Context) -> bool | int | None:
        template = string_of(self.template, context)
        params = context.Request.url_for_change().params()
        matched = context.Request.MatchedParameters
        used: set[str] = set()

        def value(placeholder: str) -> str:
            name = placeholder.lstrip("*")
            used.add(name)
            if name in matched:
                return str(matched[name])
            return ",".join(params.get(name, ()))

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda found: value(found.group(1)), text)

        path, _, query = template.partition("?")
        pieces = []
        position = 0
        for found in _PLACEHOLDER.finditer(path):
            pieces.append(quote_path(path[position : found.start()]))
            pieces.append(_path_value(found.group(1), value(found.group(1))))
            position = found.end()
        pieces.append(quote_path(path[position:]))
        new: dict[str, list[str]] = {}
        for part in query.split("&"):
            if part:
                key, _, raw = part.partition("=")
                new.setdefault(fill(key), []).append(fill(raw))  # encoded when sent
        if as_bool(self.copy_unmatched.evaluate(context)):
            for key, values in params.items():
                if key not in used and key not in new:
                    new[key] = values
        params.clear()
        params.update(new)
        encoded = "".join(pieces)
        context.backend_path = encoded if encoded.startswith("/") else "/" + encoded
        return None


_SEVERITIES = frozenset({"verbose", "information", "error"})


@register("trace")
@dataclass(slots=True)
class Trace(Policy):
    """Add a record (message and metadata) to the request's access log line (`TraceRecords`)."""

    source: str
    level: str
    message: Value
    metadata: tuple[tuple[str, Value], ...]
    attributes = frozenset({"source", "severity"})
    expressions = frozenset({"message/#text", "metadata/value"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        source = loader.literal(node, "source", required=True)
        severity = loader.literal(node, "severity", "verbose")
        if severity not in _SEVERITIES:
            raise node.error("Attribute 'severity' must be one of verbose, information, error.")
        message: Value = Const("")
        metadata = []
        for child in loader.children(node, {"message", "metadata"}):
            loader.no_children(child)
            if child.tag == "message":
                message = loader.text(child)
            else:
                name = loader.literal(child, "name", required=True)
                metadata.append((name, loader.attr(child, "value", required=True)))
        return cls(source, severity, message, tuple(metadata))

    async def execute(self, context: Context) -> bool | int | None:
        fields = {name: string_of(value, context) for name, value in self.metadata}
        context.add_trace(self.source, self.level, string_of(self.message, context), fields)
        return None
