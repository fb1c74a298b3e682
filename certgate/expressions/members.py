"""Run-time member resolution: the only path from an expression to a Python attribute.

Resolution is per (receiver type, member name) and cached by the compiled call site
(`closures.Site`), so a hot expression pays one type test per member access.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from operator import attrgetter
from types import FunctionType
from typing import cast

from .dotnet import METHODS, PROPS
from .dotnet.collections import LINQ, is_enumerable
from .errors import cs_error, null_reference
from .model import CsObject
from .runtime import Char, cs_str, equals

Getter = Callable[[object], object]


def _missing(t: type, name: str) -> Callable[..., object]:
    from .dotnet.typenames import _NAMES

    tn = getattr(t, "__cs_type__", None) or _NAMES.get(t, t.__name__)

    def fail(*_a: object, **_k: object) -> object:
        raise cs_error("MissingMemberException", f"'{tn}' does not contain a member '{name}'")

    return fail


def _null(name: str) -> Callable[..., object]:
    def fail(*_a: object, **_k: object) -> object:
        raise null_reference(f"reading '{name}' of null")

    return fail


def _table(tables: dict[type, dict], t: type, name: str) -> Callable[..., object] | None:
    for k in t.__mro__:
        table = tables.get(k)
        if table is not None and name in table:
            return table[name]
    return None


def resolve_property(t: type, name: str) -> Getter:
    """A getter for property `name` on values of Python type `t`."""
    if t is type(None):
        return _null(name)
    if issubclass(t, CsObject) and name in t.__cs_members__:
        getter = getattr(t, "__cs_getters__", {}).get(name)
        if getter is not None:
            return getter
        if hasattr(t, "__cs_property__") and callable(getattr(t, name, None)):
            prop = t.__cs_property__
            return lambda o: prop(o, name)
        return attrgetter(name)
    fn = _table(PROPS, t, name)
    if fn is not None:
        return fn
    return _missing(t, name)


def _cs_method(name: str) -> Callable[..., object]:
    def call(o: object, *a: object, **k: object) -> object:
        member = getattr(o, name)
        if not callable(member):
            raise cs_error("MissingMemberException", f"'{name}' is not a method")
        return member(*a, **k)

    return call


_UNIVERSAL: dict[str, Callable[..., object]] = {
    "ToString": lambda o, *a: cs_str(o),
    "Equals": lambda o, other: equals(o, other),
    "GetHashCode": lambda o: id(o) & 0x7FFFFFFF,
}


def resolve_method(t: type, name: str) -> Callable[..., object]:
    """A function `(receiver, *args, **kwargs)` for method `name` on values of type `t`.

    A CsObject method defined on the class is that function itself, called without a lookup.
    """
    if t is type(None):
        return _null(name)
    if (
        issubclass(t, CsObject)
        and name in t.__cs_members__
        and not isinstance(getattr(t, name, None), property)
    ):
        member = inspect.getattr_static(t, name, None)
        return member if isinstance(member, FunctionType) else _cs_method(name)
    fn = _table(METHODS, t, name)
    if fn is not None:
        return fn
    if name in LINQ and is_enumerable(t) and t is not Char:
        linq = LINQ[name]
        if "type_arg" in inspect.signature(linq).parameters:  # Cast<T>, OfType<T>
            return linq
        # `ToList<string>()`, `Select<string, int>(f)`: the type arguments change nothing here.
        return lambda o, *a, type_arg=None, **k: linq(o, *a, **k)
    if name in _UNIVERSAL:
        return _UNIVERSAL[name]
    return _missing(t, name)


def get_index(o: object, key: object) -> object:
    """`o[key]`: arrays and lists by int, strings to char, dictionaries by key."""
    if o is None:
        raise null_reference("indexing null")
    t = type(o)
    if t is list or t is tuple or t is bytes or t is bytearray:
        if type(key) is not int or not 0 <= key < len(o):  # type: ignore[arg-type]
            raise cs_error("IndexOutOfRangeException", "Index was outside the bounds of the array.")
        return o[key]  # type: ignore[index]
    if t is str or t is Char:
        if type(key) is not int or not 0 <= key < len(o):  # type: ignore[arg-type]
            raise cs_error("IndexOutOfRangeException", "Index was outside the bounds of the array.")
        return Char(o[key])  # type: ignore[index]
    if t is dict:
        try:
            return o[key]  # type: ignore[index]
        except KeyError:
            raise cs_error(
                "KeyNotFoundException",
                f"The given key '{cs_str(key)}' was not present in the dictionary.",
            ) from None
    if isinstance(o, CsObject) and hasattr(t, "__getitem__"):
        try:
            return o[key]  # type: ignore[index]
        except KeyError:
            raise cs_error(
                "KeyNotFoundException",
                f"The given key '{cs_str(key)}' was not present in the dictionary.",
            ) from None
    if isinstance(o, list):
        return get_index(list(o), key)
    raise cs_error("InvalidOperationException", f"'{type(o).__name__}' has no indexer")


def set_index(o: object, key: object, value: object) -> None:
    if o is None:
        raise null_reference("indexing null")
    if isinstance(o, list | bytearray):
        if type(key) is not int or not 0 <= key < len(o):
            raise cs_error("IndexOutOfRangeException", "Index was outside the bounds of the array.")
        if isinstance(o, bytearray):
            o[key] = cast(int, value) & 0xFF  # a non-int fails here, as in C#
        else:
            o[key] = value
    elif isinstance(o, dict):
        o[key] = value
    elif isinstance(o, CsObject) and hasattr(type(o), "__setitem__"):
        o[key] = value  # type: ignore[index]
    else:
        raise cs_error("InvalidOperationException", "The indexer is read-only")


def set_property(o: object, name: str, value: object) -> None:
    """Assignment to a property: only names a CsObject lists in `__cs_settable__`."""
    if o is None:
        raise null_reference(f"setting '{name}' of null")
    if isinstance(o, CsObject) and name in getattr(type(o), "__cs_settable__", ()):
        setattr(o, name, value)
        return
    raise cs_error("InvalidOperationException", f"Property '{name}' is read-only")
