r""".NET regular-expression syntax rewritten for the `regex` package, token by token.

A textual replace cannot tell `\\z` (a backslash, then `z`) from `\z`, or an anchor from the same
letters inside a character class; this scanner walks escapes, classes, groups and (with
IgnorePatternWhitespace) comments, and rewrites only the constructs whose meaning differs:

- `\Z` (end, or before a final newline) -> `(?=\n?\Z)`; `\z` (very end) -> `\Z`
- `(?<name>...)` / `(?'name'...)` -> `(?P<name>...)`; `\k<name>` / `\k'name'` -> `\g<name>`
- `\e` -> `\x1b`; `\cX` -> the control character's `\xHH`
- inside `[...]`: .NET's escapes only (`\d`, `\w`, `\s`, `\p{..}`, character escapes, escaped
  punctuation); an anchor such as `[\Z]` is an "Unrecognized escape sequence" as in .NET.

Refused with ArgumentException (never silently misread): balancing groups `(?<a-b>...)`,
conditionals `(?(...)...)`, `\G`, and character class subtraction `[a-z-[aeiou]]`.
"""

from __future__ import annotations

import regex as re

from ..errors import cs_error

_NAME = re.compile(r"[A-Za-z_]\w*|\d+")
_CLASS_LETTERS = frozenset("dDsSwWpPxuabefnrtvc0123456789")


def _refuse(pattern: str, what: str) -> Exception:
    return cs_error("ArgumentException", f"Invalid pattern '{pattern}': {what}")


def translate(pattern: str, verbose: bool = False) -> str:
    """The `regex`-package pattern meaning what `pattern` means to .NET."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            piece, i = _escape(pattern, i, in_class=False)
        elif c == "[":
            piece, i = _char_class(pattern, i)
        elif c == "(" and pattern.startswith("(?", i):
            piece, i = _group_open(pattern, i)
        elif c == "#" and verbose:
            end = pattern.find("\n", i)
            end = n if end < 0 else end
            piece, i = pattern[i:end], end
        else:
            piece, i = c, i + 1
        out.append(piece)
    return "".join(out)


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The escape starting at `pattern[i]` (a backslash), rewritten, and the offset after it."""
    if i + 1 >= len(pattern):
        raise _refuse(pattern, "Illegal \\ at end of pattern.")
    e = pattern[i + 1]
    if e == "e":
        return "\\x1b", i + 2
    if e == "c":
        if i + 2 >= len(pattern) or not pattern[i + 2].isalpha():
            raise _refuse(pattern, "Missing control character.")
        return f"\\x{ord(pattern[i + 2].upper()) - 64:02x}", i + 3
    if in_class:
        if e.isalnum() and e not in _CLASS_LETTERS:
            raise _refuse(pattern, f"Unrecognized escape sequence \\{e}.")
        return pattern[i : i + 2], i + 2
    if e == "Z":
        return "(?=\\n?\\Z)", i + 2
    if e == "z":
        return "\\Z", i + 2
    if e == "G":
        raise _refuse(pattern, "\\G is not supported")
    if e == "k" and i + 2 < len(pattern) and pattern[i + 2] in "<'":
        close = ">" if pattern[i + 2] == "<" else "'"
        end = pattern.find(close, i + 3)
        name = pattern[i + 3 : end] if end > 0 else ""
        if not _NAME.fullmatch(name):
            raise _refuse(pattern, "Malformed \\k<...> named back reference.")
        return f"\\g<{name}>", end + 1
    return pattern[i : i + 2], i + 2


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """`[...]` from `pattern[i]`, with a leading `^` and a leading `]` taken literally."""
    out = ["["]
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        out.append("^")
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        out.append("\\]")
        j += 1
    while j < len(pattern):
        c = pattern[j]
        if c == "]":
            out.append("]")
            return "".join(out), j + 1
        if c == "\\":
            piece, j = _escape(pattern, j, in_class=True)
            out.append(piece)
            continue
        if c == "-" and pattern.startswith("[", j + 1):
            raise _refuse(pattern, "character class subtraction is not supported")
        out.append("\\[" if c == "[" else c)
        j += 1
    raise _refuse(pattern, "Unterminated [] set.")


def _group_open(pattern: str, i: int) -> tuple[str, int]:
    """`(?...` from `pattern[i]`: named groups renamed, .NET-only groups refused."""
    rest = pattern[i + 2 : i + 3]
    if rest == "(":
        raise _refuse(pattern, "conditional groups are not supported")
    if rest == "#":
        end = pattern.find(")", i)
        if end < 0:
            raise _refuse(pattern, "Unterminated (?#...) comment.")
        return pattern[i : end + 1], end + 1
    if rest in ("<", "'") and pattern[i + 3 : i + 4] not in ("=", "!"):
        close = ">" if rest == "<" else "'"
        end = pattern.find(close, i + 3)
        name = pattern[i + 3 : end] if end > 0 else ""
        if "-" in name:
            raise _refuse(pattern, "balancing groups are not supported")
        if not _NAME.fullmatch(name):
            raise _refuse(pattern, f"Invalid group name '{name}'.")
        if name.isdigit():
            return "(", end + 1  # `(?<2>...)` is group 2: a plain group here
        return f"(?P<{name}>", end + 1
    return "(?", i + 2
