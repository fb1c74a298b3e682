"""Prometheus metrics, correct across the gateway worker processes.

`certgate serve` calls `enable_multiprocess(directory)` in the supervisor before it spawns any
worker: every process (spawned workers inherit the environment) then keeps its values in mmap'd
files in that directory, and the supervisor's `/metrics` (`exposition(...)`) sums them with
prometheus_client's `MultiProcessCollector`. Without it (tests, one process) the values live in
the process and `exposition` reads the default registry.

Label cardinality is bounded by configuration: api and operation ids, status classes, reasons and
codes from fixed sets. Nothing is labelled by URL, client address or certificate of a client.

Hot path: `RequestMetrics.observe` appends one tuple per request; once a second they are summed
(the histogram's `_count` is the request counter by api, operation and status class) and added
to the histograms.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
from bisect import bisect_left
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client import multiprocess as _multiprocess

ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATUS_CLASS = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")
_BOUNDS = (*_LATENCY_BUCKETS, math.inf)
_SLOTS = len(_BOUNDS) + 1  # one count per bucket, then the sum
FLUSH_SECONDS = 1.0

REQUEST_SECONDS = Histogram(
    "certgate_request_duration_seconds",
    "Gateway requests: time from the request head to the last response byte; the _count is "
    "the request count by api, operation and status class",
    ("api", "operation", "status_class"),
    buckets=_LATENCY_BUCKETS,
)
BACKEND_SECONDS = Histogram(
    "certgate_backend_duration_seconds",
    "Time from asking for a backend connection to the backend's response head",
    ("api",),
    buckets=_LATENCY_BUCKETS,
)
TLS_HANDSHAKES = Counter(
    "certgate_tls_handshakes_total",
    "Inbound TLS handshakes by outcome (ok, failed, timeout) and protocol version",
    ("outcome", "version"),
)
CLIENT_CERTIFICATES = Counter(
    "certgate_client_certificates_presented_total",
    "Completed inbound handshakes in which the client presented a certificate",
)
CERTIFICATE_VERIFICATIONS = Counter(
    "certgate_client_certificate_verifications_total",
    "Client certificate chain verifications (Verify(), validate-client-certificate) by outcome "
    "and reason",
    ("outcome", "reason"),
)
UPSTREAM_CONNECTIONS = Counter(
    "certgate_upstream_connections_total",
    "Backend connections opened by outcome (ok, failed, timeout)",
    ("outcome",),
)
POOL_WAITS = Counter(
    "certgate_upstream_pool_waits_total",
    "Requests that found a backend pool full, by outcome (served, timeout, queue_full)",
    ("outcome",),
)
CRL_FETCHES = Counter(
    "certgate_crl_fetches_total",
    "CRL downloads from distribution points by outcome (ok, failed, shared: read from the store)",
    ("outcome",),
)
KEY_VAULT_REFRESHES = Counter(
    "certgate_key_vault_refreshes_total",
    "Key vault certificate checks by the lastStatus code they recorded",
    ("code",),
)
CONFIG_REVISION = Gauge(
    "certgate_config_revision",
    "The configuration revision each gateway worker serves",
    ("worker",),
    multiprocess_mode="liveall",
)
ADMIN_AUTH_FAILURES = Counter(
    "certgate_admin_auth_failures_total",
    "Refused admin token attempts (management API, admin UI sign-in) by outcome: invalid (wrong "
    "token, counted against the address) or blocked (429, the address is over its limit)",
    ("outcome",),
)
COMPILE_FAILURES = Counter(
    "certgate_config_compile_failures_total",
    "Configuration revisions a gateway worker could not compile",
)
EMITTED = Counter(
    "certgate_emitted_metric_total",
    "Values added by the emit-metric policy (see emit_metric)",
    ("name", "dimensions"),
)


def enable_multiprocess(directory: Path) -> None:
    """Empties `directory` (values of a previous run) and makes this process and the processes it
    spawns afterwards write their values there. Call before any metric value exists."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()


def exposition(*collectors: Any) -> bytes:
    """The text exposition: every process's values plus `collectors` (computed at scrape time)."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        registry.register(collector)
    if os.environ.get(ENV):
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY) + generate_latest(registry)


def emit_metric(name: str, value: float = 1.0, dimensions: dict[str, str] | None = None) -> None:
    """For an `emit-metric` policy: adds `value` to `certgate_emitted_metric_total{name,
    dimensions}`, `dimensions` rendered as sorted `key=value` pairs joined by commas. The caller
    keeps names and dimension values bounded (configuration-defined, never per request). Each
    call is one multiprocess write (several microseconds): fine per policy run, not per byte."""
    text = ",".join(f"{k}={v}" for k, v in sorted((dimensions or {}).items()))
    EMITTED.labels(name, text).inc(value)


class RequestMetrics:
    """The per-request observations, kept as one small tuple each and summed into the histograms
    once per `FLUSH_SECONDS` (a multiprocess value is an mmap write behind a lock and a getpid()
    call: measured at about ten microseconds per histogram observation). Appending a tuple is the
    least a request can cost (a dict of sums per operation cost more, measured with `bench.pair`);
    the list holds one second of requests at most, and a scrape lags by at most `FLUSH_SECONDS`.
    """

    __slots__ = ("_observed", "_timer")

    def __init__(self) -> None:
        self._observed: list[tuple[Any, Any, int, float, float | None]] = []
        self._timer: asyncio.TimerHandle | None = None

    def observe(self, context: Any, status: int, seconds: float) -> None:
        """One answered request; `context` is None when it matched no API."""
        if context is None:
            self._observed.append((None, None, status, seconds, None))
        else:
            backend = context.backend_seconds if context.backend_status is not None else None
            self._observed.append((context.Api, context.Operation, status, seconds, backend))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        observed, self._observed = self._observed, []
        requests: dict[Any, _Sums] = {}
        backend: dict[str, list[float]] = {}
        for api, operation, status, seconds, backend_seconds in observed:
            sums = requests.get(operation)
            if sums is None:
                sums = requests[operation] = _Sums(api, operation)
            by_class = sums.by_class[status // 100 if status < 600 else 5]
            by_class[bisect_left(_BOUNDS, seconds)] += 1
            by_class[-1] += seconds
            if backend_seconds is not None:
                by_api = backend.get(sums.api)
                if by_api is None:
                    by_api = backend[sums.api] = [0.0] * _SLOTS
                by_api[bisect_left(_BOUNDS, backend_seconds)] += 1
                by_api[-1] += backend_seconds
        for sums in requests.values():
            for cls, by_class in enumerate(sums.by_class):
                if any(by_class[:-1]):
                    _add(
                        REQUEST_SECONDS.labels(sums.api, sums.operation, _STATUS_CLASS[cls]),
                        by_class,
                    )
        for api_id, by_api in backend.items():
            _add(BACKEND_SECONDS.labels(api_id), by_api)


class _Sums:
    """Per-bucket counts and the sum of one operation's requests, per status class."""

    __slots__ = ("api", "by_class", "operation")

    def __init__(self, api: Any, operation: Any) -> None:
        self.api = api.Id if api is not None else ""
        self.operation = operation.Id if operation is not None else ""
        self.by_class = [[0.0] * _SLOTS for _ in _STATUS_CLASS]


def _add(child: Any, sums: list[float]) -> None:
    """Adds summed observations to a histogram child: its buckets are per-bucket counters (the
    cumulative `le` values are computed at scrape time), then its sum."""
    for index, count in enumerate(sums[:-1]):
        if count:
            child._buckets[index].inc(count)
    child._sum.inc(sums[-1])


def count_verification(ok: bool, reason: str) -> None:
    """One client certificate verification (`reason`: a validate-client-certificate reason)."""
    CERTIFICATE_VERIFICATIONS.labels("ok" if ok else "failed", reason or "none").inc()


def count_handshake(outcome: str, version: str, client_certificate: bool) -> None:
    TLS_HANDSHAKES.labels(outcome, version).inc()
    if client_certificate:
        CLIENT_CERTIFICATES.inc()
