"""C# literal values: integers with suffixes, reals, chars and escape sequences."""

from __future__ import annotations

import re
from decimal import Decimal

from tree_sitter import Node

from .runtime import Char

_SIMPLE = {
    "\\'": "'",
    '\\"': '"',
    "\\\\": "\\",
    "\\0": "\0",
    "\\a": "\a",
    "\\b": "\b",
    "\\f": "\f",
    "\\n": "\n",
    "\\r": "\r",
    "\\t": "\t",
    "\\v": "\v",
}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{1,4}|.)")


def escape(seq: str) -> str:
    if seq in _SIMPLE:
        return _SIMPLE[seq]
    if seq[1] in "uUx":
        return chr(int(seq[2:], 16))
    raise ValueError(f"unknown escape {seq}")


def integer(text: str) -> int:
    t = text.replace("_", "").rstrip("uUlL")
    if t[:2] in ("0x", "0X"):
        return int(t[2:], 16)
    if t[:2] in ("0b", "0B"):
        return int(t[2:], 2)
    return int(t)


def real(text: str) -> float | Decimal:
    t = text.replace("_", "")
    if t[-1] in "mM":
        return Decimal(t[:-1])
    return float(t.rstrip("dDfF"))


def char(text: str) -> Char:
    body = text[1:-1]
    return Char(escape(body) if body.startswith("\\") else body)


def string(node: Node) -> str:
    parts = []
    for c in node.named_children:
        t = c.text.decode("utf-8") if c.text else ""
        parts.append(escape(t) if c.type == "escape_sequence" else t)
    return "".join(parts)
