"""Cross-domain access for browser plug-ins and script tags: `cross-domain` and `jsonp`.

`cross-domain` (inbound) answers a GET for `crossdomain.xml` with its Adobe cross-domain policy
file (`<cross-domain-policy>` and its children, as written in the document), status 200 and
`Content-Type: text/x-cross-domain-policy`, without calling the backend; every other request
passes on. A request reaches it only when it is routed to an API: an API with an empty path
suffix (or an operation matching `/crossdomain.xml`) serves the file at the host's root, as Flash
and Silverlight clients request it.

`jsonp` (outbound) wraps the response body in a call of the function the request names in its
`callback-parameter-name` query parameter: `cb(<body>);`, `Content-Type:
application/javascript`. Without the parameter the response is left as it is, and so it is when
the name is not a JavaScript identifier path (`a.b_c$`): the response is never a script that the
caller composed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from certgate.policy.context import Context, Headers, Response
from certgate.policy.elements.control import string_of
from certgate.policy.elements.transforms import body_text, replace_body
from certgate.policy.loader import Loader
from certgate.policy.reader import Node, outer_xml
from certgate.policy.registry import Policy, register
from certgate.policy.values import Value

# The Adobe cross-domain policy file's elements and their attributes (the identity element's
# signatory children are checked by Flash Player, not here).
_POLICY_CHILDREN = {
    "site-control": frozenset({"permitted-cross-domain-policies"}),
    "allow-access-from": frozenset({"domain", "to-ports", "secure"}),
    "allow-http-request-headers-from": frozenset({"domain", "headers", "secure"}),
    "allow-access-from-identity": None,
}
_CALLBACK = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*", re.ASCII)
_MAX_CALLBACK = 128


def _check_policy_file(node: Node) -> None:
    for child in node.children:
        if child.tag not in _POLICY_CHILDREN:
            raise child.error(f"Element '{child.tag}' is not allowed inside '{node.tag}'.")
        allowed = _POLICY_CHILDREN[child.tag]
        unknown = [] if allowed is None else [name for name in child.attrib if name not in allowed]
        if unknown:
            raise child.error(f"Attribute '{unknown[0]}' is not allowed in '{child.tag}'.")
        if child.expr_attrs or child.text_is_expr:
            raise child.error("Expressions are not allowed in a cross-domain policy file.")


@register("cross-domain")
@dataclass(slots=True)
class CrossDomain(Policy):
    """Serve the configured `crossdomain.xml`."""

    document: bytes

    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        children = loader.children(node, {"cross-domain-policy"})
        if len(children) != 1 or node.text.strip():
            raise node.error("Element 'cross-domain' needs exactly one 'cross-domain-policy'.")
        _check_policy_file(children[0])
        text = f'<?xml version="1.0"?>\n{outer_xml(children[0])}'
        return cls(text.encode("utf-8"))

    async def execute(self, context: Context) -> bool | int | None:
        request = context.Request
        if request.Method != "GET" or not request.OriginalUrl.Path.endswith("/crossdomain.xml"):
            return None
        headers = Headers([("Content-Type", "text/x-cross-domain-policy")])
        context.Response = Response(200, "OK", headers, self.document)
        return True


@register("jsonp")
@dataclass(slots=True)
class Jsonp(Policy):
    """Wrap the response in the caller's callback when the request names one."""

    parameter: Value

    attributes = frozenset({"callback-parameter-name"})
    expressions = attributes
    sections = frozenset({"outbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls(loader.attr(node, "callback-parameter-name", required=True))

    async def execute(self, context: Context) -> bool | int | None:
        name = string_of(self.parameter, context)
        values = context.Request.OriginalUrl.Query.GetValueOrDefault(name, "") if name else ""
        callback = values.partition(",")[0]
        if len(callback) > _MAX_CALLBACK or not _CALLBACK.fullmatch(callback):
            return None
        text = await body_text(context, True)
        script = f"{callback}({text or ''});"
        replace_body(context, True, script, "application/javascript; charset=utf-8")
        return None
