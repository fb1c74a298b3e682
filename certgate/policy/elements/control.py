"""Flow control: base, choose, return-response, mock-response, retry, include-fragment."""

from __future__ import annotations

import asyncio
from typing import Any

from certgate.expressions.runtime import truthy
from certgate.httpsyntax import value_problem
from certgate.policy.context import Response, Variables, reason_phrase
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register, run_policies
from certgate.policy.values import Const, as_bool, as_int, as_string


@register("base")
class Base(Policy):
    """Marker: the broader scope's same section goes here (spliced by the engine)."""

    __slots__ = ()

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        if loader.nested or loader.scope == "fragment":
            raise node.error("Element 'base' is only allowed directly inside a section.")
        loader.no_children(node)
        return cls()

    async def execute(self, context: Any) -> bool | None:
        return None


def condition_true(value: Any, context: Any) -> bool:
    return condition_value(value.evaluate(context), value)


def condition_value(result: Any, value: Any) -> bool:
    """What a `condition` attribute's result means: a bool, the literal text, else C#'s rule."""
    if type(result) is bool:
        return result
    if isinstance(value, Const):
        return as_bool(result)
    return truthy(result)


@register("choose")
class Choose(Policy):
    """`when` branches in order, the first true one runs; else `otherwise`."""

    __slots__ = ("branches", "otherwise")
    expressions = frozenset({"when/condition"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        self.branches = []
        self.otherwise: tuple[Policy, ...] = ()
        children = loader.children(node, {"when", "otherwise"})
        whens = 0
        for child in children:
            if child.tag == "when":
                if self.otherwise:
                    raise child.error("Element 'when' must come before 'otherwise'.")
                whens += 1
                condition = loader.attr(child, "condition", required=True)
                extra = set(child.attrib) - {"condition"}
                if extra:
                    raise child.error(f"Attribute '{extra.pop()}' is not allowed in 'when'.")
                branch = loader.policies(child, segment=f"when[{whens}]")
                self.branches.append((condition, tuple(branch)))
            else:
                if child.attrib:
                    raise child.error("Element 'otherwise' takes no attributes.")
                self.otherwise = tuple(loader.policies(child, segment="otherwise[1]"))
        if not whens:
            raise node.error("Element 'choose' needs at least one 'when'.")
        self.branches = tuple(self.branches)
        return self

    async def execute(self, context: Any) -> bool | None:
        for condition, policies in self.branches:
            result = condition.evaluate(context)
            if result is True or (result is not False and condition_value(result, condition)):
                return await run_policies(policies, context)
        if self.otherwise:
            return await run_policies(self.otherwise, context)
        return None


@register("return-response")
class ReturnResponse(Policy):
    """End the pipeline with a new response, or one stored in a variable, adjusted by children."""

    __slots__ = ("policies", "variable")
    attributes = frozenset({"response-variable-name"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        self.variable = loader.literal(node, "response-variable-name")
        self.policies = tuple(loader.policies(node, target="response"))
        return self

    async def execute(self, context: Any) -> bool | None:
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
class MockResponse(Policy):
    """End the pipeline with a response from the operation's examples for `status-code` and
    `content-type` (none given: the first content type with examples); `index` (0-based, a
    certgate extension) picks among several examples. No example: an empty body."""

    __slots__ = ("content_type", "index", "status")
    attributes = frozenset({"status-code", "content-type", "index"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        self.status = loader.const_int(node, "status-code", 200)
        if not 100 <= self.status <= 599:
            raise node.error(f"'{self.status}' is not a valid HTTP status code.")
        self.content_type = loader.literal(node, "content-type")
        if self.content_type is not None:
            problem = value_problem(self.content_type)
            if problem is not None:
                raise node.error(f"Attribute 'content-type': {problem}")
        self.index = loader.const_int(node, "index", 0)
        if self.index < 0:
            raise node.error("Attribute 'index' must be 0 or more.")
        loader.no_children(node)
        return self

    async def execute(self, context: Any) -> bool | None:
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
class Retry(Policy):
    """Run the children, then again while `condition` holds, up to `count` more times."""

    __slots__ = (
        "condition",
        "count",
        "delta",
        "first_fast",
        "interval",
        "max_interval",
        "policies",
    )
    attributes = frozenset(
        {"condition", "count", "interval", "max-interval", "delta", "first-fast-retry"}
    )
    expressions = attributes

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        self.condition = loader.attr(node, "condition", required=True)
        self.count = loader.attr(node, "count", required=True)
        self.interval = loader.attr(node, "interval", "0")
        self.max_interval = loader.attr(node, "max-interval")
        self.delta = loader.attr(node, "delta")
        self.first_fast = loader.attr(node, "first-fast-retry", "false")
        self.policies = tuple(loader.policies(node))
        return self

    def delay(self, context: Any, attempt: int) -> float:
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

    async def execute(self, context: Any) -> bool | None:
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
class IncludeFragment(Policy):
    """The policies of a stored fragment, inlined at save time."""

    __slots__ = ("policies",)
    attributes = frozenset({"fragment-id"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        fragment_id = loader.literal(node, "fragment-id", required=True)
        loader.no_children(node)
        self.policies = tuple(loader.fragment(node, fragment_id))
        return self

    async def execute(self, context: Any) -> bool | None:
        return await run_policies(self.policies, context)


@register("set-variable")
class SetVariable(Policy):
    """`context.Variables[name] = value` (literal text, or the expression's value)."""

    __slots__ = ("value", "variable")
    attributes = frozenset({"name", "value"})
    expressions = frozenset({"value"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        self.variable = loader.literal(node, "name", required=True)
        self.value = loader.attr(node, "value", required=True)
        loader.no_children(node)
        return self

    async def execute(self, context: Any) -> bool | None:
        variables: Variables = context.Variables
        variables.set(self.variable, self.value.evaluate(context))
        return None


def string_of(value: Any, context: Any) -> str:
    """Evaluate a value and print it as C# would."""
    return as_string(value.evaluate(context))
