"""Json.NET's lenient JSON, rewritten as strict JSON for `json.loads`.

`JObject.Parse`, `JToken.Parse` and `JsonConvert.DeserializeObject` accept what Json.NET's
`JsonTextReader` does beyond RFC 8259: single-quoted strings, unquoted property names,
`//` and `/* */` comments, and a trailing comma before `}` or `]`. Strict text never comes here
(the caller tries `json.loads` first), so the common case pays nothing. One regular-expression
pass finds the tokens to rewrite; the rest is copied by the regex engine, not by Python.
"""

from __future__ import annotations

import re

_GAP = r"(?:\s|//[^\n\r]*|/\*.*?\*/)*"  # whitespace and comments
# Unterminated strings and comments run to the end of the text (which then fails to parse), so
# every token is scanned once: no quadratic rescans on hostile text.
_TOKEN = re.compile(
    r'(?P<double>"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z))'
    r"|(?P<single>'[^'\\]*(?:\\.[^'\\]*)*(?:'|\Z))"
    r"|(?P<comment>//[^\n\r]*|/\*(?:.*?\*/|.*))"
    rf"|(?P<trailing>,(?={_GAP}[}}\]]))"
    rf"|(?P<lead>[{{,])(?P<gap>{_GAP})(?P<name>[A-Za-z_$][\w$]*)(?={_GAP}:)",
    re.S,
)
_SINGLE_INNER = re.compile(r'\\(.)|"', re.S)


def _single(inner: str) -> str:
    """The body of a single-quoted string as a double-quoted one: `\\'` -> `'`, `"` -> `\\"`."""

    def one(m: re.Match[str]) -> str:
        escaped = m.group(1)
        if escaped is None:
            return '\\"'
        return "'" if escaped == "'" else "\\" + escaped

    return '"' + _SINGLE_INNER.sub(one, inner) + '"'


def _rewrite(m: re.Match[str]) -> str:
    kind = m.lastgroup
    text = m.group(0)
    if kind == "double":
        return text
    if kind == "single":
        closed = len(text) > 1 and text.endswith("'")
        return _single(text[1:-1]) if closed else text
    if kind == "name":
        return m.group("lead") + ' "' + m.group("name") + '"'
    if kind == "comment":
        unterminated = text.startswith("/*") and (len(text) < 4 or not text.endswith("*/"))
        return text if unterminated else " "  # kept, an unterminated comment fails to parse
    return ""  # a trailing comma goes


def relax(text: str) -> str:
    """The strict JSON equivalent of Json.NET-lenient `text` (still invalid where Json.NET
    would refuse it too: an unterminated string or comment, a bare word as a value)."""
    return _TOKEN.sub(_rewrite, text)
