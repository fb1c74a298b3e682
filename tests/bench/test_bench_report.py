"""The benchmark's arithmetic: ab's output read right, ratios taken within a repetition."""

from __future__ import annotations

import pytest

from bench.load import parse_ab
from bench.report import summarize, table

AB_OUTPUT = """
SSL/TLS Protocol:       TLSv1.3,TLS_AES_256_GCM_SHA384,256,256
Complete requests:      2000
Failed requests:        0
Non-2xx responses:      3
Keep-Alive requests:    2000
Requests per second:    12345.67 [#/sec] (mean)
"""


def test_ab_output_with_non_2xx_responses_is_not_a_valid_run():
    result = parse_ab(AB_OUTPUT, 0, {50: 1.25, 99: 4.5})
    assert (result.complete, result.rps, result.p50_ms, result.p99_ms) == (
        2000,
        12345.67,
        1.25,
        4.5,
    )
    assert result.tls.startswith("TLSv1.3")
    assert not result.ok


def _run(system: str, rep: int, rps: float, ok: bool = True) -> dict:
    return {
        "scenario": "keepalive",
        "system": system,
        "rep": rep,
        "rps": rps,
        "ok": ok,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "cpu_us_per_req": 1e6 / rps,
    }


def test_ratio_is_the_median_of_same_repetition_ratios():
    runs = [
        _run("nginx", 1, 100),
        _run("certgate", 1, 50),
        _run("nginx", 2, 200),
        _run("certgate", 2, 80),
        _run("nginx", 3, 100),
        _run("certgate", 3, 10, ok=False),
    ]
    rows = {row["system"]: row for row in summarize(runs)}
    assert rows["certgate"]["ratio_runs"] == [0.5, 0.4]
    assert rows["certgate"]["ratio"] == 0.45
    assert rows["certgate"]["cpu_ratio"] == pytest.approx(0.45)
    assert rows["certgate"]["failed_runs"] == 1
    assert "0.45x" in table(list(rows.values()), {})


def test_paired_rounds_report_the_median_ratio_and_its_spread():
    from bench.pair import summarize_rounds

    rounds = [
        {"base": 260.0, "head": 234.0},
        {"base": 280.0, "head": 249.2},
        {"base": 250.0, "head": 230.0},
    ]
    text = summarize_rounds(rounds)
    assert "median 0.900 over 3 rounds" in text
    assert "(min 0.890, max 0.920)" in text
    assert "head costs 10.0 % less" in text
