"""`xsl-transform`: an XSLT 1.0 stylesheet applied to the request body (inbound) or the response
body (outbound), with `parameter` children passed as the stylesheet's `xsl:param` values.

The stylesheet is compiled once, when the document is saved, by libxslt (lxml) with every access
denied (`XSLTAccessControl.DENY_ALL`: `document()`, `xsl:include`/`xsl:import` and `exsl:document`
can read or write no file and reach no network), without lxml's regular-expression extension and
with no other extension than EXSLT's. Bodies are parsed without DTD, entities or network (a body
with a DOCTYPE is refused). A transformation runs on `--xslt-threads` threads of its own, never
on the event loop; a request waits `--xslt-timeout` for it, its template calls nest at most
`--xslt-max-depth` deep and its output is at most `--max-buffered-body-bytes`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lxml import etree

from certgate.policy.context import Context
from certgate.policy.elements.control import string_of
from certgate.policy.elements.transforms import body_text
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node, outer_xml
from certgate.policy.registry import Policy, register
from certgate.policy.values import Value

_LIMIT = "XsltTransformLimit"
_executors: dict[int, ThreadPoolExecutor] = {}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _compile(node: Node) -> etree.XSLT:
    try:
        document = etree.fromstring(outer_xml(node).encode("utf-8"), _parser())
        return etree.XSLT(document, access_control=etree.XSLTAccessControl.DENY_ALL, regexp=False)
    except (etree.XMLSyntaxError, etree.XSLTParseError) as error:
        raise node.error(f"The stylesheet is not valid XSLT 1.0: {error}") from None


def _executor(threads: int) -> ThreadPoolExecutor:
    found = _executors.get(threads)
    if found is None:
        found = _executors[threads] = ThreadPoolExecutor(threads, thread_name_prefix="xslt")
    return found


def _transform(stylesheet: etree.XSLT, body: bytes, params: dict[str, str], depth: int) -> bytes:
    """Runs on an XSLT thread: parse the body, transform it, serialize the result."""
    try:
        document = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as error:
        raise PolicyRuntimeError(None, f"The body is not XML: {error}") from None
    if document.getroottree().docinfo.doctype:
        raise PolicyRuntimeError(None, "The body is not transformed: it has a DOCTYPE declaration.")
    etree.XSLT.set_global_max_depth(depth)
    try:
        result = stylesheet(document, **{k: etree.XSLT.strparam(v) for k, v in params.items()})
    except etree.XSLTApplyError as error:
        raise PolicyRuntimeError(None, f"The XSL transformation failed: {_cause(error)}") from None
    return bytes(result)


def _cause(error: etree.XSLTApplyError) -> str:
    """libxslt's first telling message (the exception's own text is often 'unknown error')."""
    for entry in error.error_log:
        message = entry.message.partition("\n")[0]
        if message != "unknown error" and not message.startswith("runtime error"):
            return message
    return str(error)


@register("xsl-transform")
@dataclass(slots=True)
class XslTransform(Policy):
    """Replace the body with the stylesheet's output (`parameter name="..."` values: expressions
    allowed, evaluated per request before the transformation starts)."""

    stylesheet: etree.XSLT
    parameters: tuple[tuple[str, Value], ...]
    response: bool

    sections = frozenset({"inbound", "outbound"})
    expressions = frozenset({"parameter/#text"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        parameters = []
        stylesheets = []
        for child in node.children:
            if child.tag != "parameter":
                stylesheets.append(child)
                continue
            for name in child.attrib:
                if name != "name":
                    raise child.error(f"Attribute '{name}' is not allowed in 'parameter'.")
            loader.no_children(child)
            name = loader.literal(child, "name", required=True)
            parameters.append((name, loader.text(child)))
        if len(stylesheets) != 1:
            raise node.error("Element 'xsl-transform' needs exactly one 'xsl:stylesheet'.")
        return cls(_compile(stylesheets[0]), tuple(parameters), loader.target == "response")

    async def execute(self, context: Context) -> bool | int | None:
        params = {name: string_of(value, context) for name, value in self.parameters}
        text = await body_text(context, self.response)
        if text is None or not text.strip():
            return None
        limits = context.forwarder.limits
        future = _executor(limits.xslt_threads).submit(
            _transform, self.stylesheet, text.encode("utf-8"), params, limits.xslt_max_depth
        )
        try:
            output = await asyncio.wait_for(asyncio.wrap_future(future), limits.xslt_timeout)
        except TimeoutError:
            raise PolicyRuntimeError(
                _LIMIT, f"The XSL transformation took longer than {limits.xslt_timeout} s."
            ) from None
        if len(output) > limits.max_buffered_body_bytes:
            raise PolicyRuntimeError(
                _LIMIT,
                f"The XSL transformation wrote more than {limits.max_buffered_body_bytes} bytes.",
            )
        message = context.Response if self.response else context.Request
        message.Body.replace(output)
        message.Headers.remove("Content-Length")
        return None
