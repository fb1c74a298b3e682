"""The closures compiled expressions are made of: member access, calls, operators, exceptions.

Each call site keeps the member it resolved for the last receiver type inline (a `Site`), so a hot
expression pays one identity test per access; a chain of property reads (`context.Request.Url`)
is one closure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from operator import itemgetter
from typing import Any, NoReturn

from .budget import pulse
from .errors import BudgetExceeded, CsException, cs_error
from .members import get_index, resolve_method, resolve_property
from .model import CsObject
from .runtime import add, compare, cs_str, div, equals, mod, mul, sub, wrap64

log = logging.getLogger(__name__)

Fn = Callable[[list], Any]
NORMAL, BREAK, CONTINUE, RETURN = 0, 1, 2, 3


class NullShort(Exception):
    """A `?.` met null: the rest of the access chain evaluates to null."""


NULL_SHORT = NullShort()


class AnonymousObject(CsObject):
    """`new { a = 1, b }`: read-only named values (serialised by JsonConvert as an object)."""

    __slots__ = ("_values",)
    __cs_type__ = "AnonymousType"
    _names: tuple[str, ...] = ()

    def __init__(self, *values: Any) -> None:
        self._values = dict(zip(self._names, values, strict=True))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def ToString(self) -> str:
        inner = ", ".join(f"{k} = {cs_str(v)}" for k, v in self._values.items())
        return "{ " + inner + " }"


_ANON: dict[tuple[str, ...], type[AnonymousObject]] = {}


def anonymous_type(names: tuple[str, ...]) -> type[AnonymousObject]:
    """One class per member-name tuple (bounded by the distinct shapes saved policies use)."""
    cls = _ANON.get(names)
    if cls is None:
        cls = type(
            "AnonymousType",
            (AnonymousObject,),
            {"__slots__": (), "_names": names, "__cs_members__": frozenset(names) | {"ToString"}},
        )
        _ANON[names] = cls
    return cls


def _unresolved(*args: Any) -> NoReturn:
    """A fresh site's member: never called, as no receiver's class is None."""
    raise AssertionError("a site resolves its first receiver through Site.miss")


class Site:
    """One member name at one call site: the last receiver type with its resolution as one tuple
    (read and replaced atomically, so threads may share it), and every type seen so far."""

    __slots__ = ("hit", "name", "resolve", "seen")

    def __init__(self, name: str, resolve: Callable[[type, str], Callable[..., Any]]) -> None:
        self.name = name
        self.resolve = resolve
        self.seen: dict[type, Callable[..., Any]] = {}
        self.hit: tuple[type | None, Callable[..., Any]] = (None, _unresolved)

    def miss(self, o: Any) -> Callable[..., Any]:
        """The member for a receiver of another type than the last one."""
        t = o.__class__
        fn = self.seen.get(t)
        if fn is None:
            fn = self.seen[t] = self.resolve(t, self.name)
        self.hit = (t, fn)
        return fn


def member_fn(source: Fn | int, names: tuple[str, ...]) -> Fn:
    """`x.A.B...`: the property reads of a chain, in order, in one closure. `source` computes
    `x`, or is the slot of `e` holding it (`context` or a local)."""
    sites = tuple(Site(name, resolve_property) for name in names)
    if isinstance(source, int):
        if len(sites) <= 3:
            return _slot_path(source, sites)
        source = itemgetter(source)

    def get(e: list) -> Any:
        o = source(e)
        for site in sites:
            hit = site.hit
            o = hit[1](o) if o.__class__ is hit[0] else site.miss(o)(o)
        return o

    return get


def _slot_path(slot: int, sites: tuple[Site, ...]) -> Fn:
    """The short chains most policies use (`context.Request.Certificate.Thumbprint`), unrolled:
    the loop costs as much as the reads."""
    s0, *rest = sites
    if not rest:

        def read1(e: list) -> Any:
            o = e[slot]
            hit = s0.hit
            return hit[1](o) if o.__class__ is hit[0] else s0.miss(o)(o)

        return read1
    s1, *rest = rest
    if not rest:

        def read2(e: list) -> Any:
            o = e[slot]
            hit = s0.hit
            o = hit[1](o) if o.__class__ is hit[0] else s0.miss(o)(o)
            hit = s1.hit
            return hit[1](o) if o.__class__ is hit[0] else s1.miss(o)(o)

        return read2
    (s2,) = rest

    def read3(e: list) -> Any:
        o = e[slot]
        hit = s0.hit
        o = hit[1](o) if o.__class__ is hit[0] else s0.miss(o)(o)
        hit = s1.hit
        o = hit[1](o) if o.__class__ is hit[0] else s1.miss(o)(o)
        hit = s2.hit
        return hit[1](o) if o.__class__ is hit[0] else s2.miss(o)(o)

    return read3


def indexer_fn(obj: Fn, idx: list[Fn]) -> Fn:
    if len(idx) != 1:
        raise cs_error("InvalidOperationException", "multi-dimensional index")
    key = idx[0]
    return lambda e: get_index(obj(e), key(e))


def method_call_fn(
    obj: Fn, name: str, pos: list[Fn], named: dict[str, Fn], type_arg: str | None
) -> Fn:
    """`obj.Name(args)`: the method resolves on the receiver before the arguments run."""
    site = Site(name, resolve_method)
    if not named and type_arg is None and len(pos) <= 2:
        return _positional_call(obj, site, pos)

    def call(e: list) -> Any:
        o = obj(e)
        hit = site.hit
        method = hit[1] if o.__class__ is hit[0] else site.miss(o)
        kw = {k: f(e) for k, f in named.items()}
        if type_arg is not None:
            kw["type_arg"] = type_arg
        return method(o, *[f(e) for f in pos], **kw)

    return call


def _positional_call(obj: Fn, site: Site, pos: list[Fn]) -> Fn:
    """Calls with up to two positional arguments (nearly all), without building argument lists."""
    if not pos:

        def call0(e: list) -> Any:
            o = obj(e)
            hit = site.hit
            return (hit[1] if o.__class__ is hit[0] else site.miss(o))(o)

        return call0
    if len(pos) == 1:
        a0 = pos[0]

        def call1(e: list) -> Any:
            o = obj(e)
            hit = site.hit
            return (hit[1] if o.__class__ is hit[0] else site.miss(o))(o, a0(e))

        return call1
    a0, a1 = pos

    def call2(e: list) -> Any:
        o = obj(e)
        hit = site.hit
        return (hit[1] if o.__class__ is hit[0] else site.miss(o))(o, a0(e), a1(e))

    return call2


def static_call_fn(
    fn: Callable[..., Any], pos: list[Fn], named: dict[str, Fn], type_arg: str | None
) -> Fn:
    if not named and type_arg is None:
        if not pos:
            return lambda e: fn()
        if len(pos) == 1:
            a0 = pos[0]
            return lambda e: fn(a0(e))
        if len(pos) == 2:
            a0, a1 = pos
            return lambda e: fn(a0(e), a1(e))

    def call(e: list) -> Any:
        kw = {k: f(e) for k, f in named.items()}
        if type_arg is not None:
            kw["type_arg"] = type_arg
        return fn(*[f(e) for f in pos], **kw)

    return call


def local_call_fn(holder: list, pos: list[Fn]) -> Fn:
    def call(e: list) -> Any:
        pulse()
        slots, body = holder
        args = [f(e) for f in pos]
        saved = [e[s] for s in slots]
        for s, a in zip(slots, args, strict=False):
            e[s] = a
        try:
            return body(e)
        finally:
            for s, v in zip(slots, saved, strict=True):
                e[s] = v

    return call


def delegate_call_fn(target: Fn, pos: list[Fn]) -> Fn:
    def call(e: list) -> Any:
        f = target(e)
        if f is None:
            raise cs_error("NullReferenceException", "delegate is null")
        if not callable(f) or isinstance(f, type):
            raise cs_error("InvalidOperationException", "value is not callable")
        return f(*[a(e) for a in pos])

    return call


def any_of(conds: list[Fn]) -> Fn:
    """`a || b || c ...`: one closure per three conditions (fewer calls than one per operator)."""
    if len(conds) == 1:
        return conds[0]
    if len(conds) == 2:
        a, b = conds
        return lambda e: a(e) or b(e)
    a, b, rest = conds[0], conds[1], any_of(conds[2:])
    return lambda e: a(e) or b(e) or rest(e)


def all_of(conds: list[Fn]) -> Fn:
    """`a && b && c ...`, as `any_of`."""
    if len(conds) == 1:
        return conds[0]
    if len(conds) == 2:
        a, b = conds
        return lambda e: a(e) and b(e)
    a, b, rest = conds[0], conds[1], all_of(conds[2:])
    return lambda e: a(e) and b(e) and rest(e)


def tick(e: list) -> None:
    """A loop back-edge: counts the evaluation's iterations and watches the request's time."""
    e[1] -= 1
    if e[1] < 0:
        raise BudgetExceeded("loop iteration budget exhausted")
    pulse()


def nop(e: list) -> int:
    return NORMAL


def to_int(v: Any) -> int:
    from .dotnet.numbers import to_number

    return v if type(v) is int else to_number(v, "long")


def negate(v: Any) -> Any:
    if v is None:
        return None
    if type(v) is int:
        return wrap64(-v)
    if isinstance(v, bool) or (isinstance(v, str) and len(v) != 1):
        raise cs_error("InvalidCastException", "operator '-' cannot be applied")
    return -(ord(v) if isinstance(v, str) else v)


def bitop(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def run(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        if type(a) is bool and type(b) is bool:
            return bool(op(a, b))
        return wrap64(op(to_int(a), to_int(b)))

    return run


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": add,
    "-": sub,
    "*": mul,
    "/": div,
    "%": mod,
    "==": equals,
    "!=": lambda a, b: not equals(a, b),
    "<": lambda a, b: a is not None and b is not None and compare(a, b) < 0,
    ">": lambda a, b: a is not None and b is not None and compare(a, b) > 0,
    "<=": lambda a, b: a is not None and b is not None and compare(a, b) <= 0,
    ">=": lambda a, b: a is not None and b is not None and compare(a, b) >= 0,
    "&": bitop(lambda a, b: a & b),
    "|": bitop(lambda a, b: a | b),
    "^": bitop(lambda a, b: a ^ b),
    "<<": bitop(lambda a, b: a << (b & 63)),
    ">>": bitop(lambda a, b: a >> (b & 63)),
}


def implicit_conversion(init: Fn, tname: str) -> Fn:
    """Implicit conversions for declared locals: numeric widening (`double d = 1;` holds 1.0)
    and a type's own (`XNamespace ns = "urn:x";`)."""
    if tname in ("double", "float", "Double", "Single"):
        return lambda e: float(v) if type(v := init(e)) is int else v
    if tname in ("decimal", "Decimal"):
        from decimal import Decimal

        return lambda e: Decimal(v) if type(v := init(e)) is int else v
    from .dotnet import lookup

    target = lookup(tname)
    convert = target.implicit if target is not None else None
    if convert is not None:
        return lambda e: convert(init(e))
    return init


def catches(tname: str, cs_type: str) -> bool:
    return tname in ("Exception", "SystemException") or tname == cs_type


class ExceptionObject(CsObject):
    """The value bound by `catch (Exception ex)` and built by `new Exception(msg)`."""

    __slots__ = ("Message", "cs_type")
    __cs_type__ = "Exception"
    __cs_members__ = frozenset({"Message", "ToString"})

    def ToString(self) -> str:
        return f"System.{self.cs_type}: {self.Message}"

    def __init__(self, cs_type: str, message: str) -> None:
        self.cs_type = cs_type
        self.Message = message


def translate(exc: BaseException) -> CsException:
    """Map a Python failure inside the object model onto the .NET exception C# would raise."""
    if isinstance(exc, CsException | BudgetExceeded):
        return exc  # type: ignore[return-value]
    if isinstance(exc, RecursionError | MemoryError):
        return BudgetExceeded("expression exceeded its resource limits")  # type: ignore[return-value]
    kind = {
        KeyError: "KeyNotFoundException",
        IndexError: "IndexOutOfRangeException",
        ZeroDivisionError: "DivideByZeroException",
        OverflowError: "OverflowException",
        ValueError: "FormatException",
        TypeError: "ArgumentException",
        UnicodeError: "DecoderFallbackException",
    }
    from .errors import ExpressionRuntimeError

    if isinstance(exc, ExpressionRuntimeError):
        return cs_error(exc.cs_type, exc.message)
    if isinstance(exc, TypeError | AttributeError) or not isinstance(exc, tuple(kind)):
        # Not what a .NET member throws on bad input: a shim bug (a signature C# can call that
        # the shim does not take...). Logged, then surfaced as the .NET exception it resembles.
        log.warning("internal error in a .NET shim: %s", type(exc).__name__, exc_info=exc)
    for py, cs in kind.items():
        if isinstance(exc, py):
            return cs_error(cs, str(exc) or cs)
    return cs_error("Exception", f"{type(exc).__name__}: {exc}")
