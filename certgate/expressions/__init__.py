"""C# policy expressions: `compile_expression(source)` once, `evaluate(context)` per request.

The object protocol every engine object must follow (helpers writing `context`, certificates...):

* Derive from `model.CsObject`; list the C# member names (PascalCase, properties and methods)
  in `__cs_members__` and name the C# type in `__cs_type__`. Only listed names resolve. Optional:
  `__cs_interfaces__` (extra type names a cast such as `(IResponse)x` accepts) and
  `__cs_settable__` (properties an expression may assign), `__cs_getters__` (C# property name ->
  function of the object, when C# must see something else than the Python attribute).
* Properties are plain attributes or `@property`; methods are Python methods with the C# name.
  Named arguments arrive as keywords with the C# parameter name (`preserveContent=True`);
  generic methods (`As<JObject>`, `GetValueOrDefault<int>`) get `type_arg="JObject"` (the C#
  spelling). Methods with `out` parameters are called without them and return a tuple
  `(result, out1, ...)` (e.g. `TryGetValue(key) -> (True, value)`).
* Dictionary-like objects (`Headers`, `Variables`, `MatchedParameters`, `Query`,
  `Deployment.Certificates`) offer `Keys`, `Values`, `Count`, `ContainsKey`, `TryGetValue`,
  `GetValueOrDefault` in `__cs_members__`; `__getitem__` for the indexer (raise `KeyError` for a
  missing key: it becomes KeyNotFoundException); `__iter__` yielding
  `dotnet.collections.KeyValuePair(key, value)` (that makes LINQ such as
  `Certificates.Any(c => c.Value.Thumbprint == ...)` work); `__setitem__` only if writable.
* Lists are Python lists; strings `str`; numbers `int`/`float`; booleans `bool`; DateTime an aware
  UTC `datetime` (naive = DateTimeKind.Unspecified); TimeSpan `timedelta`; byte[] `bytes`; JSON
  values the classes of `dotnet.json` (`parse_body(text, type_arg)` is what `Body.As<T>()` returns:
  str, JObject, JArray or JToken, with Json.NET's JsonReaderException on bad JSON); enums
  (`X509NameType` etc.) arrive as `dotnet.enums.CsEnum` with `.name`.
* `GetValueOrDefault<T>(name)` without a default returns `dotnet.default_value(type_arg)`
  (false for bool, 0 for int, null for reference types), as C#'s `default(T)`.
* A class may define `__cs_convert__(type_name)` for explicit casts (`(int)x`), `__cs_equals__`
  for `==` (consulted on either side), `__cs_compare__` for `<`/`>`, `__cs_add__` for
  `x + "text"` (XNamespace + name), and `ToString()`. A `CsType(implicit=...)` converts values
  assigned to a local declared with that type (`XNamespace ns = "urn:x";`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from time import monotonic
from typing import Any

from .budget import METER, apply_limits
from .closures import translate
from .compiler import FIRST_SLOT, Compiler
from .errors import (
    ExpressionCompileError,
    ExpressionRuntimeError,
    InternalCompileError,
)
from .parser import parse
from .scanner import find_expressions

__all__ = [
    "CompiledExpression",
    "ExpressionCompileError",
    "ExpressionRuntimeError",
    "apply_limits",
    "compile_expression",
    "find_expressions",
]

log = logging.getLogger(__name__)


class CompiledExpression:
    """A compiled `@(...)`/`@{...}`; immutable and safe to share between requests and threads."""

    __slots__ = ("_fn", "_pad", "source", "uses_request_body", "uses_response_body")

    def __init__(self, source: str, fn: Any, nslots: int, uses_req: bool, uses_resp: bool) -> None:
        self.source = source
        self._fn = fn
        self._pad = (None,) * (nslots - FIRST_SLOT)
        self.uses_request_body = uses_req
        self.uses_response_body = uses_resp

    def evaluate(self, context: object) -> object:
        """Run the expression; failures raise `ExpressionRuntimeError`."""
        e = [context, METER.loop_iterations, None, *self._pad]
        try:
            return self._fn(e)
        except ExpressionRuntimeError:
            raise
        except Exception as exc:
            err = translate(exc)
            raise ExpressionRuntimeError(err.message, err.cs_type) from None

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"


class MeteredExpression(CompiledExpression):
    """An expression that can take long (see `budget`): it runs against its request's time
    budget. `context.expression_seconds` counts the seconds the request's metered expressions
    have run; it is unset until the first one (requests without them never pay for it)."""

    __slots__ = ()

    def evaluate(self, context: object) -> object:
        meter = METER
        if meter.deadline != math.inf:  # inside another metered evaluation: its clock runs
            return super().evaluate(context)
        spent = getattr(context, "expression_seconds", 0.0)
        start = monotonic()
        meter.deadline = start + meter.time_budget - spent
        try:
            return super().evaluate(context)
        finally:
            meter.deadline = math.inf
            with contextlib.suppress(AttributeError):  # None, or a context without the slot
                context.expression_seconds = spent + monotonic() - start  # type: ignore[attr-defined]


def compile_expression(source: str) -> CompiledExpression:
    """Parse and compile `@(...)` or `@{...}`; raises `ExpressionCompileError` with a position."""
    parsed = parse(source)
    c = Compiler(parsed)
    try:
        fn = c.compile()
    except ExpressionCompileError:
        raise
    except RecursionError:
        raise ExpressionCompileError("unsupported: expression nested too deeply", 1, 1) from None
    except InternalCompileError as e:
        # A compiler bug, not a refusal: logged with its cause (never the source text, which
        # may hold named values), and reported as an internal error at the construct's position.
        line, column = parsed.position(e.node)
        cause = e.__cause__
        log.error(
            "internal error compiling a policy expression at line %d, column %d (%s): %s",
            line,
            column,
            e.node.type,
            type(cause).__name__,
            exc_info=cause,
        )
        raise ExpressionCompileError(
            f"internal error: the compiler failed on this {e.node.type} "
            f"({type(cause).__name__}); please report it",
            line,
            column,
        ) from None
    kind = MeteredExpression if c.metered else CompiledExpression
    return kind(source, fn, c.nslots, c.uses_request_body, c.uses_response_body)
