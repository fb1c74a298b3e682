"""Read a policy document as APIM does: named values, then expressions, then XML.

APIM accepts raw `"`, `<` and `&&` inside `@(...)` / `@{...}`, which no XML parser does. So the
expressions are located first (a C#-aware scanner), swapped for placeholders of the same length,
the XML is parsed with expat (which reports line and column of every element), and the
placeholders are restored in attribute values and text.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from certgate.expressions import find_expressions
from certgate.policy.errors import PolicyValidationError

MAX_DEPTH = 64  # element nesting; real documents stay below 15, recursion in Python does not
_NAMED_VALUE = re.compile(r"\{\{([A-Za-z0-9._\-]+)\}\}")
_TOKEN = re.compile(r"@@(\d+)@@")
_ENTITY = re.compile(r"&(quot|apos|lt|gt|amp|#[0-9]+|#x[0-9a-fA-F]+);")
_ENTITIES = {"quot": '"', "apos": "'", "lt": "<", "gt": ">", "amp": "&"}
# An attribute expression the scanner cannot balance ends at its closing bracket followed by the
# attribute's closing quote and then the end of the tag or the next attribute.
_ATTR_END = {
    "(": re.compile(r"\)\s*\"(?=\s*(?:/?>|[\w:.\-]+\s*=))"),
    "{": re.compile(r"\}\s*\"(?=\s*(?:/?>|[\w:.\-]+\s*=))"),
}


@dataclass(slots=True, eq=False)
class Node:
    """One XML element with its position (line 1-based, column 0-based at `<`, as APIM reports)."""

    tag: str
    attrib: dict[str, str]
    line: int
    column: int
    children: list[Node] = field(default_factory=list)
    text: str = ""
    expr_attrs: frozenset[str] = frozenset()
    text_is_expr: bool = False
    # Text and child elements in document order (set-body's Liquid template is the inner markup).
    parts: list[str | Node] = field(default_factory=list)

    def error(self, reason: str) -> PolicyValidationError:
        return PolicyValidationError(reason, self.tag, self.line, self.column)


def outer_xml(node: Node) -> str:
    """The element as well-formed XML: its attributes, text and child elements (comments and
    processing instructions are not kept)."""
    attributes = "".join(f" {name}={quoteattr(value)}" for name, value in node.attrib.items())
    inner = "".join(
        escape(part) if isinstance(part, str) else outer_xml(part) for part in node.parts
    )
    return f"<{node.tag}{attributes}>{inner}</{node.tag}>"


def decode_entities(text: str) -> str:
    """XML character and entity references replaced by their characters."""

    def entity(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith("#"):
            return _ENTITIES[name]
        hexadecimal = name.startswith("#x")
        digits = name[2:] if hexadecimal else name[1:]
        significant = digits.lstrip("0")
        # At most 0x10FFFF: bounds int() on a 5,000-digit reference before it runs.
        fits = len(significant) <= (6 if hexadecimal else 7)
        number = int(digits, 16 if hexadecimal else 10) if fits else -1
        if not _xml_char(number):
            line = text.count("\n", 0, match.start()) + 1
            raise PolicyValidationError(
                f"'&{name[:12]};' is not a valid XML character reference.", None, line, 0
            )
        return chr(number)

    return _ENTITY.sub(entity, text)


def _xml_char(number: int) -> bool:
    """XML 1.0's Char production: what a character reference may name."""
    return (
        number in (0x9, 0xA, 0xD)
        or 0x20 <= number <= 0xD7FF
        or 0xE000 <= number <= 0xFFFD
        or 0x10000 <= number <= 0x10FFFF
    )


def substitute_named_values(text: str, resolve: Callable[[str], str | None]) -> str:
    """Replace `{{displayName}}` textually; an unknown name is a validation error."""

    def named(match: re.Match[str]) -> str:
        value = resolve(match.group(1))
        if value is None:
            line = text.count("\n", 0, match.start()) + 1
            raise PolicyValidationError(
                f"Named value '{match.group(1)}' could not be found.", None, line, 0
            )
        return value

    return _NAMED_VALUE.sub(named, text)


def _expression_spans(text: str) -> list[tuple[int, int]]:
    """Balanced expressions, plus unbalanced ones that fill an attribute value (kept verbatim)."""
    spans = find_expressions(text)
    starts = {start for start, _ in spans}
    extra = []
    for match in re.finditer(r"=\s*\"(@[({])", text):
        start = match.start(1)
        if start in starts or any(s < start < e for s, e in spans):
            continue
        end = _ATTR_END[text[start + 1]].search(text, start)
        if end is not None:
            close = text.rindex('"', end.start(), end.end())
            extra.append((start, close))
    if not extra:
        return spans
    merged = sorted(spans + extra)
    kept: list[tuple[int, int]] = []
    for span in merged:
        if kept and span[0] < kept[-1][1]:
            continue
        kept.append(span)
    return kept


class _Restorer:
    """Puts the expression text back where the placeholders were."""

    __slots__ = ("pads", "sources")

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.pads: list[int] = []

    def protect(self, text: str) -> str:
        spans = _expression_spans(text)
        if not spans:
            return text
        out: list[str] = []
        last = 0
        for start, end in spans:
            raw = text[start:end]
            index = len(self.sources)
            self.sources.append(decode_entities(raw))
            token = f"@@{index}@@"
            newlines = raw.count("\n")
            if newlines:
                tail = len(raw) - raw.rindex("\n") - 1
                pad = "\n" * newlines + " " * tail
            else:
                pad = " " * max(0, len(raw) - len(token))
            self.pads.append(len(pad))
            out.append(text[last:start])
            out.append(token + pad)
            last = end
        out.append(text[last:])
        return "".join(out)

    def restore(self, value: str) -> tuple[str, bool]:
        """The original text, and whether it is exactly one expression (surrounding space aside)."""
        if "@@" not in value:
            return value, False
        out: list[str] = []
        last = 0
        count = 0
        pos = 0
        while True:
            match = _TOKEN.search(value, pos)
            if match is None:
                break
            index = int(match.group(1))
            if index >= len(self.sources):
                pos = match.end()
                continue
            out.append(value[last : match.start()])
            out.append(self.sources[index])
            count += 1
            last = pos = min(len(value), match.end() + self.pads[index])
        out.append(value[last:])
        text = "".join(out)
        stripped = text.strip()
        single = count == 1 and stripped in self.sources
        return (stripped if single else text), single


def read_document(text: str, resolve: Callable[[str], str | None] | None = None) -> Node:
    """Parse a policy document (or fragment) into a `Node` tree.

    `resolve(display_name)` gives a named value's text; without it `{{x}}` stays as written.
    Raises `PolicyValidationError` for text that is not well-formed.
    """
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if resolve is not None:
        text = substitute_named_values(text, resolve)
    restorer = _Restorer()
    protected = restorer.protect(text)
    parser = xml.parsers.expat.ParserCreate()
    stack: list[Node] = []
    texts: list[list[str]] = []
    root: list[Node] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        attrib = {}
        exprs = []
        for name, value in attrs.items():
            restored, single = restorer.restore(value)
            attrib[name] = restored
            if single:
                exprs.append(name)
        node = Node(
            tag,
            attrib,
            parser.CurrentLineNumber,
            parser.CurrentColumnNumber,
            [],
            "",
            frozenset(exprs),
        )
        if len(stack) >= MAX_DEPTH:
            raise node.error(f"Elements are nested deeper than {MAX_DEPTH} levels.")
        if stack:
            stack[-1].children.append(node)
            stack[-1].parts.append(node)
        else:
            root.append(node)
        stack.append(node)
        texts.append([])

    def end(_tag: str) -> None:
        node = stack.pop()
        node.text, node.text_is_expr = restorer.restore("".join(texts.pop()))
        node.parts = [p if isinstance(p, Node) else restorer.restore(p)[0] for p in node.parts]

    def chars(data: str) -> None:
        if texts:
            texts[-1].append(data)
            stack[-1].parts.append(data)

    def doctype(*_args) -> None:
        raise PolicyValidationError(
            "A policy document may not contain a DOCTYPE declaration.",
            None,
            parser.CurrentLineNumber,
            parser.CurrentColumnNumber,
        )

    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.buffer_text = True
    try:
        parser.Parse(protected, True)
    except xml.parsers.expat.ExpatError as exc:
        reason = xml.parsers.expat.ErrorString(exc.code)
        raise PolicyValidationError(
            f"The policy document is not well-formed XML: {reason}.",
            None,
            exc.lineno,
            exc.offset + 1,
        ) from None
    return root[0]
