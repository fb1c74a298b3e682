"""Statements of `@{...}` blocks: declarations, if/switch, loops with a budget, try/catch.

A mixin of `Compiler`: each `s_<node type>` returns a closure `(e) -> control code`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tree_sitter import Node

from .closures import (
    BREAK,
    CONTINUE,
    NORMAL,
    RETURN,
    ExceptionObject,
    Fn,
    catches,
    implicit_conversion,
    nop,
    tick,
    translate,
)
from .dotnet.collections import enumerate_cs
from .errors import BudgetExceeded, ExpressionCompileError, InternalCompileError, cs_error
from .runtime import cs_str
from .syntax import field_of

if TYPE_CHECKING:
    from .compiler import _Scope
    from .dotnet import CsType

Pattern = Callable[[list, Any], bool]


class StatementCompiler:
    """Statement half of the compiler (expressions, scopes and errors live in `Compiler`)."""

    if TYPE_CHECKING:  # what `Compiler` provides
        scope: _Scope
        int32: set[Any]
        int_slots: set[int]

        def push(self) -> None: ...
        def pop(self) -> None: ...
        def text(self, node: Node) -> str: ...
        def unsupported(self, node: Node, what: str) -> ExpressionCompileError: ...
        def declare(self, node: Node, name: str) -> int: ...
        def expr(self, node: Node) -> Fn: ...
        def cond(self, node: Node) -> Fn: ...
        def type_of(self, node: Node) -> tuple[CsType | None, str]: ...
        def initializer(self, node: Node, tname: str) -> Fn: ...
        def pattern(self, node: Node) -> Pattern: ...

    def block(self, node: Node) -> Fn:
        self.push()
        try:
            stmts = node.named_children
            for s in stmts:
                if s.type == "local_function_statement":
                    name = self.text(field_of(s, "name"))
                    self.scope.funcs[name] = [None, None]
            compiled = [self.stmt(s) for s in stmts if s.type not in ("comment",)]
        finally:
            self.pop()
        fns = [f for f in compiled if f is not None]
        if len(fns) == 1:
            return fns[0]

        def run(e: list) -> int:
            for f in fns:
                c = f(e)
                if c:
                    return c
            return NORMAL

        return run

    def stmt(self, node: Node) -> Fn | None:
        h = getattr(self, "s_" + node.type, None)
        if h is None:
            kind = node.type.replace("_statement", "")
            raise self.unsupported(node, f"statement '{kind}'")
        return self.handle(h, node)

    def handle(self, handler: Callable[[Node], Any], node: Node) -> Any:
        """`handler(node)`; an unexpected exception becomes an InternalCompileError naming the
        innermost node it came from (refusals and depth errors pass through)."""
        try:
            return handler(node)
        except (ExpressionCompileError, InternalCompileError, RecursionError):
            raise
        except Exception as e:
            raise InternalCompileError(node) from e

    def s_block(self, node: Node) -> Fn:
        return self.block(node)

    def s_comment(self, node: Node) -> None:
        return None

    def s_empty_statement(self, node: Node) -> None:
        return None

    def s_checked_statement(self, node: Node) -> Fn:
        return self.block(node.named_children[-1])

    def s_expression_statement(self, node: Node) -> Fn:
        f = self.expr(node.named_children[0])

        def run(e: list) -> int:
            f(e)
            return NORMAL

        return run

    def s_local_declaration_statement(self, node: Node) -> Fn | None:
        decl = next(c for c in node.named_children if c.type == "variable_declaration")
        return self.variable_declaration(decl)

    def variable_declaration(self, decl: Node) -> Fn:
        ctype, tname = self.type_of(field_of(decl, "type"))
        steps: list[tuple[int, Fn | None]] = []
        for d in decl.named_children:
            if d.type != "variable_declarator":
                continue
            name_node = d.child_by_field_name("name") or d.named_children[0]
            rest = [c for c in d.named_children if c != name_node]
            init = None
            if rest:
                init = (
                    self.initializer(rest[-1], tname)
                    if rest[-1].type == "initializer_expression"
                    else self.expr(rest[-1])
                )
                init = implicit_conversion(init, tname)
            slot = self.declare(name_node, self.text(name_node))
            if tname in ("int", "Int32", "System.Int32") or (tname == "var" and init in self.int32):
                self.int_slots.add(slot)
            steps.append((slot, init))
        default = ctype.default if ctype is not None else None

        def run(e: list) -> int:
            for slot, init in steps:
                e[slot] = init(e) if init is not None else default
            return NORMAL

        return run

    def s_local_function_statement(self, node: Node) -> None:
        name = self.text(field_of(node, "name"))
        holder = self.scope.funcs[name]
        self.push()
        try:
            slots = [
                self.declare(p, self.text(field_of(p, "name")))
                for p in field_of(node, "parameters").named_children
                if p.type == "parameter"
            ]
            body = node.child_by_field_name("body")
            if body is None or body.type == "arrow_expression_clause":
                arrow = body or next(
                    c for c in node.named_children if c.type == "arrow_expression_clause"
                )
                holder[1] = self.expr(arrow.named_children[0])
                holder[0] = slots
                return None
            blk = self.block(body)
        finally:
            self.pop()

        def run(e: list) -> Any:
            e[2] = None
            blk(e)
            return e[2]

        holder[0], holder[1] = slots, run
        return None

    def s_using_statement(self, node: Node) -> Fn:
        """`using (var x = ...) { }`: the resources here hold nothing to release, so scope only."""
        self.push()
        try:
            head = next(c for c in node.named_children if c != node.child_by_field_name("body"))
            init = (
                self.variable_declaration(head)
                if head.type == "variable_declaration"
                else self.s_expression_statement_of(head)
            )
            body = self.stmt(field_of(node, "body")) or nop
        finally:
            self.pop()

        def run(e: list) -> int:
            if init is not None:
                init(e)
            return body(e)

        return run

    def s_expression_statement_of(self, node: Node) -> Fn:
        f = self.expr(node)
        return lambda e: f(e) and NORMAL

    def s_if_statement(self, node: Node) -> Fn:
        cond = self.cond(field_of(node, "condition"))
        then = self.stmt(field_of(node, "consequence")) or nop
        alt_node = node.child_by_field_name("alternative")
        alt = (self.stmt(alt_node) or nop) if alt_node is not None else nop

        def run(e: list) -> int:
            return then(e) if cond(e) else alt(e)

        return run

    def s_return_statement(self, node: Node) -> Fn:
        val = self.expr(node.named_children[0]) if node.named_children else (lambda e: None)

        def run(e: list) -> int:
            e[2] = val(e)
            return RETURN

        return run

    def s_break_statement(self, node: Node) -> Fn:
        return lambda e: BREAK

    def s_continue_statement(self, node: Node) -> Fn:
        return lambda e: CONTINUE

    def s_throw_statement(self, node: Node) -> Fn:
        if not node.named_children:

            def rethrow(e: list) -> int:
                raise cs_error("Exception", "rethrown")

            return rethrow
        val = self.expr(node.named_children[0])

        def run(e: list) -> int:
            ex = val(e)
            if isinstance(ex, ExceptionObject):
                raise cs_error(ex.cs_type, ex.Message)
            raise cs_error("Exception", cs_str(ex))

        return run

    def _loop_body(self, node: Node) -> Fn:
        self.metered = True
        return self.stmt(node) or nop

    def s_while_statement(self, node: Node) -> Fn:
        cond = self.cond(field_of(node, "condition"))
        body = self._loop_body(field_of(node, "body"))

        def run(e: list) -> int:
            while cond(e):
                tick(e)
                c = body(e)
                if c == BREAK:
                    break
                if c == RETURN:
                    return c
            return NORMAL

        return run

    def s_do_statement(self, node: Node) -> Fn:
        cond = self.cond(field_of(node, "condition"))
        body = self._loop_body(field_of(node, "body"))

        def run(e: list) -> int:
            while True:
                tick(e)
                c = body(e)
                if c == BREAK:
                    break
                if c == RETURN:
                    return c
                if not cond(e):
                    break
            return NORMAL

        return run

    def s_for_statement(self, node: Node) -> Fn:
        self.push()
        try:
            inits: list[Fn] = []
            updates: list[Fn] = []
            cond: Fn = lambda e: True  # noqa: E731
            for i, c in enumerate(node.children):
                field = node.field_name_for_child(i)
                if not c.is_named:
                    continue
                if field == "initializer":
                    inits.append(
                        self.variable_declaration(c)
                        if c.type == "variable_declaration"
                        else self.expr(c)
                    )
                elif field == "condition":
                    cond = self.cond(c)
                elif field == "update":
                    updates.append(self.expr(c))
            body = self._loop_body(field_of(node, "body"))
        finally:
            self.pop()

        def run(e: list) -> int:
            for f in inits:
                f(e)
            while cond(e):
                tick(e)
                c = body(e)
                if c == BREAK:
                    break
                if c == RETURN:
                    return c
                for u in updates:
                    u(e)
            return NORMAL

        return run

    def s_foreach_statement(self, node: Node) -> Fn:
        source = self.expr(field_of(node, "right"))
        left = field_of(node, "left")
        if left.type != "identifier":
            raise self.unsupported(left, "deconstruction in foreach")
        self.type_of(field_of(node, "type"))
        self.push()
        try:
            slot = self.declare(left, self.text(left))
            body = self._loop_body(field_of(node, "body"))
        finally:
            self.pop()

        def run(e: list) -> int:
            for item in list(enumerate_cs(source(e))):
                tick(e)
                e[slot] = item
                c = body(e)
                if c == BREAK:
                    break
                if c == RETURN:
                    return c
            return NORMAL

        return run

    def s_switch_statement(self, node: Node) -> Fn:
        value = self.expr(field_of(node, "value"))
        sections: list[tuple[list[Pattern | None], Fn]] = []
        pending: list[Pattern | None] = []
        self.push()
        try:
            for sec in field_of(node, "body").named_children:
                if sec.type != "switch_section":
                    continue
                labels: list[Pattern | None] = []
                stmts = []
                for c in sec.named_children:
                    if c.type in (
                        "constant_pattern",
                        "declaration_pattern",
                        "type_pattern",
                        "discard",
                    ):
                        labels.append(self.pattern(c))
                    elif c.type == "when_clause":
                        raise self.unsupported(c, "'when' in switch")
                    elif c.type.endswith("pattern"):
                        raise self.unsupported(c, f"pattern '{c.type}'")
                    else:
                        stmts.append(self.stmt(c))
                if any(t.type == "default" for t in sec.children):
                    labels.append(None)
                body_fns = [s for s in stmts if s is not None]
                if not stmts:
                    pending.extend(labels)
                    continue
                labels = pending + labels
                pending = []

                def body(e: list, fns: list[Fn] = body_fns) -> int:
                    for f in fns:
                        c = f(e)
                        if c:
                            return c
                    return NORMAL

                sections.append((labels, body))
        finally:
            self.pop()

        def run(e: list) -> int:
            v = value(e)
            chosen = None
            for labels, body in sections:
                if any(lab is not None and lab(e, v) for lab in labels):
                    chosen = body
                    break
            if chosen is None:
                chosen = next((b for labels, b in sections if None in labels), None)
            if chosen is None:
                return NORMAL
            c = chosen(e)
            return NORMAL if c == BREAK else c

        return run

    def s_try_statement(self, node: Node) -> Fn:
        body = self.stmt(field_of(node, "body")) or nop
        handlers: list[tuple[str, int | None, Fn]] = []
        final: Fn | None = None
        for c in node.named_children:
            if c.type == "catch_clause":
                self.push()
                try:
                    tname, slot = "Exception", None
                    for d in c.named_children:
                        if d.type == "catch_declaration":
                            tnode = field_of(d, "type")
                            tname = self.text(tnode).split(".")[-1]
                            if not tname.endswith("Exception"):
                                raise self.unsupported(tnode, f"type '{tname}'")
                            nm = d.child_by_field_name("name")
                            if nm is not None:
                                slot = self.declare(nm, self.text(nm))
                        elif d.type == "catch_filter_clause":
                            raise self.unsupported(d, "exception filter")
                    handler = self.stmt(field_of(c, "body")) or nop
                finally:
                    self.pop()
                handlers.append((tname, slot, handler))
            elif c.type == "finally_clause":
                final = self.stmt(c.named_children[-1]) or nop

        def run(e: list) -> int:
            try:
                return body(e)
            except BudgetExceeded:
                raise
            except Exception as exc:
                ex = translate(exc)
                if isinstance(ex, BudgetExceeded):
                    raise ex from None
                for tname, slot, handler in handlers:
                    if catches(tname, ex.cs_type):
                        if slot is not None:
                            e[slot] = ExceptionObject(ex.cs_type, ex.message)
                        return handler(e)
                raise
            finally:
                if final is not None:
                    final(e)

        return run
