"""Find `@(...)` and `@{...}` policy expressions in raw document text.

APIM accepts documents whose expressions contain raw `"`, `<` and `&&`, which an XML parser
rejects. The policy loader therefore locates expressions first, with a scanner that understands
C# lexical structure (string and char literals, verbatim and interpolated strings, comments) so a
bracket inside a string never ends an expression. `&quot;` also delimits a string, because
well-formed documents write the quotes of C# strings that way inside attributes.
"""

from __future__ import annotations

_OPEN = {"(": ")", "{": "}", "[": "]"}
_QUOT = "&quot;"


def find_expressions(text: str) -> list[tuple[int, int]]:
    """Return `(start, end)` spans of every top-level `@(...)` / `@{...}`; `text[start]` is `@`.

    An unterminated expression is not reported (the caller's parser reports the broken text).
    """
    spans: list[tuple[int, int]] = []
    i = 0
    n = len(text)
    while i < n - 1:
        if text[i] == "@" and text[i + 1] in "({":
            end = _match(text, i + 1)
            if end is None:
                i += 2
                continue
            spans.append((i, end))
            i = end
        else:
            i += 1
    return spans


def _match(text: str, i: int) -> int | None:
    """Index just after the bracket that closes the one at `i`, or None when unbalanced."""
    stack = [_OPEN[text[i]]]
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c in _OPEN:
            stack.append(_OPEN[c])
            i += 1
        elif c in ")}]":
            if c != stack[-1]:
                return None
            stack.pop()
            i += 1
            if not stack:
                return i
        elif c == "/" and text.startswith("//", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif c == "/" and text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
        elif c == "'":
            i = _skip_char(text, i)
        elif c == '"' or text.startswith(_QUOT, i):
            i = _skip_string(text, i, verbatim=False, interpolated=False)
        elif c in "@$":
            j = i
            verbatim = interpolated = False
            while j < n and text[j] in "@$" and j - i < 2:
                verbatim |= text[j] == "@"
                interpolated |= text[j] == "$"
                j += 1
            if j < n and (text[j] == '"' or text.startswith(_QUOT, j)):
                i = _skip_string(text, j, verbatim=verbatim, interpolated=interpolated)
            else:
                i += 1
        else:
            i += 1
    return None


def _skip_char(text: str, i: int) -> int:
    """Skip a char literal `'x'`, `'\\n'`; a lone `'` is skipped as one character."""
    j = i + 1
    if j < len(text) and text[j] == "\\":
        j += 2
    else:
        j += 1
    end = text.find("'", j)
    return end + 1 if 0 <= end - j <= 8 else i + 1


def _skip_string(text: str, i: int, *, verbatim: bool, interpolated: bool) -> int:
    """Index after the string literal starting at `i` (at its opening `"` or `&quot;`)."""
    quote = _QUOT if text.startswith(_QUOT, i) else '"'
    i += len(quote)
    n = len(text)
    while i < n:
        if text.startswith(quote, i):
            if verbatim and text.startswith(quote, i + len(quote)):
                i += 2 * len(quote)
                continue
            return i + len(quote)
        c = text[i]
        if c == "\\" and not verbatim:
            i += 2
        elif interpolated and c == "{":
            if text.startswith("{{", i):
                i += 2
                continue
            end = _match(text, i)
            if end is None:
                return n
            i = end
        else:
            i += 1
    return n
