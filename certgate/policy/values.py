"""Attribute and text values of policy elements: constants, or compiled C# expressions.

`compile_value` is the one place the policy package calls the expression compiler. Both kinds of
value answer `evaluate(context)`, so elements never test which one they hold.
"""

from __future__ import annotations

from typing import Any, Protocol

from certgate.expressions import ExpressionCompileError, compile_expression
from certgate.expressions.runtime import cs_str
from certgate.policy.errors import ExpressionValidationError


class Value(Protocol):
    """What an element holds for an attribute or text: a `Const` or a compiled expression.
    The result is whatever C# value the expression gives (elements convert it: `as_string`...)."""

    @property
    def uses_request_body(self) -> bool: ...
    @property
    def uses_response_body(self) -> bool: ...
    def evaluate(self, context: object) -> Any: ...


class Const:
    """A literal attribute value."""

    __slots__ = ("value",)
    uses_request_body = False
    uses_response_body = False
    is_expression = False

    def __init__(self, value: Any) -> None:
        self.value = value

    def evaluate(self, context: object) -> Any:
        return self.value


def compile_value(source: str, element: str, line: int, column: int, where: str) -> Value:
    """Compile `@(...)` / `@{...}` once, at save time; errors name the element and position.

    The result has `evaluate(context)`, `uses_request_body` and `uses_response_body`.
    """
    try:
        return compile_expression(source)
    except ExpressionCompileError as exc:
        error = ExpressionValidationError(
            f"{where}: {exc.message} (expression line {exc.line}, column {exc.column})",
            element,
            line,
            column,
        )
        error.source = source
        raise error from None


def as_string(value: Any) -> str:
    """A value as C# would print it (`True`, `1.5`, '' for null)."""
    return cs_str(value)


def as_bool(value: Any) -> bool:
    """Booleans from expressions, or the literal `true` / `false` (any case)."""
    if isinstance(value, bool):
        return value
    text = cs_str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"'{cs_str(value)}' is not a valid boolean")


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"'{value}' is not a valid integer")
    if isinstance(value, int):
        return value
    return int(cs_str(value).strip())
