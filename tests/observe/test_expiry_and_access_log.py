"""Sans-I/O parts of observability: the expiry warning schedule and the access log's line bound."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from certgate.observe.accesslog import LINE_MAX, AccessLog
from certgate.observe.expiry import ExpiryWarnings
from certgate.observe.inventory import InUse

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def _uses(days: float) -> list[InUse]:
    not_after = NOW + dt.timedelta(days=days)
    return [
        InUse("certificate", "c1", "AB12", "keyVault", not_after, "CN=api"),
        InUse("hostname", "api.example", "AB12", "keyVault", not_after, "CN=api"),
    ]


def test_ten_days_left_gives_the_14_day_warning_once_a_day_across_restarts(tmp_path: Path):
    state = tmp_path / "expiry-warnings.json"
    warnings = ExpiryWarnings(state)
    first = warnings.check(_uses(10), NOW)
    assert first == [
        "certificate CN=api (thumbprint AB12) expires in 10 days at 2026-12-16T12:00:00Z "
        "(14-day warning); used as: certificate c1 (keyVault), hostname api.example (keyVault)"
    ]
    assert warnings.check(_uses(10), NOW + dt.timedelta(hours=23)) == []
    assert ExpiryWarnings(state).check(_uses(10), NOW + dt.timedelta(hours=23)) == []  # restart
    again = ExpiryWarnings(state).check(_uses(10), NOW + dt.timedelta(hours=24))
    assert len(again) == 1 and "(14-day warning)" in again[0]


@pytest.mark.parametrize(
    ("days", "tier"), [(31, None), (30, 30), (15, 30), (14, 14), (8, 14), (7, 7), (-1, 7)]
)
def test_the_warning_names_the_nearest_threshold(days: float, tier: int | None) -> None:
    found = ExpiryWarnings().check(_uses(days), NOW)
    if tier is None:
        assert found == []
    else:
        assert len(found) == 1 and f"({tier}-day warning)" in found[0]
        assert ("expired at" in found[0]) == (days < 0)


def test_an_unreadable_state_file_starts_afresh(tmp_path: Path) -> None:
    state = tmp_path / "expiry-warnings.json"
    state.write_text("{not json")
    assert len(ExpiryWarnings(state).check(_uses(3), NOW)) == 1
    assert json.loads(state.read_text()) == {"AB12/7": NOW.isoformat()}


async def test_access_log_writes_whole_lines_in_pipe_buf_chunks_to_a_pipe() -> None:
    """Several workers write to one pipe (`--access-log -` under a service manager): each write
    holds whole lines and at most PIPE_BUF bytes, so the kernel never interleaves them."""
    read_end, write_end = os.pipe()
    try:
        log = AccessLog(write_end, close=False)
        lines = [b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * 1000) for n in range(10)]
        for entry in lines:
            log.write(entry)
        log.flush()
        received = os.read(read_end, 65536)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert received == b"".join(lines)
    assert log._chunk == LINE_MAX


def test_access_log_off_opens_nothing_and_a_directory_is_refused(tmp_path: Path) -> None:
    assert AccessLog.open("off") is None
    with pytest.raises(OSError):
        AccessLog.open(str(tmp_path))
    assert os.listdir(tmp_path) == []


async def test_request_sums_reach_the_histograms_on_flush() -> None:
    from prometheus_client import REGISTRY

    from certgate.observe.metrics import RequestMetrics
    from certgate.policy.context import Operation
    from tests.policy.support import make_context

    def value(sample: str, api="api", operation="sums", cls="2xx", **extra: str) -> float:
        labels = {"api": api, "operation": operation, "status_class": cls, **extra}
        return REGISTRY.get_sample_value(f"certgate_request_duration_seconds_{sample}", labels) or 0

    metrics = RequestMetrics()
    context = make_context()
    context.Operation = Operation("sums", "sums")
    for seconds in (0.0005, 0.003, 0.003, 20.0):
        metrics.observe(context, 204, seconds)
    metrics.observe(context, 503, 0.2)
    metrics.observe(None, 404, 0.0001)  # no API matched
    assert value("count") == 0  # summed in the worker until the flush
    metrics.flush()
    assert value("count") == 4 and value("count", cls="5xx") == 1
    assert value("count", api="", operation="", cls="4xx") >= 1
    assert value("sum") == pytest.approx(20.0065)
    assert value("bucket", le="0.001") == 1
    assert value("bucket", le="0.005") == 3
    assert value("bucket", le="10.0") == 3
    assert value("bucket", le="+Inf") == 4


def test_emit_metric_counts_by_name_and_sorted_dimensions() -> None:
    from prometheus_client import REGISTRY

    from certgate.observe.metrics import emit_metric

    labels = {"name": "orders", "dimensions": "region=eu,tier=gold"}
    before = REGISTRY.get_sample_value("certgate_emitted_metric_total", labels) or 0
    emit_metric("orders", 2, {"tier": "gold", "region": "eu"})
    emit_metric("orders", 1, {"region": "eu", "tier": "gold"})
    assert REGISTRY.get_sample_value("certgate_emitted_metric_total", labels) == before + 3
