"""Errors of the policy engine: save-time validation, run-time policy failures, backend failures."""

from __future__ import annotations


class PolicyValidationError(ValueError):
    """A document is refused when saved; the message follows APIM's wording.

    `Error in element 'set-backend-service' on line 4, column 4: Backend with id 'X' could not be
    found.` `element` is the target APIM reports (the element name), or None for document errors.
    """

    def __init__(
        self,
        reason: str,
        element: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = reason
        self.element = element
        self.line = line
        self.column = column
        if element is not None and line is not None:
            message = f"Error in element '{element}' on line {line}, column {column}: {reason}"
        elif line is not None:
            message = f"{reason} Line {line}, position {column}."
        else:
            message = reason
        super().__init__(message)


class ExpressionValidationError(PolicyValidationError):
    """An expression in the document does not compile (the Compile conformance level).

    `source` is the expression text (never shown: it may hold a named value).
    """

    source = ""


class PolicyRuntimeError(Exception):
    """A policy failed while handling a request; becomes `context.LastError` (Reason, Message).

    `status` is the status code of APIM's default error response for this failure, and
    `headers` extra response headers (Retry-After of rate limits).
    """

    def __init__(
        self,
        reason: str | None,
        message: str,
        status: int = 500,
        headers: tuple[tuple[str, str], ...] = (),
        public_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.headers = headers
        self.public_message = public_message


class BackendError(Exception):
    """Raised by a forwarder: `reason` is `BackendConnectionFailure` (-> 500) or `Timeout` (-> 504).

    `message` is shown in `context.LastError.Message`; it must not contain secrets. `status`
    overrides the status of the default error response: 502 for a backend response the gateway
    refuses (a head or a buffered body over its limit), 503 when the backend pool's queue is full.
    """

    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status if status is not None else 504 if reason == "Timeout" else 500


class BodyTooLarge(Exception):
    """A policy needed more of a message body than `Limits.max_buffered_body_bytes` allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than the {limit} bytes a policy may buffer")
        self.limit = limit
