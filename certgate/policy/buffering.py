"""Reading a whole message body into memory for a policy, bounded by the process's limit.

A policy whose expressions read a body (`context.Request.Body.As<string>(preserveContent: true)`)
or `forward-request buffer-request-body="true"` needs the body in memory; everything else
streams. The bound is `Limits.max_buffered_body_bytes` (default 2 MiB, APIM's documented buffered
payload size), which the process's forwarder carries (`context.forwarder.limits`). A declared
Content-Length above it is refused before a byte is read; a body that turns out longer is refused
as soon as it crosses the limit, without buffering more:

- a request body: 413 (nginx's `client_max_body_size` answer), reason `RequestEntityTooLarge`. The
  rest of the request is never read, so an HTTP/1.1 connection closes after the answer;
- a backend response body: 502, reason `BackendConnectionFailure`, the backend connection closed
  (a response the gateway cannot handle, as nginx answers an upstream head it cannot hold).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from certgate.policy.errors import BackendError, BodyTooLarge, PolicyRuntimeError

if TYPE_CHECKING:
    from certgate.policy.context import Context, Request, Response


async def buffer_request_body(context: Context) -> None:
    await _buffer(context, context.Request, _request_too_large)


async def buffer_response_body(context: Context) -> None:
    await _buffer(context, context.Response, _response_too_large)


async def _buffer(
    context: Context, message: Request | Response, refuse: Callable[[int], Exception]
) -> None:
    limit = context.forwarder.limits.max_buffered_body_bytes
    try:
        await message.Body.buffer(limit, message.Headers.GetValueOrDefault("Content-Length"))
    except BodyTooLarge:
        raise refuse(limit) from None


def _request_too_large(limit: int) -> Exception:
    return PolicyRuntimeError(
        "RequestEntityTooLarge",
        f"The request body is larger than the {limit} bytes a policy may read.",
        status=413,
        public_message="Payload Too Large",
    )


def _response_too_large(limit: int) -> Exception:
    return BackendError(
        "BackendConnectionFailure",
        f"The backend response body is larger than the {limit} bytes a policy may read.",
        502,
    )
