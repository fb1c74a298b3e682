"""Errors raised while compiling and evaluating policy expressions."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node


class ExpressionCompileError(Exception):
    """The expression is not valid C# or uses something outside the sandbox.

    `line` and `column` are 1-based positions inside the full `@(...)` / `@{...}` text.
    """

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.line = line
        self.column = column


class InternalCompileError(Exception):
    """The compiler itself failed on `node` (a bug, not a refusal); the cause is chained."""

    def __init__(self, node: Node) -> None:
        super().__init__(node.type)
        self.node = node


class ExpressionRuntimeError(Exception):
    """Evaluation failed; the engine reports it with APIM's reason below."""

    reason = "ExpressionValueEvaluationFailure"

    def __init__(self, message: str, cs_type: str = "Exception") -> None:
        super().__init__(message)
        self.message = message
        self.cs_type = cs_type


class CsException(ExpressionRuntimeError):
    """A .NET exception (NullReferenceException, FormatException...) that `catch` can handle.

    `message` is the .NET message alone; `str()` prefixes the exception type.
    """

    def __str__(self) -> str:
        return f"{self.cs_type}: {self.message}"


class BudgetExceeded(ExpressionRuntimeError):
    """A block ran too long or built too large a value; `catch` cannot swallow it."""


def cs_error(cs_type: str, message: str) -> CsException:
    """Build a catchable .NET exception of the given C# type name."""
    return CsException(message, cs_type)


def null_reference(what: str) -> CsException:
    return cs_error(
        "NullReferenceException", f"Object reference not set to an instance of an object ({what})."
    )
