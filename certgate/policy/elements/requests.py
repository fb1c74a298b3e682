"""`send-request` and `send-one-way-request`: calls to other services from a policy.

Children, in APIM's order: `set-url` (required), `set-method` (default GET), `set-header`,
`set-body`, `authentication-certificate` (the certificate the call presents, through the same
identity-isolated pools as the backend leg). Their expressions see the request being handled
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
from typing import Any

from certgate.policy.buffering import buffer_request_body, buffer_response_body
from certgate.policy.context import Headers, Request
from certgate.policy.elements.authentication_certificate import AuthenticationCertificate
from certgate.policy.elements.control import string_of
from certgate.policy.errors import BackendError, PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import BufferBodies, Policy, register
from certgate.policy.sidecall import process_state, send, url_problem
from certgate.policy.values import Const, as_int

log = logging.getLogger("certgate.policy")

_CHILDREN = ("set-url", "set-method", "set-header", "set-body", "authentication-certificate")
# APIM children certgate does not run inside a call: refused with the element's own reason.
_REFUSED_CHILDREN = ("authentication-managed-identity", "proxy")
_DEFAULT_TIMEOUT = "60"  # seconds, APIM's documented default


class _Call(Policy):
    """What both elements share: the request to build, and sending it."""

    __slots__ = ("certificate", "copy", "steps", "timeout", "url")
    attributes = frozenset({"mode", "timeout"})
    expressions = frozenset({"timeout", "set-url/#text"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = cls()
        mode = loader.literal(node, "mode", "new")
        if mode not in ("new", "copy"):
            raise node.error(f"Attribute 'mode' must be 'new' or 'copy', not '{mode}'.")
        self.copy = mode == "copy"
        self.timeout = loader.attr(node, "timeout", _DEFAULT_TIMEOUT)
        if isinstance(self.timeout, Const):
            self.timeout = Const(_seconds(node, self.timeout.value))
        self.url = None
        self.certificate = None
        steps = []
        for child in loader.children(node, {*_CHILDREN, *_REFUSED_CHILDREN}):
            if child.tag in _REFUSED_CHILDREN:
                _child_policy(child, loader)  # raises the refusal naming the element and why
                raise child.error(f"Element '{child.tag}' is not supported inside '{node.tag}'.")
            if child.tag == "set-url":
                self.url = _parse_url(child, loader)
            elif child.tag == "authentication-certificate":
                self.certificate = _child_policy(child, loader)
            else:
                steps.append(_child_policy(child, loader))
        if self.url is None:
            raise node.error("Element 'set-url' is required.")
        self.steps = tuple(steps)
        return self

    async def request(self, context: Any) -> tuple[str, Request, float, Any]:
        """Evaluate everything against `context`: URL, request, timeout, certificate."""
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
        return url, message, float(timeout), certificate


@register("send-request")
class SendRequest(_Call):
    """Send a request, wait for its response, store it in a variable."""

    __slots__ = ("ignore_error", "variable")
    attributes = _Call.attributes | {"response-variable-name", "ignore-error"}

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        self = super().parse(node, loader)
        self.variable = loader.literal(node, "response-variable-name", required=True)
        self.ignore_error = loader.const_bool(node, "ignore-error", False)
        return self

    async def execute(self, context: Any) -> bool | None:
        try:
            url, message, timeout, certificate = await self.request(context)
            response = await send(context, url, message, timeout, certificate)
        except BackendError:
            if not self.ignore_error:
                raise
            response = None
        context.Variables.set(self.variable, response)
        return None


@register("send-one-way-request")
class SendOneWayRequest(_Call):
    """Send a request and go on without waiting; its outcome is only logged."""

    __slots__ = ()

    async def execute(self, context: Any) -> bool | None:
        cap = context.forwarder.limits.max_one_way_requests
        in_flight: set[asyncio.Task] = process_state(context, "one-way", set)
        if len(in_flight) >= cap:
            log.warning("send-one-way-request dropped: %d calls already in flight", cap)
            return None
        url, message, timeout, certificate = await self.request(context)
        task = asyncio.get_running_loop().create_task(
            _one_way(context, url, message, timeout, certificate)
        )
        in_flight.add(task)  # also keeps the task referenced until it ends
        task.add_done_callback(in_flight.discard)
        return None


async def _one_way(context: Any, url: str, message: Request, timeout: float, cert: Any) -> None:
    try:
        response = await send(context, url, message, timeout, cert)
    except BackendError as exc:
        log.warning("send-one-way-request failed: %s %s", exc.reason, exc.message)
        return
    log.debug("send-one-way-request: %s answered %d", url.partition("?")[0], response.StatusCode)


def _seconds(node: Node, raw: str) -> int:
    try:
        seconds = int(raw.strip())
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise node.error(f"Attribute 'timeout' must be a positive number of seconds, not '{raw}'.")
    return seconds


def _parse_url(child: Node, loader: Loader) -> Any:
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


async def _buffer(step: Policy, context: Any) -> Policy:
    """The element inside a `BufferBodies` wrapper, after reading the bodies it reads."""
    if isinstance(step, BufferBodies):
        if step.request:
            await buffer_request_body(context)
        if step.response:
            await buffer_response_body(context)
        return step.inner
    return step


async def _apply(step: Policy, context: Any, message: Request) -> None:
    step = await _buffer(step, context)
    step.apply(context, message)  # set-method, set-header, set-body


async def _certificate(step: Policy, context: Any) -> Any:
    element: AuthenticationCertificate = await _buffer(step, context)  # type: ignore[assignment]
    return element.material(context)
