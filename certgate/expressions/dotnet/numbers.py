"""Numbers and bools: Parse/TryParse, casts, Math, Convert, BitConverter, Random, formats."""

from __future__ import annotations

import base64
import binascii
import math
import random
import re
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal, overload

from ..errors import BudgetExceeded, cs_error, null_reference
from ..model import CsObject
from ..runtime import Char, Number, cs_str, format_double, wrap32
from . import CsType, Fn, members, register
from .enums import CsEnum

_INT_RE = re.compile(r"\s*[+-]?\d+\s*\Z")
_FLOAT_RE = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*\Z")

_RANGES = {
    "int": (-(1 << 31), (1 << 31) - 1),
    "long": (-(1 << 63), (1 << 63) - 1),
    "short": (-(1 << 15), (1 << 15) - 1),
    "byte": (0, 255),
    "sbyte": (-128, 127),
    "uint": (0, (1 << 32) - 1),
    "ulong": (0, (1 << 64) - 1),
    "ushort": (0, 65535),
}


def _wrap(v: int, kind: str) -> int:
    lo, hi = _RANGES[kind]
    size = hi - lo + 1
    return (v - lo) % size + lo


def parse_int(s: object, kind: str = "int") -> int:
    if s is None:
        raise cs_error("ArgumentNullException", "Value cannot be null.")
    if not isinstance(s, str) or not _INT_RE.match(s):
        raise cs_error(
            "FormatException", f"The input string '{cs_str(s)}' was not in a correct format."
        )
    v = int(s)
    lo, hi = _RANGES[kind]
    if not lo <= v <= hi:
        raise cs_error("OverflowException", f"Value was either too large or too small for {kind}.")
    return v


def parse_float(s: object) -> float:
    if s is None:
        raise cs_error("ArgumentNullException", "Value cannot be null.")
    if isinstance(s, str):
        t = s.strip()
        if t in ("NaN", "Infinity", "-Infinity", "∞", "-∞"):
            return float(t.replace("∞", "inf"))
        if _FLOAT_RE.match(t):
            return float(t)
    raise cs_error(
        "FormatException", f"The input string '{cs_str(s)}' was not in a correct format."
    )


def parse_decimal(s: object) -> Decimal:
    parse_float(s)
    return Decimal(str(s).strip())


def parse_bool(s: object) -> bool:
    if s is None:
        raise cs_error("ArgumentNullException", "Value cannot be null.")
    t = str(s).strip().lower()
    if t in ("true", "false"):
        return t == "true"
    raise cs_error("FormatException", f"String '{s}' was not recognized as a valid Boolean.")


def try_parse(parser):
    """TryParse(s, out v): methods with out parameters return (result, *outs)."""

    def run(s: object, *_: object) -> tuple[bool, object]:
        try:
            return True, parser(s)
        except Exception:
            return False, None

    return run


@overload
def to_number(v: object, kind: Literal["double", "float"]) -> float: ...
@overload
def to_number(v: object, kind: Literal["decimal"]) -> Decimal: ...
@overload
def to_number(v: object, kind: Literal["long"]) -> int: ...
@overload
def to_number(v: object, kind: str) -> Number: ...
def to_number(v: object, kind: str) -> Number:
    """Explicit numeric cast `(int)v`, `(double)v`... with C#'s truncation and wrapping (a
    `__cs_convert__` gives a value of the C# type it is asked for)."""
    if v is None:
        raise null_reference(f"cast to {kind}")
    conv = getattr(v, "__cs_convert__", None)
    if conv is not None:
        return conv(kind)
    if isinstance(v, CsEnum):
        v = v.value
    if isinstance(v, bool) or (isinstance(v, str) and not isinstance(v, Char)):
        raise cs_error("InvalidCastException", f"Unable to cast {type(v).__name__} to {kind}.")
    if isinstance(v, Char):
        v = ord(v)
    if not isinstance(v, int | float | Decimal):
        raise cs_error("InvalidCastException", f"Unable to cast object to {kind}.")
    if kind in ("double", "float"):
        return float(v)
    if kind == "decimal":
        return Decimal(v) if not isinstance(v, float) else Decimal(repr(v))
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return _RANGES[kind][0]
        v = int(v)
    return _wrap(int(v), kind)


def round_half_even(v: float | Decimal, digits: int = 0, mode: object = None) -> float | Decimal:
    rounding = (
        ROUND_HALF_UP
        if isinstance(mode, CsEnum) and mode.name == "AwayFromZero"
        else ROUND_HALF_EVEN
    )
    d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    r = d.quantize(Decimal(1).scaleb(-digits), rounding=rounding)
    return r if isinstance(v, Decimal) else float(r)


def convert_int(v: object, kind: str) -> int:
    if v is None:
        return 0
    if isinstance(v, str) and not isinstance(v, Char):
        return parse_int(v, kind)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float | Decimal):
        r = int(round_half_even(v))
        lo, hi = _RANGES[kind]
        if not lo <= r <= hi:
            raise cs_error(
                "OverflowException", f"Value was either too large or too small for {kind}."
            )
        return r
    r = to_number(v, "long")
    lo, hi = _RANGES[kind]
    if not lo <= r <= hi:
        raise cs_error("OverflowException", f"Value was either too large or too small for {kind}.")
    return r


def from_base64(s: object) -> bytes:
    if s is None:
        raise cs_error("ArgumentNullException", "Value cannot be null.")
    t = re.sub(r"\s", "", str(s))
    try:
        if len(t) % 4:
            raise binascii.Error
        return base64.b64decode(t, validate=True)
    except binascii.Error:
        raise cs_error("FormatException", "The input is not a valid Base-64 string.") from None


def to_bool(v: object) -> bool:
    if v is None:
        return False
    if isinstance(v, str):
        return parse_bool(v)
    return bool(v)


def bytes_of(v: object) -> bytes:
    if v is None:
        raise cs_error("ArgumentNullException", "Value cannot be null.")
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    if isinstance(v, list):
        return bytes(x & 0xFF for x in v)
    raise cs_error("InvalidCastException", "Expected byte[].")


def _to_hex(b: object) -> str:
    return bytes_of(b).hex().upper()


def _bitconverter_to_string(b: object, start: int = 0, length: int | None = None) -> str:
    data = bytes_of(b)
    data = data[start:] if length is None else data[start : start + length]
    return "-".join(f"{x:02X}" for x in data)


def _int_kind(name: str, kind: str, *aliases: str) -> None:
    lo, hi = _RANGES[kind]
    register(
        CsType(
            name,
            lambda v: type(v) is int,
            convert=lambda v: to_number(v, kind),
            static_props={"MaxValue": lambda: hi, "MinValue": lambda: lo},
            static_methods={
                "Parse": lambda s, *_: parse_int(s, kind),
                "TryParse": try_parse(lambda s: parse_int(s, kind)),
            },
            default=0,
        ),
        *aliases,
    )


_int_kind("int", "int", "Int32")
_int_kind("long", "long", "Int64")
_int_kind("short", "short", "Int16")
_int_kind("byte", "byte", "Byte")
_int_kind("sbyte", "sbyte", "SByte")
_int_kind("uint", "uint", "UInt32")
_int_kind("ulong", "ulong", "UInt64")
_int_kind("ushort", "ushort", "UInt16")

register(
    CsType(
        "double",
        lambda v: type(v) is float,
        convert=lambda v: to_number(v, "double"),
        static_props={
            "MaxValue": lambda: 1.7976931348623157e308,
            "MinValue": lambda: -1.7976931348623157e308,
            "NaN": lambda: math.nan,
            "PositiveInfinity": lambda: math.inf,
            "NegativeInfinity": lambda: -math.inf,
            "Epsilon": lambda: 5e-324,
        },
        static_methods={
            "Parse": lambda s, *_: parse_float(s),
            "TryParse": try_parse(parse_float),
            "IsNaN": lambda v: math.isnan(v),
            "IsInfinity": lambda v: math.isinf(v),
        },
        default=0.0,
    ),
    "Double",
    "float",
    "Single",
)
register(
    CsType(
        "decimal",
        lambda v: isinstance(v, Decimal),
        convert=lambda v: to_number(v, "decimal"),
        static_methods={
            "Parse": lambda s, *_: parse_decimal(s),
            "TryParse": try_parse(parse_decimal),
            "Round": round_half_even,
        },
        default=Decimal(0),
    ),
    "Decimal",
)


def _bool_cast(v: object) -> bool:
    conv = getattr(v, "__cs_convert__", None)
    if conv is not None:
        return conv("bool")
    if isinstance(v, bool):
        return v
    if v is None:
        raise null_reference("cast to bool")
    raise cs_error("InvalidCastException", "Specified cast is not valid.")


register(
    CsType(
        "bool",
        lambda v: type(v) is bool,
        convert=_bool_cast,
        static_props={"TrueString": lambda: "True", "FalseString": lambda: "False"},
        static_methods={"Parse": parse_bool, "TryParse": try_parse(parse_bool)},
        default=False,
    ),
    "Boolean",
)


def _num_tostring(v: object, fmt: object = None, *_: object) -> str:
    return format_value(v, fmt) if fmt else cs_str(v)


members(
    int,
    float,
    Decimal,
    bool,
    methods={
        "ToString": _num_tostring,
        "Equals": lambda a, b: type(a) is type(b) and a == b,
        "CompareTo": lambda a, b: (a > b) - (a < b),
        "GetHashCode": lambda a: wrap32(int(a)) if isinstance(a, int) else hash(a) & 0x7FFFFFFF,
    },
)

_MATH: dict[str, Fn] = {
    "Abs": abs,
    "Max": max,
    "Min": min,
    "Floor": lambda v: math.floor(v) if isinstance(v, Decimal) else float(math.floor(v)),
    "Ceiling": lambda v: math.ceil(v) if isinstance(v, Decimal) else float(math.ceil(v)),
    "Round": round_half_even,
    "Truncate": lambda v: float(math.trunc(v)),
    "Pow": lambda a, b: math.pow(a, b),
    "Sqrt": lambda v: math.sqrt(v) if v >= 0 else math.nan,
    "Log": lambda v, b=None: math.log(v) if b is None else math.log(v, b),
    "Log10": math.log10,
    "Exp": math.exp,
    "Sign": lambda v: (v > 0) - (v < 0),
    "Sin": math.sin,
    "Cos": math.cos,
    "Tan": math.tan,
    "Atan": math.atan,
    "Atan2": math.atan2,
}
register(
    CsType(
        "Math",
        lambda v: False,
        static_props={"PI": lambda: math.pi, "E": lambda: math.e},
        static_methods=_MATH,
    )
)


def _to_string(v: object, fmt: object = None) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and isinstance(fmt, int):
        digits = "0123456789abcdef"
        if v == 0:
            return "0"
        n, out = v & ((1 << 64) - 1) if v < 0 else v, ""
        while n:
            n, r = divmod(n, fmt)
            out = digits[r] + out
        return out
    return _num_tostring(v, fmt) if fmt is not None else cs_str(v)


def _to_datetime(v: object) -> datetime:
    from .datetimes import parse_datetime

    return v if isinstance(v, datetime) else parse_datetime(v)


register(
    CsType(
        "Convert",
        lambda v: False,
        static_methods={
            "ToBase64String": lambda b, *a: base64.b64encode(
                bytes_of(b)[a[0] : a[0] + a[1]] if len(a) == 2 else bytes_of(b)
            ).decode(),
            "FromBase64String": from_base64,
            "ToHexString": _to_hex,
            "FromHexString": lambda s: bytes.fromhex(s),
            "ToInt32": lambda v, base=None: int(v, base) if base else convert_int(v, "int"),
            "ToInt64": lambda v, base=None: int(v, base) if base else convert_int(v, "long"),
            "ToInt16": lambda v: convert_int(v, "short"),
            "ToByte": lambda v, base=None: int(v, base) if base else convert_int(v, "byte"),
            "ToUInt32": lambda v: convert_int(v, "uint"),
            "ToDouble": lambda v: (
                0.0
                if v is None
                else parse_float(v)
                if isinstance(v, str)
                else float(to_number(v, "double"))
            ),
            "ToDecimal": lambda v: (
                parse_decimal(v) if isinstance(v, str) else to_number(v, "decimal")
            ),
            "ToBoolean": to_bool,
            "ToString": _to_string,
            "ToChar": lambda v: Char(chr(v)) if isinstance(v, int) else Char(v),
            "ToDateTime": _to_datetime,
        },
    )
)


def _bc_int(b: object, start: int = 0, size: int = 4, signed: bool = True) -> int:
    return int.from_bytes(bytes_of(b)[start : start + size], "little", signed=signed)


register(
    CsType(
        "BitConverter",
        lambda v: False,
        static_props={"IsLittleEndian": lambda: True},
        static_methods={
            "ToString": _bitconverter_to_string,
            "ToInt32": lambda b, i=0: _bc_int(b, i, 4),
            "ToInt64": lambda b, i=0: _bc_int(b, i, 8),
            "ToInt16": lambda b, i=0: _bc_int(b, i, 2),
            "ToUInt32": lambda b, i=0: _bc_int(b, i, 4, False),
            "GetBytes": lambda v: bytearray(
                int(v).to_bytes(8 if abs(int(v)) >= 1 << 31 else 4, "little", signed=True)
            ),
        },
    )
)


class Random(CsObject):
    """System.Random (not cryptographic, as in .NET)."""

    __slots__ = ("_r",)
    __cs_type__ = "Random"
    __cs_members__ = frozenset({"Next", "NextDouble", "NextBytes", "ToString"})

    def __init__(self, seed: int | None = None) -> None:
        self._r = random.Random(seed)

    def Next(self, a: int | None = None, b: int | None = None) -> int:
        lo, hi = (0, (1 << 31) - 1) if a is None else (0, a) if b is None else (a, b)
        if hi < lo:
            raise cs_error("ArgumentOutOfRangeException", "minValue is greater than maxValue.")
        return lo if hi == lo else self._r.randrange(lo, hi)

    def NextDouble(self) -> float:
        return self._r.random()

    def NextBytes(self, buffer: bytearray) -> None:
        buffer[:] = self._r.randbytes(len(buffer))


register(CsType("Random", lambda v: isinstance(v, Random), new=Random))


# --- formatting ---------------------------------------------------------------------------------

_STD = re.compile(r"([CDEFGNPRXcdefgnprx])(\d{0,2})\Z")


def format_value(v: object, fmt: object) -> str:
    """`ToString(format)` for numbers, DateTime and TimeSpan."""
    from .datetimes import format_datetime, format_timespan

    if fmt is None or fmt == "":
        return cs_str(v)
    fmt = str(fmt)
    if isinstance(v, datetime):
        return format_datetime(v, fmt)
    if isinstance(v, timedelta):
        return format_timespan(v, fmt)
    if isinstance(v, CsObject):
        fn = getattr(v, "ToString", None)
        return fn(fmt) if fn else cs_str(v)
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal):
        return cs_str(v)
    m = _STD.match(fmt)
    if m:
        return _standard(v, m.group(1), m.group(2))
    return _custom(v, fmt)


def _standard(v: int | float | Decimal, spec: str, digits: str) -> str:
    p = int(digits) if digits else None
    up = spec.upper()
    if up == "D":
        if not isinstance(v, int):
            raise cs_error("FormatException", "Format specifier was invalid.")
        s = str(abs(v)).zfill(p or 0)
        return "-" + s if v < 0 else s
    if up == "X":
        if not isinstance(v, int):
            raise cs_error("FormatException", "Format specifier was invalid.")
        s = format(v & 0xFFFFFFFF if -(1 << 31) <= v < 0 else v, "x" if spec == "x" else "X")
        return s.zfill(p or 0)
    if up == "F":
        return f"{v:.{2 if p is None else p}f}"
    if up == "N":
        return f"{v:,.{2 if p is None else p}f}"
    if up == "P":
        return f"{v * 100:,.{2 if p is None else p}f} %"
    if up == "E":
        s = f"{v:.{6 if p is None else p}e}"
        mant, exp = s.split("e")
        return f"{mant}{spec}{exp[0]}{exp[1:].zfill(3)}"
    if up == "C":
        return f"¤{v:,.{2 if p is None else p}f}"
    if up in ("G", "R"):
        if p and isinstance(v, float):
            return format_double(float(f"{v:.{p}g}"))
        return cs_str(v) if not isinstance(v, Decimal) else format(v, "f")
    raise cs_error("FormatException", "Format specifier was invalid.")


def _custom(v: int | float | Decimal, fmt: str) -> str:
    """Custom numeric formats built from `0`, `#`, `.`, `,` (the common cases)."""
    if len(fmt) > 64:
        raise BudgetExceeded("format string too long")
    m = re.fullmatch(r"([^0#.,]*)([0#,]*)(?:\.([0#]*))?([^0#.,]*)", fmt)
    if not m:
        raise cs_error("FormatException", f"unsupported numeric format '{fmt}'")
    prefix, int_part, frac_part, suffix = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    min_frac = frac_part.count("0")
    max_frac = len(frac_part)
    try:
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
        d = d.quantize(Decimal(1).scaleb(-max_frac), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return cs_str(v)
    neg = d < 0
    whole, _, frac = format(abs(d), "f").partition(".")
    frac = frac.rstrip("0")
    frac = frac.ljust(min_frac, "0")
    min_int = int_part.replace(",", "").count("0")
    whole = whole.lstrip("0").zfill(min_int) if whole != "0" or min_int else ""
    if "," in int_part:
        whole = f"{int(whole or 0):,}" if whole else whole
    body = whole + ("." + frac if frac else "")
    return (
        ("-" if neg and body.strip("0.") else "")
        + prefix
        + (body or "0" if not frac_part else body)
        + suffix
    )
