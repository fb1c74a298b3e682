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


def _limit(default: Any, flag: str, help: str, *, minimum: float | None = None) -> Any:
    """A limit field. A flag value below `minimum` is refused: by default 1 for counts and sizes
    and 1 ms for times, since 0 would silently mean "never" or "nothing"."""
    if minimum is None:
        minimum = 0.001 if isinstance(default, float) else 1
    return field(default=default, metadata={"flag": flag, "help": help, "minimum": minimum})


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
    # -- CRL downloads from client certificates' distribution points (h11-crl-cpu) -----------
    crl_urls_per_certificate: int = _limit(
        4, "--crl-urls-per-certificate", "CRL distribution point URLs fetched per certificate"
    )
    crl_urls_per_connection: int = _limit(
        8, "--crl-urls-per-connection", "CRL URLs fetched for one client connection's chain"
    )
    crl_fetch_concurrency: int = _limit(
        4, "--crl-fetch-concurrency", "CRL downloads in progress at once per gateway process"
    )
    crl_fetch_timeout: float = _limit(
        5.0, "--crl-fetch-timeout", "seconds one CRL download may take in total, redirects included"
    )
    crl_max_redirects: int = _limit(
        2, "--crl-max-redirects", "same-host redirects followed per CRL download", minimum=0
    )
    crl_max_bytes: int = _limit(20 * 1024 * 1024, "--crl-max-bytes", "bytes of one downloaded CRL")
    crl_failure_backoff: float = _limit(
        30.0, "--crl-failure-backoff", "seconds a failed CRL URL is not tried again"
    )
    # -- policy expressions (h11-crl-cpu) ----------------------------------------------------
    expression_time_budget: float = _limit(
        1.0,
        "--expression-time-budget",
        "seconds one request's looping or data-heavy policy expressions may run (500)",
    )
    expression_loop_iterations: int = _limit(
        100_000, "--expression-loop-iterations", "loop iterations of one expression evaluation"
    )
    expression_max_string_chars: int = _limit(
        4 * 1024 * 1024, "--expression-max-string-chars", "length of a string an expression builds"
    )
    expression_max_items: int = _limit(
        1_000_000, "--expression-max-items", "items of a collection an expression builds"
    )
    expression_json_max_chars: int = _limit(
        4 * 1024 * 1024, "--expression-json-max-chars", "length of JSON text an expression parses"
    )
    expression_regex_timeout: float = _limit(
        0.5, "--expression-regex-timeout", "seconds one regular expression operation may run"
    )
    expression_json_max_depth: int = _limit(
        64, "--expression-json-max-depth", "nesting of parsed JSON (Json.NET's MaxDepth)"
    )
    # -- management API input (issue 12) ----------------------------------------------------
    management_max_body_bytes: int = _limit(
        4 * 1024 * 1024,
        "--management-max-body-bytes",
        "management API request body, in bytes (413)",
    )
    management_max_json_depth: int = _limit(
        64,
        "--management-max-json-depth",
        "nesting of arrays and objects in a management request body (400)",
    )
    management_max_filter_depth: int = _limit(
        32,
        "--management-max-filter-depth",
        "nesting of 'not' and parentheses in a management $filter (400)",
    )
    # -- client-certificate verification (certgate/certs/verify.py) ---------------------------
    max_client_chain_intermediates: int = _limit(
        10,
        "--max-client-chain-intermediates",
        "CA certificates between a client certificate and its trust anchor (Verify() false)",
    )
    verification_cache_entries: int = _limit(
        4096,
        "--verification-cache-entries",
        "client-certificate verdicts each process keeps across connections (oldest dropped)",
    )
    verification_success_ttl: float = _limit(
        300.0, "--verification-success-ttl", "seconds a successful verdict is reused"
    )
    verification_failure_ttl: float = _limit(
        60.0, "--verification-failure-ttl", "seconds a failed verdict is reused"
    )
    max_crl_signer_nesting: int = _limit(
        2,
        "--max-crl-signer-nesting",
        "levels of CRL signers other than the issuer whose own paths are validated",
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
        minimum=0,
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
    # -- routing and headers (paths, policy-written heads, identity headers) -----------------
    strip_request_headers: str = _limit(
        "x-arr-clientcert,x-forwarded-client-cert,x-ssl-client-*,x-client-cert*,forwarded,"
        "x-real-ip",
        "--strip-request-headers",
        "client-sent identity headers removed before policies run: comma-separated names, "
        "'name*' for a prefix, '' for none (Client-Cert and Client-Cert-Chain always go)",
    )
    # -- caches and throttling counters (h18-cache) ---------------------------------------------
    cache_max_entries: int = _limit(
        10_000, "--cache-max-entries", "entries of the internal cache per gateway process (LRU)"
    )
    cache_max_bytes: int = _limit(
        64 * 1024 * 1024,
        "--cache-max-bytes",
        "bytes of values and responses in the internal cache per gateway process (LRU)",
    )
    counter_max_keys: int = _limit(
        100_000,
        "--counter-max-keys",
        "rate-limit and quota counters kept per gateway process (least recently used dropped)",
    )
    redis_connect_timeout: float = _limit(
        1.0, "--redis-connect-timeout", "seconds to connect to the external cache (Redis)"
    )
    redis_command_timeout: float = _limit(
        0.5, "--redis-command-timeout", "seconds one external cache (Redis) command may take"
    )
    redis_retry_interval: float = _limit(
        5.0,
        "--redis-retry-interval",
        "seconds the external cache is not tried after it failed (lookups miss, counters local)",
    )
    redis_url: str = field(
        default="",
        repr=False,  # may hold a password
        metadata={
            "flag": "--redis-url",
            "help": "external cache and shared counters: redis://[:password@]host:port/db "
            "(rediss:// for TLS); '' for none",
            "minimum": 1,
        },
    )


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per `Limits` field, typed and defaulted from the field."""
    group = parser.add_argument_group("limits (docs/security.md)")
    for item in dataclasses.fields(Limits):
        group.add_argument(
            item.metadata["flag"],
            dest=f"limit_{item.name}",
            type=_checked(type(item.default), item.metadata["minimum"]),
            default=item.default,
            metavar=type(item.default).__name__.upper(),
            help=f"{item.metadata['help']} (default {item.default})",
        )


def _checked(kind: type, minimum: float) -> Any:
    if kind is str:
        return kind

    def convert(text: str) -> Any:
        value = kind(text)
        if not value >= minimum:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its own error messages
    return convert


def limits_from_args(args: argparse.Namespace) -> Limits:
    fields = dataclasses.fields(Limits)
    return Limits(**{item.name: getattr(args, f"limit_{item.name}") for item in fields})


DEFAULT_LIMITS = Limits()
