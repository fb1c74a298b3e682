"""The two spellings of a policy document: `rawxml` (expressions as written) and `xml`.

APIM stores a document once and returns it in either format: in `xml` every expression is
XML-escaped so the document is well-formed; in `rawxml` expressions keep raw `"`, `<` and `&`.
"""

from __future__ import annotations

from certgate.expressions import find_expressions
from certgate.policy.reader import decode_entities

_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"))


def _rewrite(text: str, change) -> str:
    out: list[str] = []
    last = 0
    for start, end in find_expressions(text):
        out.append(text[last:start])
        out.append(change(text[start:end]))
        last = end
    out.append(text[last:])
    return "".join(out)


def to_raw(text: str) -> str:
    """Expressions unescaped (`&quot;` -> `"`), everything else untouched."""
    return _rewrite(text, decode_entities)


def _escape(expression: str) -> str:
    for raw, entity in _ESCAPES:
        expression = expression.replace(raw, entity)
    return expression


def to_xml(text: str) -> str:
    """Well-formed XML: every expression escaped (expects the raw form)."""
    return _rewrite(to_raw(text), _escape)
