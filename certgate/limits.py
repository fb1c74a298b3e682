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

    # -- inbound protocols (HTTP/1.1 and HTTP/2 server side) ---------------------------------
    max_header_count: int = _limit(
        100, "--max-request-headers", "header fields in one request head or HTTP/2 stream (431)"
    )
    max_pipelined: int = _limit(
        16,
        "--max-pipelined-requests",
        "HTTP/1.1 requests parsed but not yet answered on one connection before reading pauses",
    )
    body_timeout: float = _limit(
        60.0,
        "--client-body-timeout",
        "seconds a request body may make no progress (HTTP/1.1: 408 and close; HTTP/2: reset)",
    )
    h2_max_streams: int = _limit(
        128,
        "--h2-max-concurrent-streams",
        "open streams per HTTP/2 connection (more are refused with REFUSED_STREAM)",
    )
    h2_max_resets: int = _limit(
        100,
        "--h2-max-resets",
        "streams the client resets or opens past the stream limit, per HTTP/2 connection, beyond "
        "which GOAWAY ENHANCE_YOUR_CALM once they outnumber answered streams (rapid reset)",
    )
    h2_max_control_frames: int = _limit(
        100,
        "--h2-max-control-frames",
        "PING and SETTINGS frames per HTTP/2 connection between two answered streams before "
        "GOAWAY ENHANCE_YOUR_CALM",
    )
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
        "seconds a connection may stay open with no request in progress (HTTP/1.1 and HTTP/2)",
    )
    # -- HTTP/1.1 request heads --------------------------------------------------------------
    max_head_bytes: int = _limit(
        64 * 1024, "--max-request-head-bytes", "request line and headers together, in bytes (431)"
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
