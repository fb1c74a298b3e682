"""DateTime (Python `datetime`), TimeSpan (`timedelta`), DateTimeOffset, and .NET date formats.

Culture-sensitive formats use en-US, the culture APIM's gateway reports.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import cast

from ..errors import cs_error
from ..model import CsObject
from ..runtime import compare as cs_compare
from . import CsType, members, register
from .enums import DATETIME_KIND, CsEnum, define

_EPOCH = datetime(1, 1, 1)
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DAY_OF_WEEK = define("DayOfWeek", " ".join(_DAYS))


def utc_now() -> datetime:
    return datetime.now(UTC)


def local_now() -> datetime:
    return datetime.now().astimezone()


def kind(d: datetime) -> str:
    if d.tzinfo is None:
        return "Unspecified"
    return "Utc" if d.tzinfo is UTC or (d.tzinfo == UTC and d.tzname() == "UTC") else "Local"


def ticks(d: datetime) -> int:
    delta = d.replace(tzinfo=None) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _tick_span(t: timedelta) -> int:
    return (t.days * 86400 + t.seconds) * 10_000_000 + t.microseconds * 10


# --- formatting ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"yyyy+|yy|y|MMMM+|MMM|MM|M|dddd+|ddd|dd|d|HH+|H|hh+|h|mm+|m|ss+|s|f{1,7}|F{1,7}|tt+|t|"
    r"zzz+|zz|z|K|gg?|'[^']*'?|\"[^\"]*\"?|\\.|%|.",
    re.S,
)
_STANDARD = {
    "d": "M/d/yyyy",
    "D": "dddd, MMMM d, yyyy",
    "f": "dddd, MMMM d, yyyy h:mm tt",
    "F": "dddd, MMMM d, yyyy h:mm:ss tt",
    "g": "M/d/yyyy h:mm tt",
    "G": "M/d/yyyy h:mm:ss tt",
    "m": "MMMM d",
    "M": "MMMM d",
    "o": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "O": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "r": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "R": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
    "t": "h:mm tt",
    "T": "h:mm:ss tt",
    "u": "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
    "y": "MMMM yyyy",
    "Y": "MMMM yyyy",
}


def _offset(d: datetime, style: str) -> str:
    off = d.utcoffset()
    if off is None:
        off = local_now().utcoffset() or timedelta(0)
    total = int(off.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    h, m = divmod(abs(total), 60)
    return {"z": f"{sign}{h}", "zz": f"{sign}{h:02d}"}.get(style, f"{sign}{h:02d}:{m:02d}")


def format_datetime(d: datetime, fmt: str | None = None, *_: object) -> str:
    """`DateTime.ToString(fmt)` with .NET standard and custom format strings."""
    if not fmt:
        fmt = "G"
    if len(fmt) == 1:
        if fmt == "U":
            d = d.astimezone(UTC) if d.tzinfo else d
            fmt = "dddd, MMMM d, yyyy h:mm:ss tt"
        elif fmt in _STANDARD:
            fmt = _STANDARD[fmt]
        else:
            raise cs_error("FormatException", "Input string was not in a correct format.")
    out: list[str] = []
    frac = f"{d.microsecond:06d}0"
    for tok in _TOKEN.findall(fmt):
        c = tok[0]
        n = len(tok)
        if c == "y":
            out.append(
                str(d.year % 100).zfill(2)
                if n == 2
                else str(d.year % 100)
                if n == 1
                else str(d.year).zfill(n)
            )
        elif c == "M":
            out.append(
                _MONTHS[d.month - 1]
                if n >= 4
                else _MONTHS[d.month - 1][:3]
                if n == 3
                else str(d.month).zfill(n)
            )
        elif c == "d":
            dow = _DAYS[(d.weekday() + 1) % 7]
            out.append(dow if n >= 4 else dow[:3] if n == 3 else str(d.day).zfill(n))
        elif c == "H":
            out.append(str(d.hour).zfill(min(n, 2)))
        elif c == "h":
            out.append(str(d.hour % 12 or 12).zfill(min(n, 2)))
        elif c == "m":
            out.append(str(d.minute).zfill(min(n, 2)))
        elif c == "s":
            out.append(str(d.second).zfill(min(n, 2)))
        elif c == "f":
            out.append(frac[:n])
        elif c == "F":
            digits = frac[:n].rstrip("0")
            if not digits and out and out[-1].endswith("."):
                out[-1] = out[-1][:-1]
            out.append(digits)
        elif c == "t":
            out.append(("AM" if d.hour < 12 else "PM")[: 1 if n == 1 else 2])
        elif c == "z":
            out.append(_offset(d, tok[:3]))
        elif c == "K":
            k = kind(d)
            out.append("Z" if k == "Utc" else "" if k == "Unspecified" else _offset(d, "zzz"))
        elif c == "g":
            out.append("A.D.")
        elif c in "'\"":
            out.append(tok[1:-1] if tok.endswith(c) and n > 1 else tok[1:])
        elif c == "\\":
            out.append(tok[1:])
        elif c == "%":
            continue
        else:
            out.append(tok)
    return "".join(out)


def format_timespan(t: timedelta, fmt: str | None = None, *_: object) -> str:
    """TimeSpan `c` format: `[-][d.]hh:mm:ss[.fffffff]` (also used for g/G and custom)."""
    total = _tick_span(t)
    sign = "-" if total < 0 else ""
    total = abs(total)
    secs, frac = divmod(total, 10_000_000)
    days, secs = divmod(secs, 86400)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    if fmt and fmt not in ("c", "t", "T", "g", "G"):
        text = fmt.replace("\\", "")
        for pat, val in (
            ("hh", f"{h:02d}"),
            ("mm", f"{m:02d}"),
            ("ss", f"{s:02d}"),
            ("dd", f"{days:02d}"),
            ("fff", f"{frac:07d}"[:3]),
        ):
            text = text.replace(pat, val)
        return text
    out = f"{sign}{str(days) + '.' if days else ''}{h:02d}:{m:02d}:{s:02d}"
    return out + (f".{frac:07d}" if frac else "")


# --- parsing ------------------------------------------------------------------------------------

_US = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?\Z"
)


def parse_datetime(s: object, *_: object) -> datetime:
    """DateTime.Parse for ISO 8601, RFC 1123 and en-US dates; an offset yields a Local time."""
    if s is None:
        raise cs_error("ArgumentNullException", "Value cannot be null.")
    text = str(s).strip()
    try:
        d = datetime.fromisoformat(text)
        return d.astimezone() if d.tzinfo else d
    except ValueError:
        pass
    m = _US.match(text)
    if m:
        mo, dd, yy, hh, mi, ss, ampm = m.groups()
        hour = int(hh or 0)
        if ampm:
            hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
        try:
            return datetime(int(yy), int(mo), int(dd), hour, int(mi or 0), int(ss or 0))
        except ValueError:
            pass
    try:
        d = parsedate_to_datetime(text)
        return d.astimezone() if d.tzinfo else d
    except (TypeError, ValueError, IndexError):
        pass
    raise cs_error("FormatException", f"String '{text}' was not recognized as a valid DateTime.")


def parse_exact(s: object, fmt: object, *_: object) -> datetime:
    formats = fmt if isinstance(fmt, list) else [fmt]
    for f in formats:
        py = str(f)
        for net, p in (
            ("yyyy", "%Y"),
            ("MM", "%m"),
            ("dd", "%d"),
            ("HH", "%H"),
            ("mm", "%M"),
            ("ss", "%S"),
            ("fffffff", "%f0"),
            ("ffffff", "%f"),
            ("fff", "%f"),
            ("'", ""),
        ):
            py = py.replace(net, p)
        try:
            return datetime.strptime(str(s), py.replace("K", "%z").replace("zzz", "%z"))
        except ValueError:
            continue
    raise cs_error("FormatException", f"String '{s}' was not recognized as a valid DateTime.")


def _try(fn):
    def run(*args: object) -> tuple[bool, object]:
        try:
            return True, fn(*args)
        except Exception:
            return False, datetime(1, 1, 1)

    return run


def _new_datetime(*args: object) -> datetime:
    kind_arg = args[-1] if args and isinstance(args[-1], CsEnum) else None
    # the numbers of C#'s constructors (ticks; or year, month, day...): another value fails below
    nums = cast("list[int]", [a for a in args if not isinstance(a, CsEnum)])
    if len(nums) == 1:
        d = _EPOCH + timedelta(microseconds=int(nums[0]) // 10)
    else:
        y, mo, dd, h, mi, s, ms = (list(nums) + [0] * 7)[:7]
        try:
            d = datetime(y, mo, dd, h, mi, s, ms * 1000)
        except ValueError as e:
            raise cs_error("ArgumentOutOfRangeException", str(e)) from None
    if kind_arg is not None and kind_arg.name == "Utc":
        return d.replace(tzinfo=UTC)
    if kind_arg is not None and kind_arg.name == "Local":
        return d.astimezone()
    return d


def _specify_kind(d: datetime, k: CsEnum) -> datetime:
    if k.name == "Utc":
        return d.replace(tzinfo=UTC)
    if k.name == "Local":
        return d.replace(tzinfo=None).astimezone()
    return d.replace(tzinfo=None)


def _add_months(d: datetime, n: int) -> datetime:
    y, m = divmod(d.month - 1 + n, 12)
    year, month = d.year + y, m + 1
    import calendar

    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))


def _checked(fn):
    def run(*a: object) -> object:
        try:
            return fn(*a)
        except (OverflowError, ValueError) as e:
            raise cs_error("ArgumentOutOfRangeException", str(e)) from None

    return run


def _to_utc(d: datetime) -> datetime:
    return (d if d.tzinfo else d.astimezone()).astimezone(UTC)


def _to_local(d: datetime) -> datetime:
    return d.astimezone() if d.tzinfo else d.replace(tzinfo=UTC).astimezone()


_DT_PROPS = {
    "Year": lambda d: d.year,
    "Month": lambda d: d.month,
    "Day": lambda d: d.day,
    "Hour": lambda d: d.hour,
    "Minute": lambda d: d.minute,
    "Second": lambda d: d.second,
    "Millisecond": lambda d: d.microsecond // 1000,
    "DayOfWeek": lambda d: DAY_OF_WEEK[_DAYS[(d.weekday() + 1) % 7]],
    "DayOfYear": lambda d: d.timetuple().tm_yday,
    "Date": lambda d: d.replace(hour=0, minute=0, second=0, microsecond=0),
    "TimeOfDay": lambda d: timedelta(
        hours=d.hour, minutes=d.minute, seconds=d.second, microseconds=d.microsecond
    ),
    "Ticks": ticks,
    "Kind": lambda d: DATETIME_KIND[kind(d)],
}
_DT_METHODS = {
    "AddDays": _checked(lambda d, n: d + timedelta(days=n)),
    "AddHours": _checked(lambda d, n: d + timedelta(hours=n)),
    "AddMinutes": _checked(lambda d, n: d + timedelta(minutes=n)),
    "AddSeconds": _checked(lambda d, n: d + timedelta(seconds=n)),
    "AddMilliseconds": _checked(lambda d, n: d + timedelta(milliseconds=n)),
    "AddTicks": _checked(lambda d, n: d + timedelta(microseconds=n // 10)),
    "AddMonths": _checked(_add_months),
    "AddYears": _checked(lambda d, n: _add_months(d, 12 * n)),
    "Add": _checked(lambda d, t: d + t),
    "Subtract": lambda d, o: (
        d.replace(tzinfo=None) - o.replace(tzinfo=None) if isinstance(o, datetime) else d - o
    ),
    "ToString": format_datetime,
    "ToUniversalTime": _to_utc,
    "ToLocalTime": _to_local,
    "ToShortDateString": lambda d: format_datetime(d, "d"),
    "ToLongDateString": lambda d: format_datetime(d, "D"),
    "ToShortTimeString": lambda d: format_datetime(d, "t"),
    "ToLongTimeString": lambda d: format_datetime(d, "T"),
    "CompareTo": cs_compare,
    "Equals": lambda d, o: isinstance(o, datetime) and cs_compare(d, o) == 0,
    "GetHashCode": lambda d: ticks(d) & 0x7FFFFFFF,
}
members(datetime, props=_DT_PROPS, methods=_DT_METHODS)
# `DateTime?` (Jwt.ExpirationTime...): a present value reads through `.Value` / `.HasValue`.
members(datetime, props={"Value": lambda d: d, "HasValue": lambda d: True})

register(
    CsType(
        "DateTime",
        lambda v: isinstance(v, datetime),
        convert=lambda v: _dt_cast(v),
        static_props={
            "UtcNow": utc_now,
            "Now": local_now,
            "Today": lambda: local_now().replace(
                hour=0, minute=0, second=0, microsecond=0, tzinfo=None
            ),
            "MinValue": lambda: datetime(1, 1, 1),
            "MaxValue": lambda: datetime(9999, 12, 31, 23, 59, 59, 999999),
            "UnixEpoch": lambda: _UNIX,
        },
        static_methods={
            "Parse": parse_datetime,
            "TryParse": _try(parse_datetime),
            "ParseExact": parse_exact,
            "TryParseExact": _try(parse_exact),
            "SpecifyKind": _specify_kind,
            "Compare": cs_compare,
            "IsLeapYear": lambda y: y % 4 == 0 and (y % 100 != 0 or y % 400 == 0),
            "DaysInMonth": lambda y, m: __import__("calendar").monthrange(y, m)[1],
        },
        new=_new_datetime,
        default=datetime(1, 1, 1),
    )
)


def _dt_cast(v: object) -> datetime:
    if isinstance(v, DateTimeOffset):
        return v.DateTime
    conv = getattr(v, "__cs_convert__", None)
    if conv is not None:
        return conv("DateTime")
    if isinstance(v, datetime):
        return v
    if v is None:
        raise cs_error("NullReferenceException", "Nullable object must have a value.")
    raise cs_error("InvalidCastException", "Specified cast is not valid.")


def _span_part(t: timedelta, unit: int, mod: int) -> int:
    total = _tick_span(t)
    v = abs(total) // unit % mod
    return -v if total < 0 else v


members(
    timedelta,
    props={
        "Days": lambda t: int(_tick_span(t) / 864_000_000_000),
        "Hours": lambda t: _span_part(t, 36_000_000_000, 24),
        "Minutes": lambda t: _span_part(t, 600_000_000, 60),
        "Seconds": lambda t: _span_part(t, 10_000_000, 60),
        "Milliseconds": lambda t: _span_part(t, 10_000, 1000),
        "Ticks": _tick_span,
        "TotalDays": lambda t: t.total_seconds() / 86400,
        "TotalHours": lambda t: t.total_seconds() / 3600,
        "TotalMinutes": lambda t: t.total_seconds() / 60,
        "TotalSeconds": lambda t: t.total_seconds(),
        "TotalMilliseconds": lambda t: t.total_seconds() * 1000,
    },
    methods={
        "Add": lambda t, o: t + o,
        "Subtract": lambda t, o: t - o,
        "Negate": lambda t: -t,
        "Duration": abs,
        "ToString": format_timespan,
        "CompareTo": cs_compare,
        "Equals": lambda t, o: t == o,
    },
)


def _parse_span(s: object) -> timedelta:
    m = re.fullmatch(
        r"\s*(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?\s*", str(s)
    )
    if not m:
        raise cs_error("FormatException", f"String '{s}' was not recognized as a valid TimeSpan.")
    neg, d, h, mi, sec, frac = m.groups()
    t = timedelta(
        days=int(d or 0),
        hours=int(h),
        minutes=int(mi),
        seconds=int(sec or 0),
        microseconds=int((frac or "0").ljust(7, "0")) // 10,
    )
    return -t if neg else t


def _new_span(*a: int) -> timedelta:
    if len(a) == 1:
        return timedelta(microseconds=a[0] // 10)
    if len(a) == 3:
        return timedelta(hours=a[0], minutes=a[1], seconds=a[2])
    d, h, m, s, ms = (list(a) + [0] * 5)[:5]
    return timedelta(days=d, hours=h, minutes=m, seconds=s, milliseconds=ms)


register(
    CsType(
        "TimeSpan",
        lambda v: isinstance(v, timedelta),
        static_props={"Zero": lambda: timedelta(0), "MaxValue": lambda: timedelta.max},
        static_methods={
            "FromDays": lambda n: timedelta(days=n),
            "FromHours": lambda n: timedelta(hours=n),
            "FromMinutes": lambda n: timedelta(minutes=n),
            "FromSeconds": lambda n: timedelta(seconds=n),
            "FromMilliseconds": lambda n: timedelta(milliseconds=n),
            "FromTicks": lambda n: timedelta(microseconds=n // 10),
            "Parse": _parse_span,
            "TryParse": _try(_parse_span),
        },
        new=_new_span,
        default=timedelta(0),
    )
)


class DateTimeOffset(CsObject):
    """System.DateTimeOffset over an aware `datetime`."""

    __slots__ = ("value",)
    __cs_type__ = "DateTimeOffset"
    __cs_members__ = frozenset(
        [
            "ToUnixTimeSeconds",
            "ToUnixTimeMilliseconds",
            "UtcDateTime",
            "DateTime",
            "LocalDateTime",
            "Offset",
            "Year",
            "Month",
            "Day",
            "Hour",
            "Minute",
            "Second",
            "Millisecond",
            "Ticks",
            "UtcTicks",
            "AddDays",
            "AddHours",
            "AddMinutes",
            "AddSeconds",
            "AddMilliseconds",
            "Add",
            "Subtract",
            "ToString",
            "ToUniversalTime",
            "CompareTo",
            "Equals",
        ]
    )

    def __init__(self, value: datetime) -> None:
        self.value = value if value.tzinfo else value.astimezone()

    def __cs_compare__(self, other: object) -> int:
        o = other.value if isinstance(other, DateTimeOffset) else other
        if not isinstance(o, datetime):
            raise cs_error("ArgumentException", "Object must be of type DateTimeOffset.")
        o = o if o.tzinfo else o.astimezone()
        return (self.value > o) - (self.value < o)

    def __cs_equals__(self, other: object) -> bool:
        return isinstance(other, DateTimeOffset) and self.value == other.value

    def ToUnixTimeSeconds(self) -> int:
        return int((self.value - _UNIX).total_seconds() // 1)

    def ToUnixTimeMilliseconds(self) -> int:
        return (self.value - _UNIX) // timedelta(milliseconds=1)

    @property
    def UtcDateTime(self) -> datetime:
        return self.value.astimezone(UTC)

    @property
    def DateTime(self) -> datetime:
        return self.value.replace(tzinfo=None)

    @property
    def LocalDateTime(self) -> datetime:
        return self.value.astimezone()

    @property
    def Offset(self) -> timedelta:
        return self.value.utcoffset() or timedelta(0)

    def __getattr__(self, name: str) -> object:
        if name in _DT_PROPS:
            return _DT_PROPS[name](self.value)
        if name in ("UtcTicks",):
            return ticks(self.value.astimezone(UTC))
        if name.startswith("Add"):
            return lambda n: DateTimeOffset(_DT_METHODS[name](self.value, n))
        raise AttributeError(name)

    def Subtract(self, other: object) -> object:
        if isinstance(other, DateTimeOffset):
            return self.value - other.value
        return DateTimeOffset(self.value - other)  # type: ignore[operator]

    def ToUniversalTime(self) -> DateTimeOffset:
        return DateTimeOffset(self.value.astimezone(UTC))

    def CompareTo(self, other: object) -> int:
        return self.__cs_compare__(other)

    def Equals(self, other: object) -> bool:
        return self.__cs_equals__(other)

    def ToString(self, fmt: str | None = None, *_: object) -> str:
        return format_datetime(self.value, fmt or "M/d/yyyy h:mm:ss tt zzz")


def _dto_new(value: object, offset: object = None, *rest: object) -> DateTimeOffset:
    if isinstance(value, datetime):
        if isinstance(offset, timedelta):
            return DateTimeOffset(value.replace(tzinfo=timezone(offset)))
        return DateTimeOffset(value)
    args = [value, offset, *rest]
    off = args[-1]
    if isinstance(off, timedelta):
        args.pop()
    else:
        off = timedelta(0)
    return DateTimeOffset(_new_datetime(*args).replace(tzinfo=timezone(off)))


def _dto_cast(v: object) -> DateTimeOffset:
    if isinstance(v, DateTimeOffset):
        return v
    if isinstance(v, datetime):
        return DateTimeOffset(v)
    raise cs_error("InvalidCastException", "Specified cast is not valid.")


register(
    CsType(
        "DateTimeOffset",
        lambda v: isinstance(v, DateTimeOffset),
        convert=_dto_cast,
        static_props={
            "UtcNow": lambda: DateTimeOffset(utc_now()),
            "Now": lambda: DateTimeOffset(local_now()),
            "UnixEpoch": lambda: DateTimeOffset(_UNIX),
            "MinValue": lambda: DateTimeOffset(datetime(1, 1, 1, tzinfo=UTC)),
        },
        static_methods={
            "FromUnixTimeSeconds": lambda s: DateTimeOffset(_UNIX + timedelta(seconds=s)),
            "FromUnixTimeMilliseconds": lambda s: DateTimeOffset(_UNIX + timedelta(milliseconds=s)),
            "Parse": lambda s, *_: DateTimeOffset(parse_datetime(s)),
        },
        new=_dto_new,
    )
)
