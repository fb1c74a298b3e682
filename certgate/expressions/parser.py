"""Parse an `@(...)` / `@{...}` expression with tree-sitter-c-sharp.

The text is wrapped so it parses as a method body (`return (<expr>);` or the block itself); the
wrapper sits on the first line only, so positions map back with a column shift on line 1.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import tree_sitter
import tree_sitter_c_sharp

from .errors import ExpressionCompileError

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

    def position(self, node: tree_sitter.Node) -> tuple[int, int]:
        """1-based (line, column) of `node` inside the original `@...` text."""
        row, col_bytes = node.start_point
        line_start = self.wrapped.rfind(b"\n", 0, node.start_byte) + 1
        col = len(self.wrapped[line_start : line_start + col_bytes].decode("utf-8", "replace"))
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
