"""The interface between `forward-request` and whatever sends the request to the backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from certgate.limits import Limits


@dataclass(frozen=True, slots=True)
class ForwardOptions:
    """The `forward-request` attributes, evaluated: timeout in seconds (None: the gateway's
    `--backend-timeout`, whose default is APIM's 300 s)."""

    timeout: float | None = None
    follow_redirects: bool = False
    buffer_request_body: bool = False
    buffer_response: bool = True
    fail_on_error_status_code: bool = False
    http_version: str = "1"


DEFAULT_OPTIONS = ForwardOptions()


class Forwarder(Protocol):
    limits: Limits  # the process's limits; policies read `max_buffered_body_bytes`

    async def forward(self, context: Any, options: ForwardOptions) -> None:
        """Send `context.Request` to `context.backend_url()` (or `context.backend.backend_id`'s
        URL) and set `context.Response` (status, headers, streaming body).

        Raise `BackendError("BackendConnectionFailure" | "Timeout", message)` on failure.
        """
        ...
