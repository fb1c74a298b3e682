"""Shape questions about tree-sitter C# nodes that the compiler asks."""

from __future__ import annotations

from tree_sitter import Node

CHAIN = {
    "member_access_expression",
    "invocation_expression",
    "element_access_expression",
    "conditional_access_expression",
}


def dotted_name(node: Node) -> str | None:
    """`a.b.c` as text when the node is a chain of plain identifiers, else None."""
    if node.type == "identifier":
        return node.text.decode() if node.text else None
    if node.type in ("member_access_expression", "qualified_name"):
        left = node.child_by_field_name("expression") or node.child_by_field_name("qualifier")
        name = node.child_by_field_name("name")
        if left is None or name is None or name.type != "identifier":
            return None
        head = dotted_name(left)
        return f"{head}.{name.text.decode()}" if head and name.text else None
    return None


LOOSE = {
    "binary_expression",
    "prefix_unary_expression",
    "cast_expression",
    "conditional_expression",
    "assignment_expression",
}


def node_key(node: Node) -> tuple[int, int, str]:
    return (node.start_byte, node.end_byte, node.type)


def misparsed_operand(node: Node) -> Node | None:
    """The operator node a `?.` chain was wrongly attached to, if any."""
    n: Node | None = node
    while n is not None and n.type in CHAIN:
        if n.type == "conditional_access_expression":
            cond = n.child_by_field_name("condition")
            if cond is not None and cond.type in LOOSE:
                return cond
            n = cond
            continue
        n = n.child_by_field_name("expression") or n.child_by_field_name("function")
    return None


BOOL_OPS = {"==", "!=", "<", ">", "<=", ">=", "&&", "||"}


def is_boolean(node: Node) -> bool:
    """Whether the node's closure always yields a Python bool (no truthiness check needed)."""
    t = node.type
    if t == "parenthesized_expression":
        return is_boolean(node.named_children[0])
    if t in ("boolean_literal", "is_pattern_expression", "is_expression"):
        return True
    if t == "binary_expression":
        op = node.child_by_field_name("operator")
        return op is not None and op.type in BOOL_OPS
    if t == "prefix_unary_expression":
        return any(c.type == "!" for c in node.children if not c.is_named)
    return False


def has_conditional(node: Node) -> bool:
    n: Node | None = node
    while n is not None and n.type in CHAIN:
        if n.type == "conditional_access_expression":
            return True
        n = (
            n.child_by_field_name("expression")
            or n.child_by_field_name("function")
            or n.child_by_field_name("condition")
        )
    return False


def field_of(node: Node, name: str) -> Node:
    """A field the grammar always gives `node` (tree-sitter's accessor may answer None)."""
    child = node.child_by_field_name(name)
    if child is None:
        raise LookupError(f"a {node.type} without its {name}")
    return child
