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
import math
from dataclasses import dataclass, field
from typing import Any

SECONDS_MINIMUM = 0.001
"""The smallest time a flag accepts (1 ms): 0 would silently mean "never" or "nothing"."""


def minimum_problem(value: float, minimum: float) -> str | None:
    """Why a flag's `value` is refused (None when it is not): below `minimum`, or no finite
    number. Floats are seconds. The one check of `Limits` flags and of `serve`'s own timings."""
    if math.isfinite(value) and value >= minimum:
        return None
    if isinstance(minimum, float):
        return f"must be > 0 seconds (finite, at least {minimum:g}), got {value}"
    return f"must be at least {minimum}, got {value}"


def _limit(default: Any, flag: str, help: str, *, minimum: float | None = None) -> Any:
    """A limit field. A flag value below `minimum` is refused: by default 1 for counts and sizes
    and `SECONDS_MINIMUM` for times, since 0 would silently mean "never" or "nothing"."""
    if minimum is None:
        minimum = SECONDS_MINIMUM if isinstance(default, float) else 1
    return field(default=default, metadata={"flag": flag, "help": help, "minimum": minimum})


@dataclass(frozen=True, slots=True)
class Limits:
    """The data plane's limits; see the module docstring."""

    # -- inbound protocols (HTTP/1.1 and HTTP/2 server side) ---------------------------------
    route_cache_bytes: int = _limit(
        1024 * 1024,
        "--route-cache-bytes",
        "request paths whose routing result each configuration keeps, in bytes of path; past "
        "it the cache starts over (0: no cache)",
        minimum=0,
    )
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
    lingering_time: float = _limit(
        30.0,
        "--lingering-time",
        "seconds at most the gateway keeps reading and discarding what a client still sends "
        "after an HTTP/1.1 response that ends the connection with the request unread "
        "(nginx lingering_time)",
    )
    lingering_timeout: float = _limit(
        5.0,
        "--lingering-timeout",
        "seconds of client silence that end such a lingering close early (nginx lingering_timeout)",
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
    # -- CRLs shared by all workers and nodes through the store (h14-crl) --------------------
    crl_shared_entries: int = _limit(
        256, "--crl-shared-entries", "downloaded CRLs kept in the store for all nodes (oldest go)"
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
    # -- failed admin token attempts (management API bearer, admin UI sign-in) ---------------
    admin_auth_failures: int = _limit(
        10,
        "--admin-auth-failures",
        "wrong admin tokens one client address may present per --admin-auth-window before it "
        "gets 429, even with the right token, until the window ends (per node)",
    )
    admin_auth_window: float = _limit(
        60.0,
        "--admin-auth-window",
        "seconds from an address's first wrong admin token in which --admin-auth-failures count",
    )
    admin_auth_tracked: int = _limit(
        10_000,
        "--admin-auth-tracked",
        "client addresses whose wrong admin tokens are counted at once (oldest window dropped)",
    )
    # -- admin UI sessions (certgate/ui, issue 15) -------------------------------------------
    ui_session_seconds: float = _limit(
        8 * 3600.0,
        "--ui-session-seconds",
        "seconds an admin UI sign-in lasts before the token must be entered again",
    )
    ui_max_sessions: int = _limit(
        64,
        "--ui-max-sessions",
        "admin UI sessions kept at once (a new sign-in ends the oldest)",
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
    # -- policy side calls: send-request, send-one-way-request, validate-jwt (h18-calls) -----
    max_one_way_requests: int = _limit(
        64,
        "--max-one-way-requests",
        "send-one-way-request calls in flight per gateway process (further ones are dropped, "
        "logged)",
    )
    openid_config_ttl: float = _limit(
        3600.0,
        "--openid-config-ttl",
        "seconds an openid-config document and its signing keys are reused before a refetch",
    )
    openid_refresh_interval: float = _limit(
        300.0,
        "--openid-refresh-interval",
        "seconds at least between refetches of an openid-config for a token with an unknown key id",
    )
    openid_documents: int = _limit(
        64, "--openid-documents", "openid-config documents each process caches (oldest dropped)"
    )
    openid_timeout: float = _limit(
        10.0, "--openid-timeout", "seconds one openid-config or JWKS fetch may take (401)"
    )
    max_openid_bytes: int = _limit(
        1024 * 1024, "--max-openid-bytes", "bytes of one openid-config document or key set (401)"
    )
    azure_ad_authority: str = _limit(
        "https://login.microsoftonline.com",
        "--azure-ad-authority",
        "Microsoft Entra authority validate-azure-ad-token reads {authority}/{tenant}/v2.0/"
        ".well-known/openid-configuration from (sovereign clouds, tests)",
    )
    # -- body transformation policies (h18-transforms) ----------------------------------------
    transform_max_depth: int = _limit(
        64,
        "--transform-max-depth",
        "nesting of a body xml-to-json / json-to-xml converts (Json.NET's MaxDepth)",
    )
    liquid_max_output_chars: int = _limit(
        2 * 1024 * 1024,
        "--liquid-max-output-chars",
        "characters a set-body Liquid template may render, and hold in assign/capture variables",
    )
    liquid_loop_iterations: int = _limit(
        100_000,
        "--liquid-loop-iterations",
        "for-loop iterations of one set-body Liquid template rendering",
    )
    liquid_render_timeout: float = _limit(
        1.0,
        "--liquid-render-timeout",
        "seconds one set-body Liquid rendering may take (checked at every filter call)",
    )
    xslt_max_depth: int = _limit(
        1000,
        "--xslt-max-depth",
        "nested template calls of one xsl-transform (libxslt's maxdepth)",
    )
    xslt_timeout: float = _limit(
        2.0,
        "--xslt-timeout",
        "seconds a request waits for its xsl-transform (which runs on the XSLT threads)",
    )
    xslt_threads: int = _limit(
        2,
        "--xslt-threads",
        "threads per gateway process running xsl-transform, off the event loop",
    )
    emit_metric_max_series: int = _limit(
        1000,
        "--emit-metric-max-series",
        "distinct emit-metric (name, dimensions) series a gateway process reports",
    )
    # -- routing and headers (paths, policy-written heads, identity headers) -----------------
    strip_request_headers: str = _limit(
        "x-arr-clientcert,x-forwarded-client-cert,x-ssl-client-*,x-client-cert*,forwarded,"
        "x-real-ip",
        "--strip-request-headers",
        "client-sent identity headers removed before policies run: comma-separated names, "
        "'name*' for a prefix, '' for none (Client-Cert and Client-Cert-Chain always go)",
    )
    # -- API definition import and export (issue 16) ----------------------------------------
    api_import_link_timeout: float = _limit(
        10.0,
        "--api-import-link-timeout",
        "seconds a '-link' API import may take to download the definition (400)",
    )
    api_import_max_operations: int = _limit(
        1000,
        "--api-import-max-operations",
        "operations one imported API definition may create (400)",
    )
    api_export_link_seconds: int = _limit(
        300,
        "--api-export-link-seconds",
        "seconds an exported definition's link stays valid (then 404)",
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
        problem = minimum_problem(value, minimum)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its own error messages
    return convert


def limits_from_args(args: argparse.Namespace) -> Limits:
    fields = dataclasses.fields(Limits)
    return Limits(**{item.name: getattr(args, f"limit_{item.name}") for item in fields})


DEFAULT_LIMITS = Limits()
