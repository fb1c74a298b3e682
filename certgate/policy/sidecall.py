"""Requests a policy sends besides the backend leg: send-request, send-one-way-request and
validate-jwt's openid-config fetches.

They go through the process's `Forwarder` (`context.forwarder`), so they share its pools keyed by
identity: a side call presenting certificate A never reuses a connection made with B or none, and
it trusts what the backend leg trusts (`snapshot.backend_trust`). The URL is checked as the
backend leg's is (scheme, authority, no control character or space in the target); headers were
checked by the elements that set them, and the forwarder checks the joined head once more. The
response body is read whole, bounded by `Limits.max_buffered_body_bytes`, and `timeout` bounds
the whole call, body included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from certgate.httpsyntax import host_problem, target_problem
from certgate.policy.context import (
    BackendTarget,
    BodyStream,
    Context,
    Headers,
    Request,
    Response,
)
from certgate.policy.errors import BackendError, BodyTooLarge
from certgate.policy.forwarding import Forwarder, ForwardOptions

if TYPE_CHECKING:
    from certgate.certs.material import CertificateMaterial
    from certgate.gateway.upstream.proxy import Proxy

T = TypeVar("T")
_STATE: WeakKeyDictionary[Forwarder, dict[str, Any]] = WeakKeyDictionary()


def process_state(context: Context, name: str, factory: Callable[[], T]) -> T:
    """State side calls keep per gateway process (one-way calls in flight, openid caches): kept
    with the process's forwarder, so it lives and dies with it."""
    state = _STATE.setdefault(context.forwarder, {})
    value = state.get(name)
    if value is None:
        value = state[name] = factory()
    return value


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a side call's URL (None when it can)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"'{url[:80]}' is not an absolute http(s) URL."
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username is not None or host_problem(netloc):
        return "The URL's authority is not a valid host[:port]."
    rest = url[url.index(parts.netloc) + len(parts.netloc) :]
    if target_problem(rest) or target_problem(netloc):
        return "The URL contains a space or control character."
    return None


async def send(
    context: Context,
    url: str,
    message: Request | None = None,
    timeout: float = 60.0,
    certificate: CertificateMaterial | None = None,
    limit: int | None = None,
    proxy: Proxy | None = None,
) -> Response:
    """Send `message`'s method, headers and body (GET and nothing without one) to `url` through
    `context.forwarder` (and the HTTP `proxy` when given); the response comes back with its body
    read, at most `limit` bytes (default `Limits.max_buffered_body_bytes`). Failures raise
    `BackendError` (`BackendConnectionFailure`, or `Timeout` after `timeout` seconds)."""
    problem = url_problem(url)
    if problem is not None:
        raise BackendError("BackendConnectionFailure", f"Invalid URL: {problem}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    target = path + (f"?{parts.query}" if parts.query else "")
    body: BodyStream | bytes = b""
    method, headers = "GET", Headers()
    if message is not None:
        method, headers, body = message.Method, message.Headers, message.send_body()
    request = Request(method, scheme, parts.hostname or "", port, target, headers, body)
    side = Context(
        request, snapshot=context.snapshot, backend=BackendTarget(f"{scheme}://{netloc}")
    )
    side.backend_path = path
    side.backend_certificate = certificate
    side.web_proxy = proxy
    forwarder = context.forwarder
    if limit is None:
        limit = forwarder.limits.max_buffered_body_bytes
    try:
        async with asyncio.timeout(timeout):
            await forwarder.forward(side, ForwardOptions(timeout=timeout))
            response = side.Response
            data = await response.Body.buffer(
                limit, response.Headers.GetValueOrDefault("Content-Length")
            )
            if len(data) > limit:  # it arrived whole with the head
                raise BodyTooLarge(limit)
    except TimeoutError:
        raise BackendError(
            "Timeout", f"The request to {parts.hostname} did not complete within {timeout:g} s."
        ) from None
    except BodyTooLarge:
        raise BackendError(
            "BackendConnectionFailure",
            f"The response from {parts.hostname} is larger than the {limit} bytes a policy may "
            "read.",
            502,
        ) from None
    return Response(response.StatusCode, response.StatusReason, response.Headers, data)
