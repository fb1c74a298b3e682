"""Json.NET's lenient JSON, rewritten as strict JSON for `json.loads`.

`JObject.Parse`, `JToken.Parse` and `JsonConvert.DeserializeObject` accept what Json.NET's
`JsonTextReader` does beyond RFC 8259: single-quoted strings, unquoted property names,
`//` and `/* */` comments, and a trailing comma before `}` or `]`. Strict text never comes here
(the caller tries `json.loads` first), so the common case pays nothing.
"""

from __future__ import annotations

import json
import re

_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_PLAIN = re.compile(r"[^\s'\"{}\[\],/]+")
_SPACE_OR_COMMENT = re.compile(r"(?:\s+|//[^\n\r]*|/\*.*?\*/)*", re.S)


def relax(text: str) -> str:
    """The strict JSON equivalent of Json.NET-lenient `text`; ValueError when it is not JSON
    Json.NET would read either (unterminated string or comment, a bare word as a value)."""
    out: list[str] = []
    stack: list[str] = []  # "{" or "["
    expect_name = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n" or text.startswith(("//", "/*"), i):
            end = _SPACE_OR_COMMENT.match(text, i).end()
            if end == i:
                raise ValueError(f"unterminated comment at {i}")
            out.append(" ")
            i = end
        elif c == '"' or c == "'":
            literal, i = _string(text, i)
            out.append(literal)
            expect_name = False
        elif c in "{[":
            stack.append(c)
            expect_name = c == "{"
            out.append(c)
            i += 1
        elif c in "}]":
            if stack:
                stack.pop()
            _drop_trailing_comma(out)
            out.append(c)
            expect_name = False
            i += 1
        elif c == ",":
            out.append(c)
            expect_name = bool(stack) and stack[-1] == "{"
            i += 1
        elif expect_name and (m := _NAME.match(text, i)):
            out.append(json.dumps(m.group(0)))
            expect_name = False
            i = m.end()
        else:
            m = _PLAIN.match(text, i)
            end = m.end() if m else i + 1
            out.append(text[i:end])
            i = end
    return "".join(out)


def _string(text: str, start: int) -> tuple[str, int]:
    """A quoted string at `start` as a double-quoted JSON literal, and the offset after it."""
    quote = text[start]
    i = start + 1
    parts: list[str] = []
    while i < len(text):
        c = text[i]
        if c == quote:
            return '"' + "".join(parts) + '"', i + 1
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            parts.append("'" if nxt == "'" else c + nxt)
            i += 2
            continue
        parts.append('\\"' if c == '"' else c)
        i += 1
    raise ValueError(f"unterminated string at {start}")


def _drop_trailing_comma(out: list[str]) -> None:
    j = len(out) - 1
    while j >= 0 and out[j] == " ":
        j -= 1
    if j >= 0 and out[j] == ",":
        del out[j]
