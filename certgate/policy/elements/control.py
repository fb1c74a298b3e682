"""Flow control: base, choose, return-response, mock-response, retry, include-fragment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from certgate.expressions.runtime import truthy
from certgate.httpsyntax import value_problem
from certgate.policy.context import Context, Response, reason_phrase
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register, run_policies
from certgate.policy.values import Const, Value, as_bool, as_int, as_string


@register("base")
@dataclass(slots=True)
class Base(Policy):
    """Marker: the broader scope's same section goes here (spliced by the engine)."""

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        if loader.nested or loader.scope == "fragment":
            raise node.error("Element 'base' is only allowed directly inside a section.")
        loader.no_children(node)
        return cls()

    async def execute(self, context: Context) -> bool | int | None:
        return None


def condition_true(value: Value, context: Context) -> bool:
    return condition_value(value.evaluate(context), value)


def condition_value(result: object, value: Value) -> bool:
    """What a `condition` attribute's result means: a bool, the literal text, else C#'s rule."""
    if type(result) is bool:
        return result
    if isinstance(value, Const):
        return as_bool(result)
    return truthy(result)


@register("choose")
@dataclass(slots=True)
class Choose(Policy):
    """`when` branches in order, the first true one runs; else `otherwise`."""

    branches: tuple[tuple[Value, tuple[Policy, ...]], ...]
    otherwise: tuple[Policy, ...]
    expressions = frozenset({"when/condition"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        branches: list[tuple[Value, tuple[Policy, ...]]] = []
        otherwise: tuple[Policy, ...] = ()
        children = loader.children(node, {"when", "otherwise"})
        whens = 0
        for child in children:
            if child.tag == "when":
                if otherwise:
                    raise child.error("Element 'when' must come before 'otherwise'.")
                whens += 1
                condition = loader.attr(child, "condition", required=True)
                extra = set(child.attrib) - {"condition"}
                if extra:
                    raise child.error(f"Attribute '{extra.pop()}' is not allowed in 'when'.")
                branch = loader.policies(child, segment=f"when[{whens}]")
                branches.append((condition, tuple(branch)))
            else:
                if child.attrib:
                    raise child.error("Element 'otherwise' takes no attributes.")
                otherwise = tuple(loader.policies(child, segment="otherwise[1]"))
        if not whens:
            raise node.error("Element 'choose' needs at least one 'when'.")
        return cls(tuple(branches), otherwise)

    async def execute(self, context: Context) -> bool | int | None:
        for condition, policies in self.branches:
            result = condition.evaluate(context)
            if result is True or (result is not False and condition_value(result, condition)):
                return await run_policies(policies, context)
        if self.otherwise:
            return await run_policies(self.otherwise, context)
        return None


@register("return-response")
@dataclass(slots=True)
class ReturnResponse(Policy):
    """End the pipeline with a new response, or one stored in a variable, adjusted by children."""

    variable: str | None
    policies: tuple[Policy, ...]
    attributes = frozenset({"response-variable-name"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        variable = loader.literal(node, "response-variable-name")
        return cls(variable, tuple(loader.policies(node, target="response")))

    async def execute(self, context: Context) -> bool | int | None:
        if self.variable is not None:
            stored = context.Variables.GetValueOrDefault(self.variable)
            if not isinstance(stored, Response):
                raise PolicyRuntimeError(
                    None, f"Variable '{self.variable}' does not hold a response."
                )
            context.Response = stored
        else:
            context.Response = Response()
        if self.policies:
            await run_policies(self.policies, context)
        return True


@register("mock-response")
@dataclass(slots=True)
class MockResponse(Policy):
    """End the pipeline with a response from the operation's examples for `status-code` and
    `content-type` (none given: the first content type with examples); `index` (0-based, a
    certgate extension) picks among several examples. No example: an empty body."""

    status: int
    content_type: str | None
    index: int
    attributes = frozenset({"status-code", "content-type", "index"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        status = loader.const_int(node, "status-code", 200)
        if not 100 <= status <= 599:
            raise node.error(f"'{status}' is not a valid HTTP status code.")
        content_type = loader.literal(node, "content-type")
        if content_type is not None:
            problem = value_problem(content_type)
            if problem is not None:
                raise node.error(f"Attribute 'content-type': {problem}")
        index = loader.const_int(node, "index", 0)
        if index < 0:
            raise node.error("Attribute 'index' must be 0 or more.")
        loader.no_children(node)
        return cls(status, content_type, index)

    async def execute(self, context: Context) -> bool | int | None:
        operation = context.Operation
        example = None
        if operation is not None:
            example = operation.examples.select(self.status, self.content_type, self.index)
        content_type, body = example if example is not None else (self.content_type, b"")
        response = Response(self.status, reason_phrase(self.status), body=body)
        if content_type is not None:
            response.Headers.set("Content-Type", [content_type])
        context.Response = response
        return True


@register("retry")
@dataclass(slots=True)
class Retry(Policy):
    """Run the children, then again while `condition` holds, up to `count` more times."""

    condition: Value
    count: Value
    interval: Value
    max_interval: Value | None
    delta: Value | None
    first_fast: Value
    policies: tuple[Policy, ...]
    attributes = frozenset(
        {"condition", "count", "interval", "max-interval", "delta", "first-fast-retry"}
    )
    expressions = attributes

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        return cls(
            condition=loader.attr(node, "condition", required=True),
            count=loader.attr(node, "count", required=True),
            interval=loader.attr(node, "interval", "0"),
            max_interval=loader.attr(node, "max-interval"),
            delta=loader.attr(node, "delta"),
            first_fast=loader.attr(node, "first-fast-retry", "false"),
            policies=tuple(loader.policies(node)),
        )

    def delay(self, context: Context, attempt: int) -> float:
        """Seconds before retry `attempt` (1-based), as APIM documents: fixed with `interval`
        alone, linear with `delta`, exponential with `delta` and `max-interval`."""
        interval = as_int(self.interval.evaluate(context))
        if self.delta is None:
            return float(max(0, interval))
        delta = as_int(self.delta.evaluate(context))
        if self.max_interval is None:
            return float(max(0, interval + (attempt - 1) * delta))
        ceiling = as_int(self.max_interval.evaluate(context))
        return float(max(0, min(ceiling, interval + (2**attempt - 1) * delta)))

    async def execute(self, context: Context) -> bool | int | None:
        count = as_int(self.count.evaluate(context))
        attempt = 0
        while True:
            if await run_policies(self.policies, context):
                return True
            if attempt >= count or not condition_true(self.condition, context):
                return None
            attempt += 1
            if not (attempt == 1 and as_bool(self.first_fast.evaluate(context))):
                delay = self.delay(context, attempt)
                if delay:
                    await asyncio.sleep(delay)


@register("include-fragment")
@dataclass(slots=True)
class IncludeFragment(Policy):
    """The policies of a stored fragment, inlined at save time."""

    policies: tuple[Policy, ...]
    attributes = frozenset({"fragment-id"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        fragment_id = loader.literal(node, "fragment-id", required=True)
        loader.no_children(node)
        return cls(tuple(loader.fragment(node, fragment_id)))

    async def execute(self, context: Context) -> bool | int | None:
        return await run_policies(self.policies, context)


@register("set-variable")
@dataclass(slots=True)
class SetVariable(Policy):
    """`context.Variables[name] = value` (literal text, or the expression's value)."""

    variable: str
    value: Value
    attributes = frozenset({"name", "value"})
    expressions = frozenset({"value"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        variable = loader.literal(node, "name", required=True)
        value = loader.attr(node, "value", required=True)
        loader.no_children(node)
        return cls(variable, value)

    async def execute(self, context: Context) -> bool | int | None:
        context.Variables.set(self.variable, self.value.evaluate(context))
        return None


def string_of(value: Value, context: Context) -> str:
    """Evaluate a value and print it as C# would."""
    return as_string(value.evaluate(context))
