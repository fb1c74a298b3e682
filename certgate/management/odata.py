"""A small OData `$filter` compiler: comparisons, string functions, and/or/not, parentheses.

Supported: `eq ne gt lt ge le` on every field; `contains(f,'x')`, `startswith(f,'x')`,
`endswith(f,'x')`, `substringof('x',f)` on string fields. String comparisons ignore case (as APIM's
do); datetime fields compare as instants. Anything else is refused with a message naming it.
Nesting (`not`, parentheses) deeper than `max_depth` is refused, so neither parsing nor evaluation
recurses without bound; `and`/`or` chains evaluate as flat lists.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from certgate.management.errors import ValidationError

Predicate = Callable[[Callable[[str], Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^']|'')*')
  | (?P<datetime>datetime'[^']*'
      |\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_./]*)
  | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "lt", "ge", "le"}
_FUNCTIONS = {"contains", "startswith", "endswith", "substringof"}
_KEYWORDS = {"true": True, "false": False, "null": None}


def compile_filter(text: str, fields: Mapping[str, str], max_depth: int) -> Predicate:
    """Compiles `text` against the fields (name -> type); the predicate takes a field getter."""
    parser = _Parser(_tokenize(text), fields, max_depth)
    predicate = parser.expression()
    left = parser.peek()
    if left is not None:
        raise _error(f"unexpected '{left[1]}'")
    return predicate


def _error(reason: str) -> ValidationError:
    return ValidationError(f"Invalid $filter: {reason}.", "$filter")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found or found.end() == position or found.lastgroup is None:
            raise _error(f"cannot read '{text[position : position + 20].strip()}'")
        kind = found.lastgroup
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


class _Parser:
    def __init__(
        self, tokens: list[tuple[str, str]], fields: Mapping[str, str], max_depth: int
    ) -> None:
        self.tokens, self.index, self.fields = tokens, 0, fields
        self.depth, self.max_depth = 0, max_depth

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _error("the expression ends too early")
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if token[1] != value:
            raise _error(f"expected '{value}' but found '{token[1]}'")

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "name" and token[1].lower() == word:
            self.index += 1
            return True
        return False

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda get: any(term(get) for term in terms)

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while self.keyword("and"):
            terms.append(self.unary())
        if len(terms) == 1:
            return terms[0]
        return lambda get: all(term(get) for term in terms)

    def nested(self, parse: Callable[[], Predicate]) -> Predicate:
        self.depth += 1
        if self.depth > self.max_depth:
            raise _error(f"'not' and parentheses nest deeper than {self.max_depth} levels")
        inner = parse()
        self.depth -= 1
        return inner

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.nested(self.unary)
            return lambda get: not inner(get)
        token = self.peek()
        if token and token[1] == "(":
            self.take()
            inner = self.nested(self.expression)
            self.expect(")")
            return inner
        if token and token[0] == "name" and token[1].lower() in _FUNCTIONS:
            return self.function()
        return self.comparison()

    def function(self) -> Predicate:
        name = self.take()[1].lower()
        self.expect("(")
        first = self.operand()
        self.expect(",")
        second = self.operand()
        self.expect(")")
        field, needle = (second, first) if name == "substringof" else (first, second)
        if field[0] != "field" or self.fields[field[1]] != "string":
            raise _error(f"{name}() needs a string field")
        if needle[0] != "value" or not isinstance(needle[1], str):
            raise _error(f"{name}() needs a quoted string")
        key, value = field[1], needle[1].casefold()
        test = {
            "contains": lambda s: value in s,
            "substringof": lambda s: value in s,
            "startswith": lambda s: s.startswith(value),
            "endswith": lambda s: s.endswith(value),
        }[name]
        return lambda get: isinstance(get(key), str) and test(get(key).casefold())

    def comparison(self) -> Predicate:
        left = self.operand()
        token = self.take()
        operator = token[1].lower()
        if operator not in _COMPARISONS:
            raise _error(f"'{token[1]}' is not a supported operator")
        right = self.operand()
        if left[0] != "field":
            left, right, operator = right, left, _MIRROR[operator]
        if left[0] != "field" or right[0] != "value":
            raise _error("a comparison needs one field and one literal")
        key, kind = left[1], self.fields[left[1]]
        literal = _coerce(right[1], kind, key)
        compare = _OPERATORS[operator]

        def predicate(get: Callable[[str], Any]) -> bool:
            value = _normalise(get(key), kind)
            if value is None or literal is None:
                return (
                    compare(value is None, literal is None) if operator in ("eq", "ne") else False
                )
            try:
                return compare(value, literal)
            except TypeError:
                return False

        return predicate

    def operand(self) -> tuple[str, Any]:
        kind, text = self.take()
        if kind == "string":
            return "value", text[1:-1].replace("''", "'")
        if kind == "datetime":
            return "value", _parse_datetime(text)
        if kind == "number":
            return "value", float(text)
        if kind == "name":
            if text.lower() in _KEYWORDS:
                return "value", _KEYWORDS[text.lower()]
            field = text.removeprefix("properties/")
            if field not in self.fields:
                known = ", ".join(sorted(self.fields))
                raise _error(f"'{text}' is not a filterable field (use one of {known})")
            return "field", field
        raise _error(f"unexpected '{text}'")


_LITERAL_TYPES = {"number": float, "bool": bool}
_MIRROR = {"eq": "eq", "ne": "ne", "gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}
_OPERATORS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
    "ge": lambda a, b: a >= b,
    "le": lambda a, b: a <= b,
}


def _parse_datetime(text: str) -> dt.datetime:
    text = text.removeprefix("datetime'").removesuffix("'")
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _error(f"'{text}' is not an ISO 8601 date") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _coerce(value: Any, kind: str, field: str) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        if isinstance(value, str):
            return _parse_datetime(value)
        if isinstance(value, dt.datetime):
            return value
    elif kind == "string":
        if isinstance(value, str):
            return value.casefold()
        if isinstance(value, float):
            return f"{value:g}".casefold()
        if isinstance(value, dt.datetime):
            raise _error(f"'{field}' is a string: quote the value")
    elif isinstance(value, _LITERAL_TYPES.get(kind, ())):
        return value
    raise _error(f"the value compared with '{field}' must be a {kind}")


def _normalise(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "string":
        return str(value).casefold()
    if kind == "datetime" and isinstance(value, str):
        try:
            return _parse_datetime(value)
        except ValidationError:
            return None
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
