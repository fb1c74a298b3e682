"""Parse an `@(...)` / `@{...}` expression with tree-sitter-c-sharp.

The text is wrapped so it parses as a method body (`return (<expr>);` or the block itself); the
wrapper sits on the first line only, so positions map back with a column shift on line 1.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import tree_sitter
import tree_sitter_c_sharp

from . import dotnet
from .errors import ExpressionCompileError
from .syntax import field_of

_LANGUAGE = tree_sitter.Language(tree_sitter_c_sharp.language())
_local = threading.local()
_EXPR_PREFIX = "class __E{object __M(){return ("
_EXPR_SUFFIX = "\n);}}"
_BLOCK_PREFIX = "class __E{object __M()"
_BLOCK_SUFFIX = "\n}"


@dataclass
class Parsed:
    """The parse tree of the wrapped text and how to map its positions back."""

    body: tree_sitter.Node  # the expression (single) or the block (multi-statement)
    is_block: bool
    wrapped: bytes
    shift: int  # characters the first line moved right by
    lines_before: int = 0  # newlines in whitespace before the `@`
    inserted: tuple[int, ...] = ()  # offsets in `wrapped` of parentheses the parser added

    def position(self, node: tree_sitter.Node) -> tuple[int, int]:
        """1-based (line, column) of `node` inside the original `@...` text."""
        row, col_bytes = node.start_point
        line_start = self.wrapped.rfind(b"\n", 0, node.start_byte) + 1
        col = len(self.wrapped[line_start : line_start + col_bytes].decode("utf-8", "replace"))
        col -= sum(1 for at in self.inserted if line_start <= at < node.start_byte)
        if row == 0:
            col -= self.shift
        return row + 1 + self.lines_before, max(col, 0) + 1


def _parser() -> tree_sitter.Parser:
    p = getattr(_local, "parser", None)
    if p is None:
        p = _local.parser = tree_sitter.Parser(_LANGUAGE)
    return p


def parse(source: str) -> Parsed:
    """Parse the full expression text; syntax errors raise `ExpressionCompileError`."""
    text = source.strip()
    leading = source[: len(source) - len(source.lstrip())]
    lines_before = leading.count("\n")
    lead = len(leading) - (leading.rfind("\n") + 1)
    if (
        len(text) < 3
        or text[0] != "@"
        or text[1] not in "({"
        or text[-1] != {"(": ")", "{": "}"}[text[1]]
    ):
        raise ExpressionCompileError("expression must be written @(...) or @{...}", 1, 1)
    is_block = text[1] == "{"
    if is_block:
        wrapped = _BLOCK_PREFIX + text[1:] + _BLOCK_SUFFIX
        shift = len(_BLOCK_PREFIX) - 1 - lead
    else:
        wrapped = _EXPR_PREFIX + text[2:-1] + _EXPR_SUFFIX
        shift = len(_EXPR_PREFIX) - 2 - lead
    data = wrapped.encode("utf-8")
    tree = _parser().parse(data)
    parsed = Parsed(tree.root_node, is_block, data, shift, lines_before)
    _check_errors(tree.root_node, parsed)
    inserted: list[int] = []
    rounds = data.count(b"(")  # each round settles at least one parenthesis: a bound
    while spans := _misparsed(tree.root_node):
        # Parenthesise each span C# reads as one operand (outermost first), and parse again.
        rounds -= 1
        if rounds < 0:
            raise ExpressionCompileError("syntax error: ambiguous parenthesised expression", 1, 1)
        for opening, closing in reversed(spans):
            data = data[:opening] + b"(" + data[opening:closing] + b")" + data[closing:]
            inserted = [at + (at >= opening) + (at >= closing) for at in inserted]
            inserted += [opening, closing + 1]
        tree = _parser().parse(data)
        parsed = Parsed(tree.root_node, is_block, data, shift, lines_before, tuple(inserted))
        _check_errors(tree.root_node, parsed)
    cls = tree.root_node.named_children
    if len(cls) != 1 or cls[0].type != "class_declaration":
        raise ExpressionCompileError("syntax error: the expression does not stand alone", 1, 1)
    members = cls[0].child_by_field_name("body").named_children  # type: ignore[union-attr]
    if len(members) != 1 or members[0].type != "method_declaration":
        raise ExpressionCompileError("syntax error: unbalanced brackets", 1, 1)
    block = members[0].child_by_field_name("body")
    if block is None:
        raise ExpressionCompileError("syntax error: unbalanced brackets", 1, 1)
    if is_block:
        parsed.body = block
    else:
        stmts = block.named_children
        ret = stmts[0] if stmts else None
        if len(stmts) != 1 or ret is None or ret.type != "return_statement":
            raise ExpressionCompileError("syntax error: not a single expression", 1, 1)
        expr = ret.named_children[0]
        if (
            expr.type != "parenthesized_expression"
            or expr.start_byte != len(_EXPR_PREFIX) - 1
            or expr.end_byte != len(data) - len(_EXPR_SUFFIX) + 2
        ):
            raise ExpressionCompileError("syntax error: unbalanced parentheses", 1, 1)
        parsed.body = expr.named_children[0]
    return parsed


_VALUE_SHAPES = ("identifier", "qualified_name", "array_type", "generic_name")
_TYPE_SHAPES = ("identifier", "qualified_name", "generic_name", "predefined_type")


def _misparsed(root: tree_sitter.Node) -> list[tuple[int, int]]:
    """The spans tree-sitter splits where C# reads one operand, as (start, end) offsets, in
    text order and disjoint (a span nested in another waits for the next round).

    - `(x) + y` / `(x) - y` read as a cast of `+y`/`-y`: as C# decides (spec 12.9.7), it is a
      binary operation unless the parentheses hold a predefined or known type (`(int)-1`).
      `(a["k"])` comes back as an array type whose rank holds an expression: never a type.
      The span is `(x)`: doubled parentheses cannot be a cast.
    - `(T)a.M<U>(b)` read as `((T)a.M) < U > (b)`: a `<...>` followed by `(` is a type argument
      list (spec 6.2.5). The span is `a.M<U>(b)`, the cast's operand.
    """
    spans: list[tuple[int, int]] = []
    stack = [root]
    while stack:
        n = stack.pop()
        if n.type == "cast_expression":
            kind = n.child_by_field_name("type")
            value = n.child_by_field_name("value")
            if (
                kind is not None
                and value is not None
                and value.type == "prefix_unary_expression"
                and value.children[0].type in ("+", "-")
                and kind.type in _VALUE_SHAPES
                and not _names_type(kind)
            ):
                spans.append((n.children[0].start_byte, n.children[2].end_byte))
                stack.append(value)  # more operands of the same chain, after the span
                continue
        elif n.type == "binary_expression" and _operator(n) == ">":
            less, after = n.child_by_field_name("left"), n.child_by_field_name("right")
            if less is not None and less.type == "binary_expression" and _operator(less) == "<":
                cast, middle = less.child_by_field_name("left"), less.child_by_field_name("right")
                while after is not None and after.type != "parenthesized_expression":
                    after = after.named_children[0] if after.named_children else None
                if (
                    cast is not None
                    and cast.type == "cast_expression"
                    and middle is not None
                    and middle.type in _TYPE_SHAPES
                    and after is not None
                    and after.start_byte == field_of(n, "right").start_byte
                ):
                    spans.append((field_of(cast, "value").start_byte, after.end_byte))
                    continue
        stack.extend(reversed(n.children))
    return spans


def _operator(node: tree_sitter.Node) -> str:
    op = node.child_by_field_name("operator")
    return op.type if op is not None else ""


def _names_type(node: tree_sitter.Node) -> bool:
    if node.type == "array_type":
        rank = node.child_by_field_name("rank")
        inner = node.child_by_field_name("type")
        return (
            rank is not None
            and not rank.named_children
            and inner is not None
            and (inner.type == "predefined_type" or _names_type(inner))
        )
    text = node.text.decode("utf-8") if node.text else ""
    return text.split(".")[0] != "context" and dotnet.lookup(text) is not None


def _check_errors(root: tree_sitter.Node, parsed: Parsed) -> None:
    """Report the first ERROR or MISSING node (or the innermost node flagged with an error)."""
    if not root.has_error:
        return
    n = root
    while True:
        if n.is_missing or (n.start_byte == n.end_byte and n.has_error):
            line, col = parsed.position(n)
            raise ExpressionCompileError(f"syntax error: missing '{n.type}'", line, col)
        if n.type == "ERROR":
            line, col = parsed.position(n)
            snippet = n.text.decode("utf-8", "replace").split("\n")[0][:30] if n.text else ""
            raise ExpressionCompileError(f"syntax error near '{snippet}'", line, col)
        bad = next((c for c in n.children if c.has_error or c.is_missing), None)
        if bad is None:
            line, col = parsed.position(n)
            raise ExpressionCompileError(f"syntax error in '{n.type}'", line, col)
        n = bad
