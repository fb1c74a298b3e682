"""The allow-listed .NET surface: C# types by name and members of plain Python values.

`TYPES` maps a C# type name (without namespace) to a `CsType`: what `is`/`as`/casts check, its
static members and its constructor. `PROPS` / `METHODS` map a Python type to the C# instance members
its values offer. Nothing outside these tables (and `CsObject.__cs_members__`) is reachable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import cs_error

Fn = Callable[..., object]


@dataclass
class CsType:
    """One C# type an expression may name."""

    name: str
    check: Callable[[object], bool]
    convert: Fn | None = None
    static_props: dict[str, Callable[[], object]] = field(default_factory=dict)
    static_methods: dict[str, Fn] = field(default_factory=dict)
    new: Fn | None = None
    default: object = None
    implicit: Fn | None = None  # C# implicit conversion into this type (declared locals)

    def cast(self, value: object) -> object:
        """Explicit conversion `(T)value`; InvalidCastException when C# would throw one."""
        if self.convert is not None:
            return self.convert(value)
        if value is None or self.check(value):
            return value
        conv = getattr(value, "__cs_convert__", None)
        if conv is not None:
            return conv(self.name)
        from .typenames import name_of

        raise cs_error("InvalidCastException", f"Unable to cast {name_of(value)} to {self.name}.")


TYPES: dict[str, CsType] = {}
PROPS: dict[type, dict[str, Fn]] = {}
METHODS: dict[type, dict[str, Fn]] = {}

NAMESPACES = (
    "System.Collections.Generic.",
    "System.Text.RegularExpressions.",
    "System.Security.Cryptography.X509Certificates.",
    "System.Security.Cryptography.",
    "System.Globalization.",
    "System.Text.",
    "System.Linq.",
    "System.Net.",
    "System.Xml.Linq.",
    "System.Web.",
    "Newtonsoft.Json.Linq.",
    "Newtonsoft.Json.",
    "System.",
)


def constant(value: object) -> Callable[[], object]:
    """A static property that always reads `value` (`Encoding.UTF8`, an enum member)."""
    return lambda: value


def instance_of(cls: type) -> Callable[[object], bool]:
    """The `is`/cast check of a C# type that one Python class stands for."""
    return lambda v: isinstance(v, cls)


def register(t: CsType, *aliases: str) -> CsType:
    TYPES[t.name] = t
    for a in aliases:
        TYPES[a] = t
    return t


def members(*types: type, props: dict[str, Fn] | None = None, methods: dict[str, Fn] | None = None):
    """Add C# instance members to plain Python types."""
    for t in types:
        PROPS.setdefault(t, {}).update(props or {})
        METHODS.setdefault(t, {}).update(methods or {})


def lookup(name: str) -> CsType | None:
    """The type a (possibly namespace-qualified) C# name denotes, or None."""
    name = name.replace(" ", "")
    if "<" in name:
        name = name[: name.index("<")]
    for ns in NAMESPACES:
        if name.startswith(ns) and name[len(ns) :] in TYPES:
            return TYPES[name[len(ns) :]]
    return TYPES.get(name)


def default_value(type_name: str | None) -> object:
    """`default(T)` for a C# type name (`GetValueOrDefault<bool>(name)` without a default)."""
    t = lookup(type_name) if type_name else None
    return None if t is None or type_name.endswith("?") else t.default  # type: ignore[union-attr]


def is_namespace(prefix: str) -> bool:
    """Whether a dotted identifier chain is (the start of) an allowed namespace."""
    p = prefix + "."
    return any(ns.startswith(p) for ns in NAMESPACES)


def _load() -> None:
    from . import (  # noqa: F401
        auth,
        collections,
        datetimes,
        json,
        numbers,
        regex,
        rsa,
        strings,
        timezones,
        web,
        xml,
    )


_load()
