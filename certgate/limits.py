"""Every size, count, time and rate limit of the data plane, in one place.

Each field of `Limits` is one limit: its default is the documented default, and its metadata names
the `certgate serve` flag that changes it and the help text (docs/security.md lists them all). The
limits are process settings, not configuration in the store: `certgate serve` builds one `Limits`
from its flags and hands it to every gateway process, which passes it to the objects that enforce
it. Tests build `Limits(...)` with small values to cross a limit quickly.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _limit(default: Any, flag: str, help: str) -> Any:
    return field(default=default, metadata={"flag": flag, "help": help})


@dataclass(frozen=True, slots=True)
class Limits:
    """The data plane's limits; see the module docstring."""

    # -- connections -------------------------------------------------------------------------
    listen_backlog: int = _limit(
        1024, "--listen-backlog", "pending connections the kernel queues per listening socket"
    )
    handshake_timeout: float = _limit(
        30.0, "--handshake-timeout", "seconds a client may take to complete the TLS handshake"
    )
    idle_timeout: float = _limit(
        120.0,
        "--idle-timeout",
        "seconds an HTTP/1.1 connection may stay open with no request in progress",
    )
    # -- HTTP/1.1 request heads --------------------------------------------------------------
    max_head_bytes: int = _limit(
        64 * 1024, "--max-request-head-bytes", "request line and headers together, in bytes (431)"
    )
    # -- backend leg (upstream) ----------------------------------------------------------------
    max_response_head_bytes: int = _limit(
        64 * 1024,
        "--max-response-head-bytes",
        "backend response status line and headers (and trailers), in bytes (502, closed)",
    )
    max_response_headers: int = _limit(
        100, "--max-response-headers", "header fields in a backend response (502, closed)"
    )
    backend_timeout: float = _limit(
        300.0,
        "--backend-timeout",
        "seconds from forwarding a request (connect, upload) to the response head when "
        "forward-request sets no timeout (APIM's default); also the limit of each body read",
    )
    backend_max_connections: int = _limit(
        256,
        "--backend-max-connections",
        "open connections per backend pool (origin and client certificate) per gateway process; "
        "further requests queue",
    )
    backend_queue_length: int = _limit(
        1024,
        "--backend-queue-length",
        "requests waiting for a connection of a full backend pool (503 beyond it)",
    )
    backend_queue_timeout: float = _limit(
        60.0, "--backend-queue-timeout", "seconds a request waits for a backend connection (503)"
    )
    backend_idle_timeout: float = _limit(
        15.0, "--backend-idle-timeout", "seconds an idle keep-alive backend connection stays open"
    )
    backend_max_idle: int = _limit(
        64, "--backend-max-idle", "idle keep-alive connections kept per backend pool"
    )
    # -- bodies buffered for policies (upstream) -----------------------------------------------
    max_buffered_body_bytes: int = _limit(
        2 * 1024 * 1024,
        "--max-buffered-body-bytes",
        "request or response body a policy may read into memory "
        "(request 413, response 502); APIM's buffered payload size",
    )


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per `Limits` field, typed and defaulted from the field."""
    group = parser.add_argument_group("limits (docs/security.md)")
    for item in dataclasses.fields(Limits):
        group.add_argument(
            item.metadata["flag"],
            dest=f"limit_{item.name}",
            type=type(item.default),
            default=item.default,
            metavar=type(item.default).__name__.upper(),
            help=f"{item.metadata['help']} (default {item.default})",
        )


def limits_from_args(args: argparse.Namespace) -> Limits:
    fields = dataclasses.fields(Limits)
    return Limits(**{item.name: getattr(args, f"limit_{item.name}") for item in fields})


DEFAULT_LIMITS = Limits()
