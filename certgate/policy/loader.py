"""Policy documents -> policy objects, validated and with every expression compiled.

`parse_document(text, scope, catalog)` is what saving a policy runs: any problem raises
`PolicyValidationError` with APIM's message, and the result lists the references
(`certificates/ID`, `backends/ID`, `namedValues/ID`, `policyFragments/ID`) the store indexes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, overload

from certgate.policy.catalog import Catalog
from certgate.policy.errors import PolicyValidationError
from certgate.policy.reader import Node, read_document
from certgate.policy.refusals import attribute_refusal, policy_refusal
from certgate.policy.registry import SECTIONS, BufferBodies, Policy, policy_class
from certgate.policy.values import Const, Value, compile_value

SCOPES = ("global", "product", "api", "operation")


@dataclass(slots=True)
class PolicyDocument:
    """A parsed document: policies per section (None: section absent) and its references."""

    scope: str
    sections: dict[str, list[Policy] | None]
    references: set[str] = field(default_factory=set)


class Loader:
    """Parsing state handed to element classes: the catalog, references, current section."""

    def __init__(self, scope: str, catalog: Catalog) -> None:
        self.scope = scope
        self.catalog = catalog
        self.references: set[str] = set()
        self.section = ""
        # "request" or "response": what set-header/set-body change at this point.
        self.target = "request"
        self._classes: list[type[Policy]] = []
        self._paths: list[str] = [""]
        self._fragments: list[str] = []
        self._body_flags: list[list[bool]] = []
        # Text of every secret named value substituted so far -> its display name (redaction).
        self.substituted: dict[str, str] = {}

    # -- element content ------------------------------------------------------------------
    def _allowed(self, node: Node, key: str) -> bool:
        cls = self._classes[-1]
        if node.tag != cls.name:
            key = f"{node.tag}/{key}"
        return key in cls.expressions

    def _value(self, node: Node, source: str, is_expr: bool, key: str, where: str) -> Value:
        if not is_expr:
            return Const(source)
        if not self._allowed(node, key):
            raise node.error(f"Expressions are not allowed in {where}.")
        value = compile_value(source, node.tag, node.line, node.column, where)
        flags = self._body_flags[-1]
        flags[0] |= value.uses_request_body
        flags[1] |= value.uses_response_body
        return value

    @overload
    def attr(self, node: Node, name: str, default: str, *, required: bool = False) -> Value: ...
    @overload
    def attr(self, node: Node, name: str, *, required: Literal[True]) -> Value: ...
    @overload
    def attr(
        self, node: Node, name: str, default: None = None, *, required: bool = False
    ) -> Value | None: ...
    def attr(
        self, node: Node, name: str, default: str | None = None, *, required: bool = False
    ) -> Value | None:
        """The attribute as a value (`Const` or compiled expression); None when absent."""
        raw = node.attrib.get(name)
        if raw is None:
            if required:
                raise node.error(f"Required attribute '{name}' is missing.")
            return None if default is None else Const(default)
        return self._value(node, raw, name in node.expr_attrs, name, f"attribute '{name}'")

    def text(self, node: Node, *, strip: bool = True) -> Value:
        """The element's text content as a value."""
        text = node.text.strip() if strip or node.text_is_expr else node.text
        return self._value(node, text, node.text_is_expr, "#text", f"the content of '{node.tag}'")

    @overload
    def literal(self, node: Node, name: str, default: str, *, required: bool = False) -> str: ...
    @overload
    def literal(self, node: Node, name: str, *, required: Literal[True]) -> str: ...
    @overload
    def literal(
        self, node: Node, name: str, default: None = None, *, required: bool = False
    ) -> str | None: ...
    def literal(
        self, node: Node, name: str, default: str | None = None, *, required: bool = False
    ) -> str | None:
        """An attribute that never holds an expression, as a plain string."""
        value = self.attr(node, name, default, required=required)
        if value is None:
            return None
        if not isinstance(value, Const):
            raise node.error(f"Expressions are not allowed in attribute '{name}'.")
        text: str = value.value
        return text

    def const_bool(self, node: Node, name: str, default: bool) -> bool:
        raw = self.literal(node, name)
        if raw is None:
            return default
        if raw.strip().lower() not in ("true", "false"):
            raise node.error(f"Attribute '{name}' must be 'true' or 'false', not '{raw}'.")
        return raw.strip().lower() == "true"

    @overload
    def const_int(self, node: Node, name: str, default: int) -> int: ...
    @overload
    def const_int(self, node: Node, name: str, default: None = None) -> int | None: ...
    def const_int(self, node: Node, name: str, default: int | None = None) -> int | None:
        raw = self.literal(node, name)
        if raw is None:
            return default
        try:
            return int(raw.strip())
        except ValueError:
            raise node.error(f"Attribute '{name}' must be an integer, not '{raw}'.") from None

    def no_children(self, node: Node) -> None:
        if node.children:
            child = node.children[0]
            raise child.error(f"Element '{child.tag}' is not allowed inside '{node.tag}'.")

    def children(self, node: Node, allowed: frozenset[str] | set[str]) -> list[Node]:
        """Configuration children of `node`, each checked against `allowed`."""
        for child in node.children:
            if child.tag not in allowed:
                raise child.error(f"Element '{child.tag}' is not allowed inside '{node.tag}'.")
        return node.children

    def reference(self, node: Node, path: str, missing: str) -> str:
        """The stored id that `path` (`backends/MyBackend`) designates, recorded as a reference
        the store indexes; refuse it when it does not exist."""
        found = self.catalog.resolve(path)
        if found is None:
            raise node.error(missing)
        self.references.add(found)
        return found.rpartition("/")[2]

    @property
    def nested(self) -> bool:
        """Whether the element being parsed sits inside another policy (choose, retry...)."""
        return len(self._paths) > 2

    def add_reference(self, path: str) -> None:
        self.references.add(path)

    # -- policies ---------------------------------------------------------------------------
    def policies(
        self, node: Node, *, target: str | None = None, segment: str | None = None
    ) -> list[Policy]:
        """Parse the children of `node` as policy elements; `segment` (`when[2]`) extends the
        error path of the children for configuration elements such as `when`."""
        saved = self.target
        if target is not None:
            self.target = target
        if segment is not None:
            self._paths.append(f"{self._paths[-1]}\\{segment}")
        try:
            counts: dict[str, int] = {}
            result = []
            for child in node.children:
                counts[child.tag] = counts.get(child.tag, 0) + 1
                result.append(self.policy(child, counts[child.tag]))
            return result
        finally:
            self.target = saved
            if segment is not None:
                self._paths.pop()

    def policy(self, node: Node, index: int = 1) -> Policy:
        cls = policy_class(node.tag)
        if cls is None:
            raise node.error(policy_refusal(node.tag) or f"Unknown policy element '{node.tag}'.")
        if self.section and self.section not in cls.sections:
            raise node.error(f"Policy '{node.tag}' is not allowed in the '{self.section}' section.")
        for name in node.attrib:
            if name != "id" and name not in cls.attributes:
                refusal = attribute_refusal(node.tag, name)
                raise node.error(refusal or f"Attribute '{name}' is not allowed in '{node.tag}'.")
        if "id" in node.expr_attrs:
            raise node.error("Expressions are not allowed in attribute 'id'.")
        parent = self._paths[-1]
        path = f"{parent}\\{node.tag}[{index}]" if parent else f"{node.tag}[{index}]"
        self._classes.append(cls)
        self._paths.append(path)
        self._body_flags.append([False, False])
        try:
            policy = cls.parse(node, self)
        finally:
            self._classes.pop()
            self._paths.pop()
            request_body, response_body = self._body_flags.pop()
        policy.policy_id = node.attrib.get("id")
        policy.path = path
        policy.scope = self.scope
        policy.section = self.section
        if request_body or response_body:
            return BufferBodies(policy, request_body, response_body)
        return policy

    def fragment(self, node: Node, fragment_id: str) -> list[Policy]:
        """The policies of fragment `fragment_id`, parsed in the current section."""
        missing = f"Policy fragment with id '{fragment_id}' could not be found."
        fragment_id = self.reference(node, f"policyFragments/{fragment_id}", missing)
        if fragment_id in self._fragments:
            raise node.error(f"Policy fragment '{fragment_id}' includes itself.")
        text = self.catalog.fragment(fragment_id)
        if text is None:
            raise node.error(missing)
        root = read_document(text, self.named_value)
        if root.tag != "fragment":
            raise root.error("A policy fragment must have the root element 'fragment'.")
        self._fragments.append(fragment_id)
        try:
            return self.policies(root)
        finally:
            self._fragments.pop()

    def named_value(self, display_name: str) -> str | None:
        found = self.catalog.named_value(display_name)
        if found is None:
            return None
        self.references.add(f"namedValues/{found[0]}")
        secret = len(found) < 3 or found[2]
        if found[1] and secret:
            self.substituted[found[1]] = display_name
        return found[1]

    def redact(self, error: PolicyValidationError) -> PolicyValidationError:
        """The error without any secret named value's text, in the reason or the element name.

        A secret of `MIN_REDACTED` characters or more becomes `{{displayName}}` wherever it
        appears. A shorter one cannot be replaced without garbling the text (`1` in `line 1`):
        if it appears, the reason is withheld. Public named values are never touched (their
        values can be read back through the API anyway).
        """
        if not self.substituted:
            return error
        reason, element = error.reason, error.element
        for value, display_name in self.substituted.items():
            if len(value) < MIN_REDACTED and (value in reason or value in (element or "")):
                withheld = (
                    "The message is withheld: it would show the value of the secret named value "
                    f"'{display_name}'."
                )
                return type(error)(withheld, None, error.line, error.column)
        for value, display_name in sorted(self.substituted.items(), key=lambda i: -len(i[0])):
            shown = f"{{{{{display_name}}}}}"
            reason = reason.replace(value, shown)
            element = element.replace(value, shown) if element else element
        source = getattr(error, "source", "")
        if any(value in source for value in self.substituted):
            # The compiler may quote a piece of a substituted value: drop its quotations.
            where, _, detail = reason.partition(": ")
            reason = where + ": " + _QUOTED.sub("'…'", detail)
        return type(error)(reason, element, error.line, error.column)


_QUOTED = re.compile(r"'[^']*'")
MIN_REDACTED = 4  # shorter secret values withhold the message instead (see Loader.redact)


def parse_document(text: str, scope: str, catalog: Catalog) -> PolicyDocument:
    """Validate and compile a `<policies>` document for `scope` (global/product/api/operation)."""
    loader = Loader(scope, catalog)
    try:
        return _parse_document(text, scope, loader)
    except PolicyValidationError as exc:
        raise loader.redact(exc) from None


def _parse_document(text: str, scope: str, loader: Loader) -> PolicyDocument:
    root = read_document(text, loader.named_value)
    if root.tag != "policies":
        raise root.error("The root element of a policy document must be 'policies'.")
    if root.attrib:
        raise root.error(f"Attribute '{next(iter(root.attrib))}' is not allowed in 'policies'.")
    sections: dict[str, list[Policy] | None] = dict.fromkeys(SECTIONS)
    for node in root.children:
        if node.tag not in sections:
            raise node.error(f"Element '{node.tag}' is not allowed inside 'policies'.")
        if sections[node.tag] is not None:
            raise node.error(f"Section '{node.tag}' appears more than once.")
        if node.attrib:
            raise node.error(f"Attribute '{next(iter(node.attrib))}' is not allowed.")
        loader.section = node.tag
        target = "response" if node.tag in ("outbound", "on-error") else "request"
        sections[node.tag] = loader.policies(node, target=target)
    _check_base(sections)
    return PolicyDocument(scope, sections, loader.references)


def parse_fragment(text: str, catalog: Catalog) -> tuple[list[Policy], set[str]]:
    """Validate a `<fragment>` on its own (saving `/policyFragments/{id}`): policies, references.

    A fragment may be included in any section, so section rules are checked where it is included.
    """
    loader = Loader("fragment", catalog)
    try:
        root = read_document(text, loader.named_value)
        if root.tag != "fragment":
            raise root.error("A policy fragment must have the root element 'fragment'.")
        return loader.policies(root), loader.references
    except PolicyValidationError as exc:
        raise loader.redact(exc) from None


def _check_base(sections: dict[str, list[Policy] | None]) -> None:
    for name, policies in sections.items():
        if policies and sum(p.name == "base" for p in policies) > 1:
            raise PolicyValidationError(f"Element 'base' appears more than once in '{name}'.")
