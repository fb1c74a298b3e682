"""C# type names and default `ToString()` of plain Python values."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from ..model import CsObject

_NAMES = {
    str: "String",
    bool: "Boolean",
    int: "Int32",
    float: "Double",
    Decimal: "Decimal",
    datetime: "DateTime",
    timedelta: "TimeSpan",
    list: "Object[]",
    dict: "Dictionary`2",
    bytes: "Byte[]",
    bytearray: "Byte[]",
}


def name_of(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, CsObject):
        return v.__cs_type__
    for t, n in _NAMES.items():
        if isinstance(v, t):
            return "Char" if type(v).__name__ == "Char" else n
    return "Object"


def to_string(v: object) -> str:
    """`ToString()` for values that are not strings, numbers, bools or CsObjects."""
    from . import datetimes

    if isinstance(v, datetime):
        return datetimes.format_datetime(v, "G")
    if isinstance(v, timedelta):
        return datetimes.format_timespan(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, bytes | bytearray):
        return "System.Byte[]"
    if isinstance(v, list):
        return "System.Collections.Generic.List`1[System.Object]"
    if isinstance(v, dict):
        return "System.Collections.Generic.Dictionary`2[System.String,System.Object]"
    return "System.Object"
