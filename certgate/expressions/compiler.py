"""Compile a tree-sitter C# tree into Python closures, once, at policy save time.

Every closure takes the evaluation environment `e`, a list: `e[0]` is `context`, `e[1]` the
remaining loop budget, `e[2]` the pending return value, `e[3:]` the local variable slots (resolved
to indices at compile time). Statements return a control code (0 normal, BREAK, CONTINUE, RETURN).
No Python source is ever generated; member names resolve only through `members.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any

from tree_sitter import Node

from . import dotnet, literals
from .budget import COSTLY_MEMBERS, check_items, check_length, pulse
from .closures import (
    BINARY,
    NULL_SHORT,
    RETURN,
    ExceptionObject,
    Fn,
    NullShort,
    all_of,
    anonymous_type,
    any_of,
    delegate_call_fn,
    indexer_fn,
    local_call_fn,
    member_fn,
    method_call_fn,
    negate,
    static_call_fn,
    to_int,
)
from .dotnet import CsType
from .errors import ExpressionCompileError, cs_error
from .members import get_index, resolve_method, resolve_property, set_index, set_property
from .parser import Parsed
from .runtime import add, cs_str, equals, sub, truthy, wrap32
from .statements import Pattern, StatementCompiler
from .syntax import (
    CHAIN,
    LOOSE,
    dotted_name,
    field_of,
    has_conditional,
    is_boolean,
    misparsed_operand,
    node_key,
)
from .vocabulary import DENIED_MEMBERS, known_member

FIRST_SLOT = 3


INT_PROMOTED = {"int", "short", "byte", "sbyte", "ushort", "char"}
INT_OPS = {"+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^"}


class _Scope:
    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.vars: dict[str, int] = {}
        self.funcs: dict[str, list] = {}

    def find(self, name: str) -> int | None:
        s: _Scope | None = self
        while s is not None:
            if name in s.vars:
                return s.vars[name]
            s = s.parent
        return None

    def func(self, name: str) -> list | None:
        s: _Scope | None = self
        while s is not None:
            if name in s.funcs:
                return s.funcs[name]
            s = s.parent
        return None


class Compiler(StatementCompiler):
    """Turns one parsed expression into a closure; records the flags the engine needs."""

    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.scope = _Scope(None)
        self.nslots = FIRST_SLOT
        self.uses_request_body = False
        self.uses_response_body = False
        self.metered = False  # can take long: runs against the request's time budget (budget.py)
        self.override: dict[tuple[int, int, str], Fn] = {}
        self.int32: set[Any] = set()  # closures statically typed `int` (32-bit wrap-around)
        self.int_slots: set[int] = set()
        self.paths: dict[Fn, tuple[Fn, tuple[str, ...]]] = {}  # property-read chains, by closure
        self.slot_of: dict[Fn, int] = {}  # closures reading `context` (0) or a local, by closure

    def typed_int(self, fn: Fn) -> Fn:
        """Mark a closure as yielding a C# `int`, so arithmetic on it wraps at 32 bits."""
        self.int32.add(fn)
        return fn

    # --- helpers ----------------------------------------------------------------------------

    def fail(self, node: Node, message: str) -> ExpressionCompileError:
        line, col = self.parsed.position(node)
        return ExpressionCompileError(message, line, col)

    def unsupported(self, node: Node, what: str) -> ExpressionCompileError:
        return self.fail(node, f"unsupported: {what}")

    def text(self, node: Node) -> str:
        return node.text.decode("utf-8") if node.text else ""

    def declare(self, node: Node, name: str) -> int:
        if name.startswith("__"):
            raise self.unsupported(node, f"name '{name}'")
        if name in self.scope.vars:
            raise self.fail(node, f"a local variable named '{name}' is already defined")
        slot = self.nslots
        self.nslots += 1
        self.scope.vars[name] = slot
        return slot

    def push(self) -> None:
        self.scope = _Scope(self.scope)

    def pop(self) -> None:
        assert self.scope.parent is not None
        self.scope = self.scope.parent

    # --- entry --------------------------------------------------------------------------------

    def compile(self) -> Fn:
        if self.parsed.is_block:
            block = self.block(self.parsed.body)

            def run_block(e: list) -> Any:
                if block(e) == RETURN:
                    return e[2]
                raise cs_error("InvalidOperationException", "not all code paths return a value")

            return run_block
        return self.expr(self.parsed.body)

    # --- types --------------------------------------------------------------------------------

    def type_of(self, node: Node) -> tuple[CsType | None, str]:
        """(CsType or None for var/arrays, C# spelling) of a type node; refuses unknown types."""
        t = node.type
        if t == "implicit_type":
            return None, "var"
        if t == "nullable_type":
            inner = node.child_by_field_name("type") or node.named_children[0]
            return self.type_of(inner)
        if t == "array_type":
            inner = node.child_by_field_name("type") or node.named_children[0]
            _elem, name = self.type_of(inner)
            return None, name + "[]"
        if t == "generic_name":
            base = self.text(node.named_children[0])
            for arg in (
                node.named_children[1].named_children if len(node.named_children) > 1 else []
            ):
                self.type_of(arg)
            ct = dotnet.lookup(base)
            if ct is None:
                raise self.unsupported(node, f"type '{base}'")
            return ct, self.text(node).replace(" ", "")
        if t in ("predefined_type", "identifier", "qualified_name"):
            name = self.text(node).replace(" ", "")
            if name == "void":
                return None, "void"
            if name == "dynamic":
                raise self.unsupported(node, "type 'dynamic'")
            ct = dotnet.lookup(name)
            if ct is None:
                raise self.unsupported(node, f"type '{name}'")
            return ct, name
        if t == "tuple_type":
            raise self.unsupported(node, "tuple type")
        raise self.unsupported(node, f"type syntax '{t}'")

    def type_args(self, node: Node) -> str | None:
        """The type argument of a generic method name (`As<JObject>` -> "JObject")."""
        if node.type != "generic_name":
            return None
        args = node.named_children[1].named_children
        for a in args:
            self.type_of(a)
        return ",".join(self.text(a).replace(" ", "") for a in args)

    # --- expressions --------------------------------------------------------------------------

    def expr(self, node: Node) -> Fn:
        hit = self.override.get(node_key(node))
        if hit is not None:
            return hit
        if node.type in CHAIN:
            bottom = misparsed_operand(node)
            if bottom is not None and node_key(bottom) not in self.override:
                return self.reassociate(node, bottom)
        if node.type in CHAIN and has_conditional(node):
            inner = self.chain(node)

            def guarded(e: list) -> Any:
                try:
                    return inner(e)
                except NullShort:
                    return None

            return guarded
        return self.chain(node)

    def reassociate(self, node: Node, bottom: Node) -> Fn:
        """tree-sitter-c-sharp parses `a + b?.c` as `(a + b)?.c`; C# means `a + (b?.c)`.

        Compile the access chain over the operator's last operand, then the operator over that.
        """
        last = bottom.named_children[-1]
        while last.type in LOOSE:
            last = last.named_children[-1]
        self.override[node_key(bottom)] = self.expr(last)
        try:
            chain = self.expr(node)
        finally:
            del self.override[node_key(bottom)]
        self.override[node_key(last)] = chain
        try:
            return self.chain(bottom)
        finally:
            del self.override[node_key(last)]

    def chain(self, node: Node) -> Fn:
        hit = self.override.get(node_key(node))
        if hit is not None:
            return hit
        h = getattr(self, "x_" + node.type, None)
        if h is None:
            kind = node.type.replace("_expression", "")
            raise self.unsupported(node, f"expression '{kind}'")
        return self.handle(h, node)

    def cond(self, node: Node) -> Fn:
        f = self.expr(node)
        if is_boolean(node):
            return f

        def run(e: list) -> bool:
            v = f(e)
            return v if v is True or v is False else truthy(v)

        return run

    def x_parenthesized_expression(self, node: Node) -> Fn:
        return self.expr(node.named_children[0])

    def x_integer_literal(self, node: Node) -> Fn:
        text = self.text(node)
        v = literals.integer(text)
        fn = lambda e: v  # noqa: E731
        if text[-1] not in "lLuU" and -(1 << 31) <= v < 1 << 31:
            self.typed_int(fn)
        return fn

    def x_real_literal(self, node: Node) -> Fn:
        v = literals.real(self.text(node))
        return lambda e: v

    def x_boolean_literal(self, node: Node) -> Fn:
        v = self.text(node) == "true"
        return lambda e: v

    def x_null_literal(self, node: Node) -> Fn:
        return lambda e: None

    def x_character_literal(self, node: Node) -> Fn:
        v = self.literal(node, lambda: literals.char(self.text(node)))
        return lambda e: v

    def x_string_literal(self, node: Node) -> Fn:
        v = self.literal(node, lambda: literals.string(node))
        return lambda e: v

    def x_verbatim_string_literal(self, node: Node) -> Fn:
        v = self.text(node)[2:-1].replace('""', '"')
        return lambda e: v

    def x_raw_string_literal(self, node: Node) -> Fn:
        raise self.unsupported(node, "raw string literal")

    def x_interpolated_string_expression(self, node: Node) -> Fn:
        from .dotnet.numbers import format_value

        verbatim = "@" in self.text(node).split('"', 1)[0]
        parts: list[Fn | str] = []
        for c in node.named_children:
            if c.type == "string_content":
                t = self.text(c).replace("{{", "{").replace("}}", "}")
                parts.append(t.replace('""', '"') if verbatim else t)
            elif c.type == "escape_sequence":
                parts.append(self.literal(c, partial(literals.escape, self.text(c))))
            elif c.type == "interpolation":
                inner = [x for x in c.named_children if x.type != "interpolation_brace"]
                val = self.expr(inner[0])
                fmt = next((x for x in inner[1:] if x.type == "interpolation_format_clause"), None)
                align = next(
                    (x for x in inner[1:] if x.type == "interpolation_alignment_clause"), None
                )
                fmt_s = self.text(fmt)[1:] if fmt is not None else None
                width = self.alignment(align) if align is not None else 0

                def piece(
                    e: list, val: Fn = val, fmt_s: str | None = fmt_s, width: int = width
                ) -> str:
                    v = val(e)
                    s = format_value(v, fmt_s) if fmt_s else cs_str(v)
                    if width:
                        s = s.ljust(-width) if width < 0 else s.rjust(width)
                    return s

                parts.append(piece)
            elif c.type == "interpolation_start":
                continue
            else:
                raise self.unsupported(c, f"interpolated string part '{c.type}'")
        fns = [p if callable(p) else (lambda e, s=p: s) for p in parts]

        def run(e: list) -> str:
            pieces = [f(e) for f in fns]
            check_length(sum(map(len, pieces)))
            return "".join(pieces)

        return run

    def literal(self, node: Node, make: Callable[[], Any]) -> Any:
        """A literal's value; a bad escape or char literal is a compile error at its position."""
        try:
            return make()
        except ValueError as e:
            raise self.fail(
                node, f"syntax error in literal '{self.text(node)[:20]}': {e}"
            ) from None

    def alignment(self, clause: Node) -> int:
        """The literal width of `{value,width}`; at most 10,000 characters either way."""
        text = self.text(clause).lstrip(",").strip()
        if not re.fullmatch(r"-?\d+", text):
            raise self.unsupported(clause, f"alignment '{text}'")
        return max(-10_000, min(10_000, int(text)))

    def x_identifier(self, node: Node) -> Fn:
        name = self.text(node)
        slot = self.scope.find(name)
        if name == "context" and slot is None:
            slot = 0
        if slot is not None:
            getter = itemgetter(slot)
            self.slot_of[getter] = slot
            return self.typed_int(getter) if slot in self.int_slots else getter
        if name.startswith("__"):
            raise self.unsupported(node, f"name '{name}'")
        if dotnet.lookup(name) is not None:
            raise self.fail(node, f"'{name}' is a type, not a value")
        raise self.fail(node, f"the name '{name}' does not exist in the current context")

    def _static_type(self, node: Node) -> CsType | None:
        """The type a receiver names, when it is a (qualified) type name rather than a value."""
        if node.type == "predefined_type":
            return dotnet.lookup(self.text(node))
        dotted = dotted_name(node)
        if dotted is None:
            return None
        root = dotted.split(".")[0]
        if self.scope.find(root) is not None or root == "context":
            return None
        return dotnet.lookup(dotted)

    def _refuse_unknown_type(self, recv: Node) -> None:
        """`XDocument.Parse(...)`: a capitalised name that is neither a local nor a known type."""
        dotted = dotted_name(recv)
        if dotted is None:
            return
        root = dotted.split(".")[0]
        if root == "context" or self.scope.find(root) is not None or self.scope.func(root):
            return
        parts = dotted.split(".")
        if any(dotnet.lookup(".".join(parts[:i])) for i in range(1, len(parts) + 1)):
            return
        if root[:1].isupper() or dotnet.is_namespace(root):
            raise self.unsupported(recv, f"type '{dotted}'")

    def _check_member_name(self, node: Node, name: str) -> None:
        if name.startswith("_") or name in DENIED_MEMBERS:
            raise self.unsupported(node, f"member '{name}'")
        if not known_member(name):
            raise self.unsupported(node, f"member '{name}'")

    def _note_body(self, receiver: Node, name: str) -> None:
        if name != "Body":
            return
        self.metered = True
        text = "".join(self.text(receiver).split())
        if text.endswith("Request") and "Variables" not in text:
            self.uses_request_body = True
        elif text.endswith("Response") and "Variables" not in text:
            self.uses_response_body = True
        elif "Variables" not in text:
            self.uses_request_body = self.uses_response_body = True

    def x_member_access_expression(self, node: Node) -> Fn:
        recv = field_of(node, "expression")
        name_node = field_of(node, "name")
        name = self.text(name_node)
        st = self._static_type(recv)
        if st is not None:
            if name in st.static_props:
                getter = st.static_props[name]
                fn = lambda e: getter()  # noqa: E731
                return self.typed_int(fn) if st.name == "int" else fn
            if name in st.static_methods:
                method_group = st.static_methods[name]
                return lambda e: method_group
            raise self.unsupported(name_node, f"member '{st.name}.{name}'")
        dotted = dotted_name(node)
        if (
            dotted is not None
            and dotted.split(".")[0] not in ("context",)
            and self.scope.find(dotted.split(".")[0]) is None
        ):
            if dotnet.lookup(dotted) is not None:
                raise self.fail(node, f"'{dotted}' is a type, not a value")
            if dotnet.is_namespace(dotted_name(recv) or ""):
                raise self.unsupported(node, f"type '{dotted}'")
        if name_node.type == "generic_name":
            raise self.unsupported(name_node, "generic property")
        self._refuse_unknown_type(recv)
        self._check_member_name(name_node, name)
        self._note_body(recv, name)
        return self.member(self.chain(recv), name)

    def member(self, obj: Fn, name: str) -> Fn:
        """`obj.name`; when `obj` is itself a chain of property reads, one closure reads both."""
        root, names = self.paths.get(obj, (obj, ()))
        names = (*names, name)
        fn = member_fn(self.slot_of.get(root, root), names)
        self.paths[fn] = (root, names)
        return fn

    def x_conditional_access_expression(self, node: Node) -> Fn:
        cond = self.chain(field_of(node, "condition"))
        binding = node.named_children[-1]

        def guard(e: list) -> Any:
            v = cond(e)
            if v is None:
                raise NULL_SHORT
            return v

        if binding.type == "member_binding_expression":
            name_node = field_of(binding, "name")
            name = self.text(name_node)
            self._check_member_name(name_node, name)
            self._note_body(field_of(node, "condition"), name)
            return self.member(guard, name)
        if binding.type == "element_binding_expression":
            idx = self.arguments_positional(binding)
            return indexer_fn(guard, idx)
        raise self.unsupported(binding, f"conditional access '{binding.type}'")

    def arguments_positional(self, arglist: Node) -> list[Fn]:
        out = []
        for a in arglist.named_children:
            if a.type != "argument":
                continue
            if a.child_by_field_name("name") is not None or len(a.named_children) != 1:
                raise self.unsupported(a, "named or ref index argument")
            out.append(self.expr(a.named_children[0]))
        return out

    def x_element_access_expression(self, node: Node) -> Fn:
        obj = self.chain(field_of(node, "expression"))
        idx = self.arguments_positional(field_of(node, "subscript"))
        return indexer_fn(obj, idx)

    def arguments(self, arglist: Node) -> tuple[list[Fn], dict[str, Fn], list[tuple[int, Node]]]:
        """Positional args, named args, and out-argument targets (position, node)."""
        pos: list[Fn] = []
        named: dict[str, Fn] = {}
        outs: list[tuple[int, Node]] = []
        for a in arglist.named_children:
            if a.type != "argument":
                continue
            tokens = [c.type for c in a.children if not c.is_named]
            name_node = a.child_by_field_name("name")
            value = a.named_children[-1]
            if "out" in tokens:
                outs.append((len(pos) + len(outs), value))
                continue
            if "ref" in tokens or "in" in tokens:
                raise self.unsupported(a, "ref argument")
            if name_node is not None:
                named[self.text(name_node)] = self.expr(value)
            else:
                if named:
                    raise self.fail(a, "positional argument after a named one")
                pos.append(self.expr(value))
        return pos, named, outs

    def _out_setters(self, outs: list[tuple[int, Node]]) -> list[Callable[[list, Any], None]]:
        setters: list[Callable[[list, Any], None]] = []
        for _pos, target in outs:
            slot: int | None
            if target.type == "declaration_expression":
                self.type_of(field_of(target, "type"))
                nm = field_of(target, "name")
                slot = self.declare(nm, self.text(nm))
            elif target.type == "identifier":
                slot = self.scope.find(self.text(target))
                if slot is None:
                    raise self.fail(target, f"the name '{self.text(target)}' does not exist")
            elif target.type == "discard" or self.text(target) == "_":
                setters.append(lambda e, v: None)
                continue
            else:
                raise self.unsupported(target, "out target")

            def set_slot(e: list, v: Any, s: int = slot) -> None:
                e[s] = v

            setters.append(set_slot)
        return setters

    def x_invocation_expression(self, node: Node) -> Fn:
        fn_node = field_of(node, "function")
        pos, named, outs = self.arguments(field_of(node, "arguments"))
        setters = self._out_setters(outs)
        call = self._callee(fn_node, pos, named)
        if not setters:
            return call

        def with_outs(e: list) -> Any:
            result = call(e)
            if not isinstance(result, tuple) or len(result) != len(setters) + 1:
                raise cs_error("InvalidOperationException", "method has no out parameters")
            for s, v in zip(setters, result[1:], strict=True):
                s(e, v)
            return result[0]

        return with_outs

    def _callee(self, fn_node: Node, pos: list[Fn], named: dict[str, Fn]) -> Fn:
        if fn_node.type in ("identifier", "generic_name"):
            name = self.text(
                fn_node.named_children[0] if fn_node.type == "generic_name" else fn_node
            )
            if name == "nameof":
                raise self.unsupported(fn_node, "nameof")
            holder = self.scope.func(name)
            self.metered = True  # a local function (it may recurse) or a delegate
            if holder is not None:
                return local_call_fn(holder, pos)
            slot = self.scope.find(name)
            if slot is not None:
                return delegate_call_fn(itemgetter(slot), pos)
            raise self.fail(fn_node, f"the name '{name}' does not exist in the current context")
        if fn_node.type == "member_access_expression":
            recv = field_of(fn_node, "expression")
            name_node = field_of(fn_node, "name")
            type_arg = self.type_args(name_node)
            name = self.text(
                name_node.named_children[0] if name_node.type == "generic_name" else name_node
            )
            self.metered |= name in COSTLY_MEMBERS
            st = self._static_type(recv)
            if st is not None:
                fn = st.static_methods.get(name)
                if fn is None:
                    raise self.unsupported(name_node, f"member '{st.name}.{name}'")
                return static_call_fn(fn, pos, named, type_arg)
            self._refuse_unknown_type(recv)
            self._check_member_name(name_node, name)
            return method_call_fn(self.chain(recv), name, pos, named, type_arg)
        if fn_node.type == "conditional_access_expression":
            binding = fn_node.named_children[-1]
            if binding.type != "member_binding_expression":
                raise self.unsupported(binding, "conditional invocation")
            name_node = field_of(binding, "name")
            type_arg = self.type_args(name_node)
            name = self.text(
                name_node.named_children[0] if name_node.type == "generic_name" else name_node
            )
            self._check_member_name(name_node, name)
            self.metered |= name in COSTLY_MEMBERS
            cond = self.chain(field_of(fn_node, "condition"))

            def guard(e: list) -> Any:
                v = cond(e)
                if v is None:
                    raise NULL_SHORT
                return v

            return method_call_fn(guard, name, pos, named, type_arg)
        target = self.expr(fn_node)
        self.metered = True
        return delegate_call_fn(target, pos)

    def x_cast_expression(self, node: Node) -> Fn:
        tnode = field_of(node, "type")
        vnode = field_of(node, "value")
        ct, _tname = self.type_of(tnode)
        value = self.expr(vnode)
        if ct is None:
            return value
        nullable = tnode.type == "nullable_type"
        cast = ct.cast

        def run(e: list) -> Any:
            v = value(e)
            if v is None and nullable:
                return None
            return cast(v)

        if ct.name in INT_PROMOTED and not nullable:
            self.typed_int(run)
        return run

    def x_as_expression(self, node: Node) -> Fn:
        ct, _ = self.type_of(field_of(node, "right"))
        value = self.expr(field_of(node, "left"))
        check = ct.check if ct is not None else (lambda v: isinstance(v, list))

        def run(e: list) -> Any:
            v = value(e)
            return v if v is not None and check(v) else None

        return run

    def x_is_expression(self, node: Node) -> Fn:
        ct, _ = self.type_of(field_of(node, "right"))
        value = self.expr(field_of(node, "left"))
        check = ct.check if ct is not None else (lambda v: isinstance(v, list))
        return lambda e: (v := value(e)) is not None and check(v)

    def x_is_pattern_expression(self, node: Node) -> Fn:
        value = self.expr(field_of(node, "expression"))
        pat = self.pattern(field_of(node, "pattern"))
        return lambda e: pat(e, value(e))

    def pattern(self, node: Node) -> Pattern:
        t = node.type
        if t == "constant_pattern":
            c = self.expr(node.named_children[0])
            return lambda e, v: equals(v, c(e))
        if t in (
            "declaration_pattern",
            "type_pattern",
            "predefined_type",
            "identifier",
            "qualified_name",
        ):
            tnode = (
                node.child_by_field_name("type")
                if t in ("declaration_pattern", "type_pattern")
                else node
            )
            tnode = tnode or node.named_children[0]
            ct, _ = self.type_of(tnode)
            check = ct.check if ct is not None else (lambda v: True)
            name = node.child_by_field_name("name") if t == "declaration_pattern" else None
            if name is not None and name.type == "identifier":
                slot = self.declare(name, self.text(name))

                def bind(e: list, v: Any) -> bool:
                    if v is not None and check(v):
                        e[slot] = v
                        return True
                    return False

                return bind
            return lambda e, v: v is not None and check(v)
        if t == "negated_pattern":
            inner = self.pattern(node.named_children[0])
            return lambda e, v: not inner(e, v)
        if t == "discard":
            return lambda e, v: True
        if t == "var_pattern":
            nm = node.named_children[0]
            slot = self.declare(nm, self.text(nm))
            return lambda e, v: e.__setitem__(slot, v) or True
        raise self.unsupported(node, f"pattern '{t}'")

    def x_binary_expression(self, node: Node) -> Fn:
        op = self.text(field_of(node, "operator"))
        if op in ("&&", "||"):
            return self.logical(node, op)
        left = self.expr(field_of(node, "left"))
        right = self.expr(field_of(node, "right"))
        if op == "??":

            def coalesce(e: list) -> Any:
                v = left(e)
                return right(e) if v is None else v

            return coalesce
        fn = BINARY.get(op)
        if fn is None:
            raise self.unsupported(node, f"operator '{op}'")
        right_node = field_of(node, "right")
        if op in ("==", "!=") and right_node.type == "null_literal":
            return (lambda e: left(e) is None) if op == "==" else (lambda e: left(e) is not None)
        if op in ("==", "!=") and right_node.type == "string_literal":
            lit = self.literal(right_node, lambda: literals.string(right_node))
            if op == "==":
                return lambda e: a == lit if type(a := left(e)) is str else equals(a, lit)
            return lambda e: a != lit if type(a := left(e)) is str else not equals(a, lit)
        if op == "==":
            return lambda e: (a := left(e)) is (b := right(e)) or equals(a, b)
        if op == "!=":
            return lambda e: not ((a := left(e)) is (b := right(e)) or equals(a, b))
        if left in self.int32 and (right in self.int32 or op in ("<<", ">>")) and op in INT_OPS:
            return self.typed_int(lambda e: wrap32(fn(left(e), right(e))))
        return lambda e: fn(left(e), right(e))

    def logical(self, node: Node, op: str) -> Fn:
        """`a && b && c` / `a || b || c`: the chain flattened, so it takes fewer closure calls."""
        operands = []
        while self._same_operator(node, op):
            operands.append(field_of(node, "right"))
            node = field_of(node, "left")
        conds = [self.cond(n) for n in (node, *reversed(operands))]
        return any_of(conds) if op == "||" else all_of(conds)

    def _same_operator(self, node: Node, op: str) -> bool:
        return (
            node.type == "binary_expression"
            and node_key(node) not in self.override
            and self.text(field_of(node, "operator")) == op
        )

    def x_prefix_unary_expression(self, node: Node) -> Fn:
        op = next(c.type for c in node.children if not c.is_named)
        operand = node.named_children[0]
        if op in ("++", "--"):
            return self.assign(operand, add if op == "++" else sub, lambda e: 1, post=False)
        if op == "!":
            f = self.expr(operand)
            if is_boolean(operand):
                return lambda e: not f(e)
            return lambda e: (v := f(e)) is False or (v is not True and not truthy(v))
        v = self.expr(operand)
        if op == "-":
            if v in self.int32:
                return self.typed_int(lambda e: wrap32(negate(v(e))))
            return lambda e: negate(v(e))
        if op == "+":
            return v
        if op == "~":
            return (
                self.typed_int(lambda e: ~to_int(v(e)))
                if v in self.int32
                else (lambda e: ~to_int(v(e)))
            )
        raise self.unsupported(node, f"operator '{op}'")

    def x_postfix_unary_expression(self, node: Node) -> Fn:
        op = next(c.type for c in node.children if not c.is_named)
        operand = node.named_children[0]
        if op == "!":
            return self.expr(operand)
        if op in ("++", "--"):
            return self.assign(operand, add if op == "++" else sub, lambda e: 1, post=True)
        raise self.unsupported(node, f"operator '{op}'")

    def x_conditional_expression(self, node: Node) -> Fn:
        c = self.cond(field_of(node, "condition"))
        a = self.expr(field_of(node, "consequence"))
        b = self.expr(field_of(node, "alternative"))
        return lambda e: a(e) if c(e) else b(e)

    def x_assignment_expression(self, node: Node) -> Fn:
        op = self.text(field_of(node, "operator"))
        left = field_of(node, "left")
        right = self.expr(field_of(node, "right"))
        if op == "=":
            return self.assign(left, None, right)
        if op == "??=":
            return self.assign(left, lambda a, b: b if a is None else a, right)
        fn = BINARY.get(op[:-1])
        if fn is None:
            raise self.unsupported(node, f"operator '{op}'")
        return self.assign(left, fn, right)

    def assign(self, target: Node, op: Callable | None, value: Fn, post: bool = False) -> Fn:
        """Store into a local, an indexer or a settable property; `op` combines old and new."""
        if target.type == "identifier":
            slot = self.scope.find(self.text(target))
            if slot is None:
                raise self.fail(target, f"cannot assign to '{self.text(target)}'")

            wrap = slot in self.int_slots and op is not None

            def store_local(e: list) -> Any:
                old = e[slot]
                new = value(e) if op is None else op(old, value(e))
                if wrap and type(new) is int:
                    new = wrap32(new)
                e[slot] = new
                return old if post else new

            return store_local
        if target.type == "element_access_expression":
            obj = self.expr(field_of(target, "expression"))
            idx = self.arguments_positional(field_of(target, "subscript"))
            if len(idx) != 1:
                raise self.unsupported(target, "multi-dimensional index")
            key = idx[0]

            def store_index(e: list) -> Any:
                o, k = obj(e), key(e)
                old = get_index(o, k) if op is not None else None
                new = value(e) if op is None else op(old, value(e))
                set_index(o, k, new)
                return old if post else new

            return store_index
        if target.type == "member_access_expression":
            name = self.text(field_of(target, "name"))
            self._check_member_name(target, name)
            obj = self.expr(field_of(target, "expression"))

            def store_member(e: list) -> Any:
                o = obj(e)
                old = resolve_property(type(o), name)(o) if op is not None else None
                new = value(e) if op is None else op(old, value(e))
                set_property(o, name, new)
                return old if post else new

            return store_member
        raise self.unsupported(target, f"assignment to '{target.type}'")

    def x_lambda_expression(self, node: Node) -> Fn:
        self.metered = True  # LINQ calls it once per item
        params = field_of(node, "parameters")
        body = field_of(node, "body")
        self.push()
        try:
            if params.type == "implicit_parameter" or params.type == "identifier":
                names = [params]
            else:
                names = [
                    p.child_by_field_name("name") or p
                    for p in params.named_children
                    if p.type == "parameter"
                ]
            slots = [self.declare(n, self.text(n)) for n in names]
            fn: Fn
            if body.type == "block":
                blk = self.block(body)

                def block_value(e: list) -> Any:
                    e[2] = None
                    blk(e)
                    return e[2]

                fn = block_value
            else:
                fn = self.expr(body)
        finally:
            self.pop()
        if len(slots) == 1:
            s0 = slots[0]

            def make1(e: list) -> Callable:
                def lam(a: Any) -> Any:
                    pulse()
                    e[s0] = a
                    return fn(e)

                return lam

            return make1

        if len(slots) == 2:
            s0, s1 = slots

            def make2(e: list) -> Callable:
                def lam(a: Any, b: Any) -> Any:
                    pulse()
                    e[s0] = a
                    e[s1] = b
                    return fn(e)

                return lam

            return make2

        def make(e: list) -> Callable:
            def lam(*args: Any) -> Any:
                pulse()
                for s, a in zip(slots, args, strict=False):
                    e[s] = a
                return fn(e)

            return lam

        return make

    def x_object_creation_expression(self, node: Node) -> Fn:
        tnode = field_of(node, "type")
        ct, tname = self.type_of(tnode)
        args_node = node.child_by_field_name("arguments")
        pos, named, outs = self.arguments(args_node) if args_node is not None else ([], {}, [])
        if outs:
            raise self.unsupported(node, "out argument in constructor")
        init_node = node.child_by_field_name("initializer")
        if ct is not None and ct.name.endswith("Exception"):
            cs_type = ct.name
            msg = pos[0] if pos else (lambda e: "Exception of type '" + cs_type + "' was thrown.")
            return lambda e: ExceptionObject(cs_type, cs_str(msg(e)))
        if ct is None or ct.new is None:
            raise self.unsupported(tnode, f"'new {tname}'")
        new = ct.new
        make = static_call_fn(new, pos, named, None)
        if init_node is None:
            return make
        return self.apply_initializer(make, init_node)

    def apply_initializer(self, make: Fn, init: Node) -> Fn:
        """Collection (`{a, b}`, `{{k, v}}`) or object (`{ Key = v }`, `{ ["k"] = v }`) init."""
        steps: list[Callable[[list, Any], object]] = []
        for item in init.named_children:
            if item.type == "assignment_expression":
                left = field_of(item, "left")
                val = self.expr(field_of(item, "right"))
                if left.type == "identifier":
                    name = self.text(left)
                    self._check_member_name(left, name)

                    def set_member(e: list, o: Any, n: str = name, v: Fn = val) -> None:
                        set_property(o, n, v(e))

                    steps.append(set_member)
                elif left.type == "element_binding_expression":
                    k = self.arguments_positional(left)[0]

                    def set_item(e: list, o: Any, k: Fn = k, v: Fn = val) -> None:
                        set_index(o, k(e), v(e))

                    steps.append(set_item)
                else:
                    raise self.unsupported(left, "initializer target")
            elif item.type == "initializer_expression":
                fns = [self.expr(x) for x in item.named_children]

                def add_many(e: list, o: Any, fns: list[Fn] = fns) -> object:
                    return resolve_method(type(o), "Add")(o, *[f(e) for f in fns])

                steps.append(add_many)
            else:
                f = self.expr(item)

                def add_one(e: list, o: Any, f: Fn = f) -> object:
                    return resolve_method(type(o), "Add")(o, f(e))

                steps.append(add_one)

        def run(e: list) -> Any:
            o = make(e)
            for s in steps:
                s(e, o)
            return o

        return run

    def initializer(self, node: Node, tname: str) -> Fn:
        """`{ a, b }` as an array initializer in a declaration."""
        fns = [self.expr(x) for x in node.named_children]
        byte_array = tname.replace("System.", "") in ("byte[]", "Byte[]")

        def run(e: list) -> Any:
            items = [f(e) for f in fns]
            return bytearray(to_int(x) & 0xFF for x in items) if byte_array else items

        return run

    def x_array_creation_expression(self, node: Node) -> Fn:
        tnode = field_of(node, "type")
        elem_node = tnode.child_by_field_name("type") or tnode.named_children[0]
        ct, ename = self.type_of(elem_node)
        rank = tnode.child_by_field_name("rank")
        sizes = [self.expr(x) for x in rank.named_children] if rank is not None else []
        init = next((c for c in node.named_children if c.type == "initializer_expression"), None)
        is_bytes = ename.replace("System.", "") in ("byte", "Byte")
        if init is not None:
            return self.initializer(init, ename + "[]")
        if len(sizes) != 1:
            raise self.unsupported(node, "multi-dimensional array")
        size = sizes[0]
        default = ct.default if ct is not None else None

        def run(e: list) -> Any:
            n = to_int(size(e))
            if n < 0:
                raise cs_error("OverflowException", "Arithmetic operation resulted in an overflow.")
            check_items(n)
            return bytearray(n) if is_bytes else [default] * n

        return run

    def x_implicit_array_creation_expression(self, node: Node) -> Fn:
        init = next(c for c in node.named_children if c.type == "initializer_expression")
        return self.initializer(init, "")

    def x_initializer_expression(self, node: Node) -> Fn:
        return self.initializer(node, "")

    def x_default_expression(self, node: Node) -> Fn:
        tnode = node.child_by_field_name("type")
        ct = self.type_of(tnode)[0] if tnode is not None else None
        v = ct.default if ct is not None else None
        return lambda e: v

    def x_checked_expression(self, node: Node) -> Fn:
        return self.expr(node.named_children[0])

    def x_typeof_expression(self, node: Node) -> Fn:
        raise self.unsupported(node, "typeof (reflection)")

    def x_this_expression(self, node: Node) -> Fn:
        raise self.unsupported(node, "'this'")

    def x_anonymous_object_creation_expression(self, node: Node) -> Fn:
        names: list[str] = []
        values: list[Fn] = []
        kids = node.named_children
        i = 0
        while i < len(kids):
            k = kids[i]
            nxt = kids[i + 1] if i + 1 < len(kids) else None
            if (
                k.type == "identifier"
                and nxt is not None
                and k.end_byte < nxt.start_byte
                and b"=" in (self.parsed.wrapped[k.end_byte : nxt.start_byte])
            ):
                names.append(self.text(k))
                values.append(self.expr(nxt))
                i += 2
                continue
            if k.type == "identifier":
                names.append(self.text(k))
            elif k.type == "member_access_expression":
                names.append(self.text(field_of(k, "name")))
            else:
                raise self.unsupported(k, "anonymous type member")
            values.append(self.expr(k))
            i += 1
        for n in names:
            if n.startswith("_"):
                raise self.unsupported(node, f"name '{n}'")
        cls = anonymous_type(tuple(names))
        return lambda e: cls(*[v(e) for v in values])

    def x_throw_expression(self, node: Node) -> Fn:
        val = self.expr(node.named_children[0])

        def run(e: list) -> Any:
            ex = val(e)
            raise cs_error(getattr(ex, "cs_type", "Exception"), getattr(ex, "Message", cs_str(ex)))

        return run

    def x_predefined_type(self, node: Node) -> Fn:
        raise self.fail(node, f"'{self.text(node)}' is a type, not a value")
