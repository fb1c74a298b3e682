"""`string` and `char`: instance members, `String.*` statics and composite formatting."""

from __future__ import annotations

import re

from ..budget import check_length, spend
from ..errors import cs_error
from ..runtime import Char, cs_str
from . import CsType, members, register
from .enums import CsEnum, ignore_case

MAX_ALIGN = 10_000
_WS = " \t\n\r\v\f\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u3000"


def _s(v: object) -> str:
    if v is None:
        raise cs_error("ArgumentNullException", "Value cannot be null.")
    return cs_str(v)


def _fold(s: str, comparison: object) -> str:
    return s.lower() if ignore_case(comparison) else s


def _seps(args: tuple) -> tuple[list[str], int, int]:
    """Separators, count and options from Split's many overloads."""
    seps: list[str] = []
    count = -1
    options = 0
    for a in args:
        if isinstance(a, CsEnum):
            options = a.value
        elif isinstance(a, int) and not isinstance(a, bool):
            count = a
        elif isinstance(a, str):
            seps.append(a)
        elif isinstance(a, list | tuple):
            seps.extend(str(x) for x in a if x is not None)
        elif a is None:
            pass
        else:
            raise cs_error("ArgumentException", "unsupported Split separator")
    return seps, count, options


def split(s: str, *args: object) -> list[str]:
    seps, count, options = _seps(args)
    if not seps:
        parts = re.split("[" + re.escape(_WS) + "]", s)
    else:
        pattern = "|".join(re.escape(x) for x in sorted(seps, key=len, reverse=True) if x)
        parts = re.split(pattern, s) if pattern else [s]
    if options & 2:
        parts = [p.strip(_WS) for p in parts]
    if options & 1:
        parts = [p for p in parts if p]
    if count >= 0:
        if count == 0:
            return []
        if len(parts) > count:
            # Re-split keeping the remainder intact, as .NET does.
            head = parts[: count - 1]
            consumed = 0
            for p in head:
                consumed = s.find(p, consumed) + len(p)
                consumed += next((len(x) for x in seps if s.startswith(x, consumed)), 1)
            parts = [*head, s[consumed:]]
    return [str(p) for p in parts]


def substring(s: str, start: int, length: int | None = None) -> str:
    if (
        start < 0
        or start > len(s)
        or (length is not None and (length < 0 or start + length > len(s)))
    ):
        raise cs_error("ArgumentOutOfRangeException", "startIndex or length is outside the string.")
    return s[start:] if length is None else s[start : start + length]


def index_of(s: str, value: object, *args: object) -> int:
    start, comparison = 0, None
    for a in args:
        if isinstance(a, CsEnum):
            comparison = a
        elif isinstance(a, int):
            start = a
    return _fold(s, comparison).find(_fold(_s(value), comparison), start)


def last_index_of(s: str, value: object, *args: object) -> int:
    comparison = next((a for a in args if isinstance(a, CsEnum)), None)
    return _fold(s, comparison).rfind(_fold(_s(value), comparison))


def _trim_chars(args: tuple) -> str:
    chars = "".join(x if isinstance(x, str) else "".join(x) for x in args)
    return chars or _WS


def pad(s: str, width: int, ch: str = " ", left: bool = True) -> str:
    check_length(width)
    spend()
    return s.rjust(width, ch) if left else s.ljust(width, ch)


def replace(s: str, old: object, new: object, *args: object) -> str:
    old = _s(old)
    if old == "":
        raise cs_error("ArgumentException", "String cannot be of zero length.")
    new = cs_str(new)
    spend()
    if args and ignore_case(args[-1]):
        pattern = re.compile(re.escape(old), re.IGNORECASE)
        check_length(len(s) + _count(pattern, s) * max(0, len(new) - len(old)))
        return pattern.sub(new.replace("\\", "\\\\"), s)
    check_length(len(s) + s.count(old) * (len(new) - len(old)))
    return s.replace(old, new)


def _count(pattern: re.Pattern, s: str) -> int:
    """Matches of `pattern` in `s`, without building them (`subn` onto nothing)."""
    return pattern.subn("", s)[1]


def string_hash(s: str) -> int:
    """A stable 32-bit hash (.NET randomises per process; any stable value is conforming)."""
    h = 2166136261
    for ch in s.encode("utf-16-le"):
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def compare(a: object, b: object, *args: object) -> int:
    if a is None or b is None:
        return (a is not None) - (b is not None)
    ic = bool(args) and (args[0] is True or ignore_case(args[0]))
    x, y = (str(a).lower(), str(b).lower()) if ic else (str(a), str(b))
    return (x > y) - (x < y)


members(
    str,
    props={"Length": len},
    methods={
        "Split": split,
        "Substring": substring,
        "Contains": lambda s, v, c=None: _fold(_s(v), c) in _fold(s, c),
        "StartsWith": lambda s, v, c=None: _fold(s, c).startswith(_fold(_s(v), c)),
        "EndsWith": lambda s, v, c=None: _fold(s, c).endswith(_fold(_s(v), c)),
        "IndexOf": index_of,
        "LastIndexOf": last_index_of,
        "IndexOfAny": lambda s, chars: min(
            (i for i in (s.find(c) for c in chars) if i >= 0), default=-1
        ),
        "Replace": replace,
        "ToUpper": lambda s, *_: s.upper(),
        "ToLower": lambda s, *_: s.lower(),
        "ToUpperInvariant": str.upper,
        "ToLowerInvariant": str.lower,
        "Trim": lambda s, *a: s.strip(_trim_chars(a)),
        "TrimStart": lambda s, *a: s.lstrip(_trim_chars(a)),
        "TrimEnd": lambda s, *a: s.rstrip(_trim_chars(a)),
        "PadLeft": lambda s, w, ch=" ": pad(s, w, ch, True),
        "PadRight": lambda s, w, ch=" ": pad(s, w, ch, False),
        "Equals": lambda s, o, c=None: isinstance(o, str) and _fold(s, c) == _fold(o, c),
        "CompareTo": lambda s, o: compare(s, o),
        "Insert": lambda s, i, v: s[:i] + _s(v) + s[i:] if 0 <= i <= len(s) else substring(s, i),
        "Remove": lambda s, i, n=None: (
            s[:i] + ("" if n is None else s[i + n :]) if 0 <= i <= len(s) else substring(s, i)
        ),
        "ToCharArray": lambda s: [Char(c) for c in s],
        "ToString": lambda s, *_: str(s),
        "GetHashCode": string_hash,
        "Normalize": lambda s, *_: s,
    },
)

members(
    Char,
    methods={
        "ToString": lambda c, *_: str(c),
        "Equals": lambda c, o: c == o,
        "GetHashCode": lambda c: ord(c) | ord(c) << 16,
    },
)


def _join(sep: object, *values: object) -> str:
    if len(values) == 1 and not isinstance(values[0], str) and values[0] is not None:
        from .collections import enumerate_cs

        values = tuple(enumerate_cs(values[0]))
    glue = cs_str(sep)
    pieces = [cs_str(v) for v in values]
    check_length(sum(map(len, pieces)) + len(glue) * max(0, len(pieces) - 1))
    spend()
    return glue.join(pieces)


def _concat(*values: object) -> str:
    if len(values) == 1 and isinstance(values[0], list):
        values = tuple(values[0])
    return _join("", *values)


_FORMAT_ITEM = re.compile(r"\{\{|\}\}|\{(\d+)(?:,(-?\d+))?(?::([^}]*))?\}")


def cs_format(fmt: object, *args: object) -> str:
    """String.Format with `{0}`, `{0,-5}`, `{0:yyyy-MM-dd}` and `{{` escapes."""
    from .numbers import format_value

    if len(args) == 1 and isinstance(args[0], list):
        args = tuple(args[0])
    template = _s(fmt)
    built = [len(template)]  # an upper bound of the result's length so far

    def item(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        i = int(m.group(1))
        if i >= len(args):
            raise cs_error(
                "FormatException", "Index (zero based) must be less than the argument count."
            )
        text = format_value(args[i], m.group(3)) if m.group(3) else cs_str(args[i])
        if m.group(2):
            w = max(-MAX_ALIGN, min(MAX_ALIGN, int(m.group(2))))
            text = text.ljust(-w) if w < 0 else text.rjust(w)
        built[0] += len(text)
        check_length(built[0])
        return text

    return _FORMAT_ITEM.sub(item, template)


def _new_string(value: object, count: int | None = None) -> str:
    if count is not None:
        check_length(count)
        return str(value) * count
    return "".join(value)  # type: ignore[arg-type]


register(
    CsType(
        "string",
        lambda v: isinstance(v, str) and not isinstance(v, Char),
        convert=None,
        static_props={"Empty": lambda: ""},
        static_methods={
            "IsNullOrEmpty": lambda s: s is None or s == "",
            "IsNullOrWhiteSpace": lambda s: s is None or s.strip(_WS) == "",
            "Join": _join,
            "Concat": _concat,
            "Format": cs_format,
            "Equals": lambda a, b, c=None: (
                (a is None and b is None)
                or (a is not None and b is not None and _fold(a, c) == _fold(b, c))
            ),
            "Compare": compare,
            "CompareOrdinal": lambda a, b: compare(a, b),
        },
        new=_new_string,
    ),
    "String",
)


def _char_cast(v: object) -> Char:
    if isinstance(v, str) and len(v) == 1:
        return Char(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return Char(chr(v & 0xFFFF))
    raise cs_error("InvalidCastException", "Specified cast is not valid.")


register(
    CsType(
        "char",
        lambda v: type(v) is Char,
        convert=_char_cast,
        static_methods={
            "IsDigit": lambda c: c.isdigit(),
            "IsLetter": lambda c: c.isalpha(),
            "IsLetterOrDigit": lambda c: c.isalnum(),
            "IsWhiteSpace": lambda c: c in _WS,
            "IsUpper": lambda c: c.isupper(),
            "IsLower": lambda c: c.islower(),
            "ToUpper": lambda c: Char(c.upper()),
            "ToLower": lambda c: Char(c.lower()),
        },
        default=Char("\0"),
    ),
    "Char",
)
