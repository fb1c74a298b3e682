"""`send-request` and `send-one-way-request`: calls to other services from a policy.

Children, in APIM's order: `set-url` (required), `set-method` (default GET), `set-header`,
`set-body`, `authentication-certificate` (the certificate the call presents, through the same
identity-isolated pools as the backend leg), `proxy` (the HTTP proxy the call goes through, as the
`proxy` policy's for the backend leg: CONNECT for https, so TLS and the certificate run end to
end). Their expressions see the request being handled
(`context.Request`), not the one being built. `mode="copy"` starts from a copy of the current
request (method, headers, body); `new` from an empty GET.

`send-request` stores the response, an `IResponse` with its body read, in
`context.Variables[response-variable-name]`. A failure (connection, timeout, invalid URL, a body
over `Limits.max_buffered_body_bytes`) raises, so `context.LastError` names `send-request` with
Reason `BackendConnectionFailure` or `Timeout`; with `ignore-error="true"` the variable is null
instead. `send-one-way-request` does not wait: the call runs as a task, at most
`Limits.max_one_way_requests` per process at once; beyond that it is dropped and logged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import NamedTuple

from certgate.certs.material import CertificateMaterial
from certgate.gateway.upstream.proxy import Proxy
from certgate.policy.buffering import buffer_request_body, buffer_response_body
from certgate.policy.context import Context, Headers, Request, Response
from certgate.policy.elements.authentication_certificate import AuthenticationCertificate
from certgate.policy.elements.control import string_of
from certgate.policy.elements.message import SetBody, SetHeader, SetMethod
from certgate.policy.elements.utility import ProxyPolicy
from certgate.policy.errors import BackendError, PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import BufferBodies, Policy, register
from certgate.policy.sidecall import process_state, send, url_problem
from certgate.policy.values import Const, Value, as_int

log = logging.getLogger("certgate.policy")

_CHILDREN = (
    "set-url",
    "set-method",
    "set-header",
    "set-body",
    "authentication-certificate",
    "proxy",
)
# APIM children certgate does not run inside a call: refused with the element's own reason.
_REFUSED_CHILDREN = ("authentication-managed-identity",)
_DEFAULT_TIMEOUT = "60"  # seconds, APIM's documented default


@dataclass(slots=True)
class Call:
    """What both elements share: the request to build (`parse`), and evaluating it (`request`)."""

    copy: bool
    timeout: Value
    url: Value
    steps: tuple[Policy, ...]  # set-method, set-header, set-body (each has `apply`)
    certificate: Policy | None  # authentication-certificate
    proxy: Policy | None

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Call:
        mode = loader.literal(node, "mode", "new")
        if mode not in ("new", "copy"):
            raise node.error(f"Attribute 'mode' must be 'new' or 'copy', not '{mode}'.")
        timeout = loader.attr(node, "timeout", _DEFAULT_TIMEOUT)
        if isinstance(timeout, Const):
            timeout = Const(_seconds(node, timeout.value))
        url = None
        certificate = None
        proxy = None
        steps = []
        for child in loader.children(node, {*_CHILDREN, *_REFUSED_CHILDREN}):
            if child.tag in _REFUSED_CHILDREN:
                _child_policy(child, loader)  # raises the refusal naming the element and why
                raise child.error(f"Element '{child.tag}' is not supported inside '{node.tag}'.")
            if child.tag == "set-url":
                url = _parse_url(child, loader)
            elif child.tag == "authentication-certificate":
                certificate = _child_policy(child, loader)
            elif child.tag == "proxy":
                proxy = _child_policy(child, loader)
            else:
                steps.append(_child_policy(child, loader))
        if url is None:
            raise node.error("Element 'set-url' is required.")
        return cls(mode == "copy", timeout, url, tuple(steps), certificate, proxy)

    async def request(self, context: Context) -> Outgoing:
        """Evaluate everything against `context`: URL, request, timeout, certificate, proxy."""
        if self.copy:
            await buffer_request_body(context)
            source = context.Request
            message = Request("GET", "https", "", 443, "/", Headers(source.Headers.items()))
            message.Headers.remove("Host")  # the call's host is set-url's
            message.Method = source.Method
            message.Body.replace(source.Body.As(preserveContent=True, type_arg="byte[]"))
        else:
            message = Request("GET", "https", "", 443, "/", Headers())
        url = string_of(self.url, context).strip()
        for step in self.steps:
            await _apply(step, context, message)
        timeout = self.timeout.evaluate(context)
        if not isinstance(self.timeout, Const):
            timeout = as_int(timeout)
            if timeout < 1:
                raise PolicyRuntimeError(None, f"Attribute 'timeout' evaluated to {timeout}.")
        certificate = None
        if self.certificate is not None:
            certificate = await _certificate(self.certificate, context)
        proxy = None
        if self.proxy is not None:
            proxy = await _proxy(self.proxy, context)
        return Outgoing(url, message, float(timeout), certificate, proxy)


class Outgoing(NamedTuple):
    """A call evaluated against the request being handled, ready for `sidecall.send`."""

    url: str
    message: Request
    timeout: float
    certificate: CertificateMaterial | None
    proxy: Proxy | None

    async def send(self, context: Context) -> Response:
        return await send(
            context, self.url, self.message, self.timeout, self.certificate, proxy=self.proxy
        )


_CALL_ATTRIBUTES = frozenset({"mode", "timeout"})
_CALL_EXPRESSIONS = frozenset({"timeout", "set-url/#text"})


@register("send-request")
@dataclass(slots=True)
class SendRequest(Policy):
    """Send a request, wait for its response, store it in a variable."""

    call: Call
    variable: str
    ignore_error: bool
    attributes = _CALL_ATTRIBUTES | {"response-variable-name", "ignore-error"}
    expressions = _CALL_EXPRESSIONS

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        return cls(
            Call.parse(node, loader),
            loader.literal(node, "response-variable-name", required=True),
            loader.const_bool(node, "ignore-error", False),
        )

    async def execute(self, context: Context) -> bool | int | None:
        response: Response | None
        try:
            response = await (await self.call.request(context)).send(context)
        except BackendError:
            if not self.ignore_error:
                raise
            response = None
        context.Variables.set(self.variable, response)
        return None


@register("send-one-way-request")
@dataclass(slots=True)
class SendOneWayRequest(Policy):
    """Send a request and go on without waiting; its outcome is only logged."""

    call: Call
    attributes = _CALL_ATTRIBUTES
    expressions = _CALL_EXPRESSIONS

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        return cls(Call.parse(node, loader))

    async def execute(self, context: Context) -> bool | int | None:
        cap = context.forwarder.limits.max_one_way_requests
        in_flight: set[asyncio.Task] = process_state(context, "one-way", set)
        if len(in_flight) >= cap:
            log.warning("send-one-way-request dropped: %d calls already in flight", cap)
            return None
        outgoing = await self.call.request(context)
        task = asyncio.get_running_loop().create_task(_one_way(context, outgoing))
        in_flight.add(task)  # also keeps the task referenced until it ends
        task.add_done_callback(in_flight.discard)
        return None


async def _one_way(context: Context, outgoing: Outgoing) -> None:
    try:
        response = await outgoing.send(context)
    except BackendError as exc:
        log.warning("send-one-way-request failed: %s %s", exc.reason, exc.message)
        return
    url = outgoing.url.partition("?")[0]
    log.debug("send-one-way-request: %s answered %d", url, response.StatusCode)


def _seconds(node: Node, raw: str) -> int:
    try:
        seconds = int(raw.strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise node.error(f"Attribute 'timeout' must be a positive number of seconds, not '{raw}'.")
    return seconds


def _parse_url(child: Node, loader: Loader) -> Value:
    if child.attrib:
        raise child.error("Element 'set-url' takes no attributes.")
    loader.no_children(child)
    url = loader.text(child)
    if isinstance(url, Const):
        problem = url_problem(url.value)
        if problem is not None:
            raise child.error(problem)
    return url


def _child_policy(child: Node, loader: Loader) -> Policy:
    """Parse a configuration child with its element class, whatever section the call is in:
    it changes the request being built, never the one being handled."""
    section, target = loader.section, loader.target
    loader.section, loader.target = "", "request"
    try:
        return loader.policy(child)
    finally:
        loader.section, loader.target = section, target


async def _buffer(step: Policy, context: Context) -> Policy:
    """The element inside a `BufferBodies` wrapper, after reading the bodies it reads."""
    if isinstance(step, BufferBodies):
        if step.request:
            await buffer_request_body(context)
        if step.response:
            await buffer_response_body(context)
        return step.inner
    return step


async def _apply(step: Policy, context: Context, message: Request) -> None:
    element = await _buffer(step, context)
    assert isinstance(element, SetMethod | SetHeader | SetBody)  # what `Call.parse` accepts
    element.apply(context, message)


async def _certificate(step: Policy, context: Context) -> CertificateMaterial:
    element = await _buffer(step, context)
    assert isinstance(element, AuthenticationCertificate)  # what `Call.parse` accepts
    return element.material(context)


async def _proxy(step: Policy, context: Context) -> Proxy:
    element = await _buffer(step, context)
    assert isinstance(element, ProxyPolicy)  # what `Call.parse` accepts
    return element.proxy(context)
