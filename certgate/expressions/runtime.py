"""C# operator and conversion semantics over the Python values that stand for .NET ones.

Value mapping: `str` is string, `Char` (a `str` subclass) is char, `int` is int/long, `float` is
double, `Decimal` is decimal, `bool` is bool, `None` is null, `datetime` is DateTime (naive =
Unspecified, UTC-aware = Utc, other aware = Local), `timedelta` is TimeSpan, `list` is an array or
List<T>, `dict` is Dictionary<K,V>, `bytes`/`bytearray` is byte[]. Everything else is a `CsObject`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .budget import check_length
from .errors import cs_error, null_reference
from .model import CsObject

Number = int | float | Decimal  # what C# arithmetic sees of a value (a char is its code point)

_I32 = 1 << 32
_I64 = 1 << 64


class Char(str):
    """A C# `char`: prints as itself, converts to its code point with `(int)`."""

    __slots__ = ()


def wrap32(v: int) -> int:
    v &= _I32 - 1
    return v - _I32 if v >= 1 << 31 else v


def wrap64(v: int) -> int:
    if -(1 << 63) <= v < 1 << 63:
        return v
    v &= _I64 - 1
    return v - _I64 if v >= 1 << 63 else v


def format_double(v: float) -> str:
    """.NET Core's shortest round-trip `double.ToString()` (`1E+16`, `0.5`, `NaN`, `∞`)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    r = repr(v)
    if "e" in r:
        mant, exp = r.split("e")
        mant = mant[:-2] if mant.endswith(".0") else mant
        sign = "-" if exp.startswith("-") else "+"
        return f"{mant}E{sign}{exp.lstrip('+-').zfill(2)}"
    return r


def cs_str(v: object) -> str:
    """What `v.ToString()` (or string concatenation) gives in C#; null becomes ""."""
    t = type(v)
    if t is str or t is Char:
        return v  # type: ignore[return-value]
    if v is None:
        return ""
    if t is bool:
        return "True" if v else "False"
    if t is int:
        return str(v)
    if t is float:
        return format_double(v)  # type: ignore[arg-type]
    if isinstance(v, CsObject):
        return v.ToString()
    from .dotnet import typenames

    return typenames.to_string(v)


def concat(a: object, b: object) -> str:
    x, y = cs_str(a), cs_str(b)
    check_length(len(x) + len(y))
    return x + y


def add(a: object, b: object) -> object:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return wrap64(a + b)  # type: ignore[operator]  # mypy does not narrow `a` through `ta`
    if ta is str or tb is str:
        if ta is not str and isinstance(a, CsObject) and hasattr(ta, "__cs_add__"):
            return a.__cs_add__(b)  # type: ignore[attr-defined]  # XNamespace + "name"
        return concat(a, b)
    if a is None or b is None:
        return None
    if ta is Char or tb is Char:  # a char's code point plus a number of any kind
        return _num(a) + _num(b)  # type: ignore[operator]
    if isinstance(a, datetime | timedelta) or isinstance(b, datetime | timedelta):
        return a + b  # type: ignore[operator]
    return _arith(a, b, lambda x, y: x + y)


def sub(a: object, b: object) -> object:
    if type(a) is int and type(b) is int:
        return wrap64(a - b)
    if a is None or b is None:
        return None
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _naive(a) - _naive(b)
    if isinstance(a, datetime | timedelta):
        return a - b  # type: ignore[operator]
    return _arith(a, b, lambda x, y: x - y)


def mul(a: object, b: object) -> object:
    if type(a) is int and type(b) is int:
        return wrap64(a * b)
    if a is None or b is None:
        return None
    return _arith(a, b, lambda x, y: x * y)


def div(a: object, b: object) -> object:
    if a is None or b is None:
        return None
    x, y = _num(a), _num(b)
    if type(x) is int and type(y) is int:
        if y == 0:
            raise cs_error("DivideByZeroException", "Attempted to divide by zero.")
        q = abs(x) // abs(y)
        return q if (x >= 0) == (y >= 0) else -q
    if isinstance(x, Decimal) or isinstance(y, Decimal):
        if y == 0:
            raise cs_error("DivideByZeroException", "Attempted to divide by zero.")
        return Decimal(x) / Decimal(y)
    x, y = float(x), float(y)
    if y == 0:
        return (
            math.nan
            if x == 0 or math.isnan(x)
            else math.copysign(math.inf, x) * (math.copysign(1, y))
        )
    return x / y


def mod(a: object, b: object) -> object:
    if a is None or b is None:
        return None
    x, y = _num(a), _num(b)
    if type(x) is int and type(y) is int:
        if y == 0:
            raise cs_error("DivideByZeroException", "Attempted to divide by zero.")
        q = abs(x) // abs(y)
        return x - y * (q if (x >= 0) == (y >= 0) else -q)
    if y == 0:
        return math.nan
    return math.fmod(float(x), float(y))


def _num(v: object) -> Number:
    t = type(v)
    if t is int or t is float or t is Decimal:
        return v  # type: ignore[return-value]  # mypy does not narrow `v` through `t`
    if t is Char:
        return ord(v)  # type: ignore[arg-type]
    if t is bool:
        raise cs_error("InvalidCastException", "bool is not a number")
    if hasattr(v, "__cs_number__"):
        return v.__cs_number__()
    raise cs_error("InvalidCastException", f"{type_name(v)} is not a number")


def _arith(a: object, b: object, op: Callable[[Any, Any], Any]) -> object:
    x, y = _num(a), _num(b)
    if type(x) is int and type(y) is int:
        return wrap64(op(x, y))
    if isinstance(x, Decimal) or isinstance(y, Decimal):
        return op(Decimal(x), Decimal(y))
    return op(float(x), float(y))


def _naive(d: datetime) -> datetime:
    return d.replace(tzinfo=None)


def equals(a: object, b: object) -> bool:
    """C# `==`: ordinal for strings, numeric across int/double, identity for other objects."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    ta, tb = type(a), type(b)
    if ta is tb and (ta is str or ta is int or ta is bool or ta is float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return str.__eq__(a, b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _naive(a) == _naive(b)
    eq = getattr(a, "__cs_equals__", None) or getattr(b, "__cs_equals__", None)
    if eq is not None:  # either side: `"name" == element.Name` converts the string as C# does
        return bool(eq(a if eq.__self__ is b else b))
    if isinstance(a, CsObject) or isinstance(b, CsObject):
        return False
    return a == b


def compare(a: object, b: object) -> int:
    """Ordering for `<`, `>`, OrderBy: numbers, strings (ordinal), DateTime, TimeSpan."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        a, b = _naive(a), _naive(b)
    elif (isinstance(a, str) and isinstance(b, str)) or (
        isinstance(a, timedelta) and isinstance(b, timedelta)
    ):
        pass
    elif hasattr(a, "__cs_compare__"):
        return a.__cs_compare__(b)
    else:
        a, b = _num(a), _num(b)
    return -1 if a < b else (1 if a > b else 0)  # type: ignore[operator]


def truthy(v: object) -> bool:
    """A C# condition must be a bool; a null `bool?` or a non-bool fails like C# would."""
    if v is True:
        return True
    if v is False:
        return False
    if v is None:
        raise cs_error("InvalidOperationException", "Nullable object must have a value.")
    conv = getattr(v, "__cs_bool__", None)
    if conv is not None:
        return bool(conv())
    raise cs_error("InvalidCastException", f"{type_name(v)} is not a bool")


def type_name(v: object) -> str:
    from .dotnet import typenames

    return typenames.name_of(v)


def require(v: object, what: str) -> object:
    if v is None:
        raise null_reference(what)
    return v
