"""Newtonsoft.Json.Linq: JToken, JObject, JArray, JValue, JProperty and JsonConvert.

`parse_json(text)` is what `Body.As<JObject>()` / `As<JArray>()` / `As<JToken>()` should return.
`ToString()` follows Json.NET's indented output (two spaces, `"name": value`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import cast

from ..budget import METER, check_items, spend
from ..errors import BudgetExceeded, cs_error
from ..model import CsObject
from ..runtime import Char, cs_str
from . import CsType, lookup, register
from .collections import KeyValuePair
from .enums import JTOKEN_TYPE, CsEnum
from .jsonlenient import relax


class JToken(CsObject):
    """Base of all JSON tokens."""

    __slots__ = ("_parent",)
    __cs_type__ = "JToken"
    __cs_members__ = frozenset(
        [
            "Type",
            "HasValues",
            "Parent",
            "Root",
            "Children",
            "Value",
            "Values",
            "ToString",
            "ToObject",
            "SelectToken",
            "SelectTokens",
            "DeepClone",
            "Remove",
            "Replace",
            "Path",
            "Next",
            "Previous",
            "First",
            "Last",
            "Count",
        ]
    )

    def __init__(self) -> None:
        self._parent: JContainer | None = None

    @property
    def Type(self) -> CsEnum:
        return JTOKEN_TYPE[self._type_name()]

    def _type_name(self) -> str:
        return "None"

    @property
    def Parent(self) -> JContainer | None:
        return self._parent

    @property
    def Root(self) -> JToken:
        t: JToken = self
        while t._parent is not None:
            t = t._parent
        return t

    @property
    def HasValues(self) -> bool:
        return False

    @property
    def Path(self) -> str:
        return ""

    def Children(self) -> Sequence[JToken]:
        return []

    def Value(self, key: object = None, type_arg: str | None = None) -> object:
        token = self if key is None else self._child(key)
        if token is None:
            return None
        return convert_token(token, type_arg or "JToken")

    def Values(self, type_arg: str | None = None) -> list[object]:
        return [convert_token(t, type_arg or "JToken") for t in self.Children()]

    def _child(self, key: object) -> JToken | None:
        raise cs_error(
            "InvalidOperationException", f"Cannot access child value on {self.__cs_type__}."
        )

    def __getitem__(self, key: object) -> JToken | None:
        return self._child(key)

    def ToString(self, formatting: object = None, *_: object) -> str:
        indent = not (isinstance(formatting, CsEnum) and formatting.name == "None")
        return write(self, indent)

    def ToObject(self, type_arg: str | None = None) -> object:
        return to_plain(self) if type_arg is None else convert_token(self, type_arg)

    def SelectToken(self, path: str, error_when_no_match: bool = False) -> JToken | None:
        t = select_token(self, path)
        if t is None and error_when_no_match:
            raise cs_error("JsonException", f"Path '{path}' does not exist.")
        return t

    def SelectTokens(self, path: str) -> list[JToken]:
        t = select_token(self, path)
        return [] if t is None else [t]

    def DeepClone(self) -> JToken:
        return (
            parse_json(write(self, False))
            if not isinstance(self, JProperty)
            else JProperty(self.Name, self.Value.DeepClone())
        )

    def Remove(self, *args: object) -> object:
        if args:
            raise cs_error("ArgumentException", "Remove takes no argument on this token")
        if self._parent is None:
            raise cs_error("InvalidOperationException", "The parent is missing.")
        self._parent._remove_child(self)
        return None

    def Replace(self, value: object) -> None:
        if self._parent is None:
            raise cs_error("InvalidOperationException", "The parent is missing.")
        self._parent._replace_child(self, to_token(value))

    @property
    def Next(self) -> JToken | None:
        return None

    @property
    def Previous(self) -> JToken | None:
        return None

    @property
    def First(self) -> JToken | None:
        c = self.Children()
        return c[0] if c else None

    @property
    def Last(self) -> JToken | None:
        c = self.Children()
        return c[-1] if c else None

    @property
    def Count(self) -> int:
        return len(self.Children())

    def __cs_convert__(self, type_name: str) -> object:
        return convert_token(self, type_name)


class JContainer(JToken):
    __slots__ = ()

    @property
    def HasValues(self) -> bool:
        return bool(self.Children())

    def _remove_child(self, child: JToken) -> None:
        raise NotImplementedError

    def _replace_child(self, child: JToken, new: JToken) -> None:
        raise NotImplementedError


class JObject(JContainer):
    """A JSON object: ordered properties."""

    __slots__ = ("_props",)
    __cs_type__ = "JObject"
    __cs_members__ = JToken.__cs_members__ | frozenset(
        [
            "Add",
            "Remove",
            "Property",
            "Properties",
            "ContainsKey",
            "TryGetValue",
            "GetValue",
            "Keys",
            "Merge",
            "TryAdd",
        ]
    )

    def __init__(self, *content: object) -> None:
        super().__init__()
        self._props: dict[str, JToken] = {}
        for c in content:
            for item in c if isinstance(c, list) else [c]:
                if not isinstance(item, JProperty):
                    raise cs_error("ArgumentException", "Can not add a non-property to JObject.")
                self._add_prop(item.Name, item.Value)

    def _type_name(self) -> str:
        return "Object"

    def _add_prop(self, name: str, value: object) -> None:
        if name in self._props:
            raise cs_error(
                "ArgumentException",
                f"Can not add property {name} to Newtonsoft.Json.Linq.JObject. "
                "Property with the same name already exists on object.",
            )
        self._set(name, value)

    def _set(self, name: str, value: object) -> None:
        tok = to_token(value)
        if tok._parent is not None:
            tok = tok.DeepClone()
        tok._parent = self
        self._props[cs_str(name)] = tok

    def _child(self, key: object) -> JToken | None:
        if not isinstance(key, str):
            raise cs_error("ArgumentException", "Accessed JObject values with invalid key value.")
        return self._props.get(key)

    def __setitem__(self, key: object, value: object) -> None:
        self._set(cs_str(key), value)

    def __iter__(self):
        return iter([KeyValuePair(k, v) for k, v in self._props.items()])

    def Children(self) -> Sequence[JToken]:
        return self.Properties()

    def Properties(self) -> list[JProperty]:
        return [JProperty._view(self, k) for k in self._props]

    def Property(self, name: str, *_: object) -> JProperty | None:
        return JProperty._view(self, name) if name in self._props else None

    def Add(self, name: object, value: object = None) -> None:
        if isinstance(name, JProperty):
            self._add_prop(name.Name, name.Value)
        else:
            self._add_prop(cs_str(name), value)

    def TryAdd(self, name: str, value: object) -> bool:
        if name in self._props:
            return False
        self._set(name, value)
        return True

    def Remove(self, *args: object) -> object:
        if not args:
            return super().Remove()
        return self._props.pop(cs_str(args[0]), None) is not None

    def ContainsKey(self, name: str) -> bool:
        return name in self._props

    def TryGetValue(self, name: str) -> tuple[bool, JToken | None]:
        v = self._props.get(name)
        return v is not None, v

    def GetValue(self, name: str, *_: object) -> JToken | None:
        return self._props.get(name)

    @property
    def Keys(self) -> list[str]:
        return list(self._props)

    def Merge(self, other: object, *_: object) -> None:
        if isinstance(other, JObject):
            for k, v in other._props.items():
                self._set(k, v)

    @property
    def Count(self) -> int:
        return len(self._props)

    def _remove_child(self, child: JToken) -> None:
        for k, v in list(self._props.items()):
            if v is child:
                del self._props[k]
                child._parent = None

    def _replace_child(self, child: JToken, new: JToken) -> None:
        for k, v in self._props.items():
            if v is child:
                self._set(k, new)
                return


class JArray(JContainer):
    """A JSON array."""

    __slots__ = ("_items",)
    __cs_type__ = "JArray"
    __cs_members__ = JToken.__cs_members__ | frozenset(
        ["Add", "Remove", "RemoveAt", "Insert", "Clear", "Contains", "IndexOf"]
    )

    def __init__(self, *content: object) -> None:
        super().__init__()
        self._items: list[JToken] = []
        for c in content:
            for item in c if isinstance(c, list) else [c]:
                self.Add(item)

    def _type_name(self) -> str:
        return "Array"

    def _child(self, key: object) -> JToken | None:
        if type(key) is not int:
            raise cs_error("ArgumentException", "Accessed JArray values with invalid key value.")
        if not 0 <= key < len(self._items):
            raise cs_error("ArgumentOutOfRangeException", "Index was out of range.")
        return self._items[key]

    def __setitem__(self, key: object, value: object) -> None:
        self._child(key)  # an int within bounds, or it raises
        self._items[cast(int, key)] = _adopt(value, self)

    def __iter__(self):
        return iter(list(self._items))

    def Children(self) -> Sequence[JToken]:
        return list(self._items)

    def Add(self, value: object) -> None:
        check_items(len(self._items) + 1)
        self._items.append(_adopt(value, self))

    def Insert(self, index: int, value: object) -> None:
        self._items.insert(index, _adopt(value, self))

    def Remove(self, *args: object) -> object:
        if not args:
            return super().Remove()
        for i, t in enumerate(self._items):
            if t is args[0]:
                del self._items[i]
                return True
        return False

    def RemoveAt(self, index: int) -> None:
        self._child(index)
        del self._items[index]

    def Clear(self) -> None:
        self._items.clear()

    def Contains(self, value: object) -> bool:
        return any(t is value for t in self._items)

    def IndexOf(self, value: object) -> int:
        return next((i for i, t in enumerate(self._items) if t is value), -1)

    @property
    def Count(self) -> int:
        return len(self._items)

    def _remove_child(self, child: JToken) -> None:
        self._items = [t for t in self._items if t is not child]

    def _replace_child(self, child: JToken, new: JToken) -> None:
        self._items = [_adopt(new, self) if t is child else t for t in self._items]


def _adopt(value: object, parent: JContainer) -> JToken:
    tok = to_token(value)
    if tok._parent is not None:
        tok = tok.DeepClone()
    tok._parent = parent
    return tok


class JValue(JToken):
    """A JSON scalar: string, number, bool, null or date."""

    __slots__ = ("value",)
    __cs_type__ = "JValue"
    __cs_members__ = JToken.__cs_members__ | frozenset({"Value", "Equals", "CompareTo"})

    def __init__(self, value: object = None) -> None:
        super().__init__()
        self.value = str(value) if type(value) is Char else value

    def _type_name(self) -> str:
        v = self.value
        if v is None:
            return "Null"
        if isinstance(v, bool):
            return "Boolean"
        if isinstance(v, int):
            return "Integer"
        if isinstance(v, float | Decimal):
            return "Float"
        if isinstance(v, datetime):
            return "Date"
        return "String"

    def Value(self, key: object = None, type_arg: str | None = None) -> object:
        if key is None and type_arg is None:
            return self.value
        return super().Value(key, type_arg)

    def __cs_property__(self, name: str) -> object:
        """`jvalue.Value` read as a property (Json.NET's `object Value`)."""
        return self.value

    def ToString(self, *args: object) -> str:
        if args and isinstance(args[0], CsEnum) and args[0].type_name == "Formatting":
            return write(self, False)
        v = self.value
        if isinstance(v, float):
            return cs_str(v)
        return cs_str(v)

    def Equals(self, other: object) -> bool:
        return isinstance(other, JValue) and other.value == self.value

    def CompareTo(self, other: object) -> int:
        from ..runtime import compare

        return compare(self.value, other.value if isinstance(other, JValue) else other)

    def __cs_bool__(self) -> bool:
        if isinstance(self.value, bool):
            return self.value
        raise cs_error("InvalidCastException", "Can not convert token to Boolean.")


class JProperty(JToken):
    """A name/value pair inside a JObject (a live view when it came from one)."""

    __slots__ = ("Name", "_owner", "_value")
    __cs_type__ = "JProperty"
    __cs_members__ = JToken.__cs_members__ | frozenset({"Name", "Value"})

    def __init__(self, name: object, *content: object) -> None:
        super().__init__()
        self.Name = cs_str(name)
        self._owner: JObject | None = None
        if len(content) == 1 and not isinstance(content[0], list):
            self._value = to_token(content[0])
        else:
            self._value = JArray(*content)

    @classmethod
    def _view(cls, owner: JObject, name: str) -> JProperty:
        p = cls.__new__(cls)
        p._parent = owner
        p.Name = name
        p._owner = owner
        p._value = owner._props[name]
        return p

    def _type_name(self) -> str:
        return "Property"

    @property
    def Value(self) -> JToken:  # type: ignore[override]  # C#'s property hides Value<T>(key)
        return self._value

    @property
    def HasValues(self) -> bool:
        return True

    def Children(self) -> Sequence[JToken]:
        return [self._value]

    def Remove(self, *args: object) -> object:
        if self._owner is None:
            raise cs_error("InvalidOperationException", "The parent is missing.")
        self._owner._props.pop(self.Name, None)
        self._owner = None
        return None

    def __cs_equals__(self, other: object) -> bool:
        return other is self or (
            isinstance(other, JProperty)
            and other._owner is not None
            and other._owner is self._owner
            and other.Name == self.Name
        )


# --- conversion ---------------------------------------------------------------------------------


def to_token(value: object, depth: int = 0) -> JToken:
    """JToken.FromObject for the values expressions hold."""
    if depth > METER.json_max_depth:
        raise BudgetExceeded("JSON nested too deeply")
    if isinstance(value, JToken):
        return value
    if value is None or isinstance(value, str | bool | int | float | Decimal | datetime):
        return JValue(value)
    if isinstance(value, dict):
        o = JObject()
        for k, v in value.items():
            o._set(cs_str(k), to_token(v, depth + 1))
        return o
    if isinstance(value, list | tuple):
        return JArray([to_token(v, depth + 1) for v in value])
    values = getattr(value, "_values", None)
    if isinstance(values, dict):
        return to_token(values, depth)
    if isinstance(value, KeyValuePair):
        return JProperty(cs_str(value.Key), value.Value)
    if isinstance(value, bytes | bytearray):
        import base64

        return JValue(base64.b64encode(bytes(value)).decode())
    return JValue(cs_str(value))


def to_plain(token: JToken) -> object:
    if isinstance(token, JObject):
        return {k: to_plain(v) for k, v in token._props.items()}
    if isinstance(token, JArray):
        return [to_plain(v) for v in token._items]
    if isinstance(token, JProperty):
        return to_plain(token.Value)
    return token.value  # type: ignore[attr-defined]


def convert_token(token: JToken, type_name: str) -> object:
    """Json.NET's explicit conversions: `(string)token`, `Value<int>()`, `ToObject<T>()`."""
    t = type_name.replace("System.", "").replace("?", "")
    if t in ("JToken", "object", "Object"):
        return token
    if t in ("JObject", "JArray", "JValue", "JProperty", "JContainer"):
        target = lookup(t)
        if target is not None and target.check(token):
            return token
        raise cs_error("InvalidCastException", f"Unable to cast {token.__cs_type__} to {t}.")
    if t.startswith(("Dictionary", "IDictionary", "List", "IList", "IEnumerable")) or t.endswith(
        "[]"
    ):
        return to_plain(token)
    if not isinstance(token, JValue):
        if t in ("string", "String"):
            raise cs_error("ArgumentException", f"Can not convert {token._type_name()} to String.")
        raise cs_error("InvalidCastException", f"Can not convert {token._type_name()} to {t}.")
    v = token.value
    if t in ("string", "String"):
        if v is None:
            return None
        if isinstance(v, float):
            return cs_str(v)
        return cs_str(v)
    if v is None:
        if type_name.endswith("?"):
            return None
        raise cs_error("ArgumentException", f"Can not convert Null to {t}.")
    from .numbers import parse_bool, parse_float, parse_int, to_number

    if t in ("bool", "Boolean"):
        if isinstance(v, bool):
            return v
        if isinstance(v, str):
            return parse_bool(v)
        return bool(v)
    if t in ("int", "Int32", "long", "Int64", "short", "byte", "uint", "ulong"):
        kind = {"Int32": "int", "Int64": "long"}.get(t, t)
        if isinstance(v, str):
            return parse_int(v, kind)
        if isinstance(v, float):
            from .numbers import convert_int

            return convert_int(v, kind)
        return to_number(v, kind)
    if t in ("double", "Double", "float", "Single", "decimal", "Decimal"):
        f = parse_float(v) if isinstance(v, str) else float(v)  # type: ignore[arg-type]
        return Decimal(str(v)) if t.lower() == "decimal" else f
    if t == "DateTime":
        from .datetimes import parse_datetime

        return v if isinstance(v, datetime) else parse_datetime(v)
    target = lookup(t)
    if target is not None:
        return target.cast(v)
    raise cs_error("InvalidCastException", f"Can not convert to {t}.")


# --- parse / write ------------------------------------------------------------------------------


def _from_python(v: object, depth: int = 0) -> JToken:
    """JTokens from `json.loads` output; containers deeper than MaxDepth fail as in Json.NET."""
    if isinstance(v, list):
        if depth >= METER.json_max_depth:
            raise _too_deep()
        spend()
    if isinstance(v, _Pairs):
        o = JObject()
        for k, x in v:
            o._set(k, _from_python(x, depth + 1))
        return o
    if isinstance(v, list):
        a = JArray()
        for x in v:
            a._items.append(_adopt(_from_python(x, depth + 1), a))
        return a
    return JValue(v)


def _too_deep() -> Exception:
    return cs_error(
        "JsonReaderException", f"The reader's MaxDepth of {METER.json_max_depth} has been exceeded."
    )


class _Pairs(list):
    """Object members in document order (duplicates: the last wins, as Json.NET's Parse)."""


def parse_json(text: object) -> JToken:
    """JToken.Parse; invalid JSON raises JsonReaderException."""
    if text is None:
        raise cs_error("ArgumentNullException", "Value cannot be null.")
    s = str(text)
    if len(s) > METER.json_max_chars:
        raise BudgetExceeded(
            f"JSON text of {len(s)} characters is larger than the limit ({METER.json_max_chars})"
        )
    try:
        data = json.loads(s, object_pairs_hook=_Pairs, parse_constant=_bad_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as e:
        try:  # Json.NET also reads 'quotes', unquoted names, comments, trailing commas
            data = json.loads(relax(s), object_pairs_hook=_Pairs, parse_constant=_bad_constant)
        except RecursionError:
            raise _too_deep() from None
        except ValueError:
            raise cs_error(
                "JsonReaderException", f"Unexpected character while parsing JSON: {e}"
            ) from None
    return _from_python(data)


def parse_body(text: str, type_arg: str | None) -> object:
    """What `Body.As<T>()` returns for a buffered body: string, JObject, JArray or JToken."""
    t = (type_arg or "string").replace("Newtonsoft.Json.Linq.", "").replace("System.", "")
    if t in ("string", "String"):
        return text
    if t == "JObject":
        return _parse_as(JObject, "JObject")(text)
    if t == "JArray":
        return _parse_as(JArray, "JArray")(text)
    if t == "JToken":
        return parse_json(text)
    raise cs_error("InvalidOperationException", f"Body.As<{t}>() is not supported")


def _bad_constant(name: str) -> object:
    raise ValueError(f"invalid constant {name}")


def _parse_as(kind: type[JToken], label: str):
    def parse(text: object, *_: object) -> JToken:
        t = parse_json(text)
        if not isinstance(t, kind):
            raise cs_error(
                "JsonReaderException",
                f"Error reading {label} from JsonReader: the JSON is not an {label.lower()}.",
            )
        return t

    return parse


_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_CTRL = re.compile(r'["\\\x00-\x1f\x7f\u0085\u2028\u2029]')


def quote(s: str) -> str:
    return '"' + _CTRL.sub(lambda m: _ESC.get(m.group(0), f"\\u{ord(m.group(0)):04x}"), s) + '"'


def _scalar(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return '"NaN"' if math.isnan(v) else ('"Infinity"' if v > 0 else '"-Infinity"')
        r = cs_str(v)
        return r if any(c in r for c in ".E") else r + ".0"
    if isinstance(v, Decimal):
        r = format(v, "f")
        return r if "." in r else r + ".0"
    if isinstance(v, datetime):
        from .datetimes import format_datetime

        return quote(format_datetime(v, "yyyy'-'MM'-'dd'T'HH':'mm':'ss.FFFFFFFK"))
    return quote(cs_str(v))


def write(token: JToken, indent: bool, level: int = 0) -> str:
    """Json.NET serialisation: compact, or indented by two spaces with `": "`."""
    if level > METER.json_max_depth:
        raise BudgetExceeded("JSON nested too deeply")
    nl = "\n" + "  " * (level + 1) if indent else ""
    end = "\n" + "  " * level if indent else ""
    sep = ": " if indent else ":"
    if isinstance(token, JObject):
        if not token._props:
            return "{}"
        items = [
            f"{nl}{quote(k)}{sep}{write(v, indent, level + 1)}" for k, v in token._props.items()
        ]
        return "{" + ",".join(items) + end + "}"
    if isinstance(token, JArray):
        if not token._items:
            return "[]"
        items = [f"{nl}{write(v, indent, level + 1)}" for v in token._items]
        return "[" + ",".join(items) + end + "]"
    if isinstance(token, JProperty):
        return f"{quote(token.Name)}{sep}{write(token.Value, indent, level)}"
    return _scalar(token.value)  # type: ignore[attr-defined]


_PATH = re.compile(r"\.?([^.\[\]]+)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|\[\s*(\d+)\s*\]")


def select_token(token: JToken, path: str) -> JToken | None:
    """SelectToken for dotted/bracketed paths (`a.b[0]['c d']`, optional leading `$`)."""
    p = path.strip()
    if p.startswith("$"):
        p = p[1:]
    cur: JToken | None = token
    pos = 0
    while pos < len(p) and cur is not None:
        m = _PATH.match(p, pos)
        if not m or m.end() == pos:
            raise cs_error("JsonException", f"Unexpected character while parsing path: {p[pos:]}")
        pos = m.end()
        name, q1, q2, idx = m.groups()
        if idx is not None:
            cur = (
                cur._items[int(idx)]
                if isinstance(cur, JArray) and int(idx) < len(cur._items)
                else None
            )
        else:
            key = name if name is not None else q1 if q1 is not None else q2
            if key == "*" or (key and "?" in key):
                raise cs_error("JsonException", "unsupported JSONPath filter")
            cur = cur._props.get(key) if isinstance(cur, JObject) else None
    return cur


def serialize(value: object, formatting: object = None, *_: object) -> str:
    indent = isinstance(formatting, CsEnum) and formatting.name == "Indented"
    return write(to_token(value), indent)


def deserialize(text: object, type_arg: str | None = None) -> object:
    t = parse_json(text)
    return t if type_arg is None else convert_token(t, type_arg)


register(
    CsType(
        "JToken",
        lambda v: isinstance(v, JToken),
        static_methods={
            "Parse": parse_json,
            "FromObject": to_token,
            "DeepEquals": lambda a, b: write(to_token(a), False) == write(to_token(b), False),
        },
    )
)
register(
    CsType(
        "JObject",
        lambda v: isinstance(v, JObject),
        static_methods={"Parse": _parse_as(JObject, "JObject"), "FromObject": to_token},
        new=JObject,
    )
)
register(
    CsType(
        "JArray",
        lambda v: isinstance(v, JArray),
        static_methods={"Parse": _parse_as(JArray, "JArray"), "FromObject": to_token},
        new=JArray,
    )
)
register(CsType("JValue", lambda v: isinstance(v, JValue), new=JValue))
register(CsType("JContainer", lambda v: isinstance(v, JContainer)))
register(CsType("JProperty", lambda v: isinstance(v, JProperty), new=JProperty))
register(
    CsType(
        "JsonConvert",
        lambda v: False,
        static_methods={"SerializeObject": serialize, "DeserializeObject": deserialize},
    )
)
