"""One bounded `ab` run with a client certificate, and what it measured (perf-anchors section 6)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Scenario:
    name: str
    keep_alive: bool
    requests: int
    concurrency: int
    description: str


@dataclass(frozen=True)
class AbResult:
    complete: int
    failed: int | None
    non_2xx: int
    keep_alive_requests: int
    rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    tls: str | None
    returncode: int
    tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.rps) and not self.failed and not self.non_2xx


def run_ab(
    url: str, client_pem: Path, scenario: Scenario, csv: Path, cpus: str | None, timeout: float
) -> AbResult:
    """`ab -q -s 30 -n N -c C -E client.pem -e pct.csv [-k] URL`, pinned with taskset when asked."""
    csv.unlink(missing_ok=True)
    argv = ["ab", "-q", "-s", "30", "-n", str(scenario.requests), "-c", str(scenario.concurrency)]
    argv += ["-E", str(client_pem), "-e", str(csv)]
    if scenario.keep_alive:
        argv.append("-k")
    argv.append(url)
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        out, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        out, code = f"ab killed after {timeout:.0f}s: {expired.stdout!r}", -9
    return parse_ab(out, code, _percentiles(csv))


def parse_ab(out: str, returncode: int, percentiles: dict[int, float]) -> AbResult:
    def number(pattern: str, cast=float, default=None):
        match = re.search(pattern, out)
        return cast(match.group(1)) if match else default

    return AbResult(
        complete=number(r"Complete requests:\s+(\d+)", int, 0),
        failed=number(r"Failed requests:\s+(\d+)", int),
        non_2xx=number(r"Non-2xx responses:\s+(\d+)", int, 0),
        keep_alive_requests=number(r"Keep-Alive requests:\s+(\d+)", int, 0),
        rps=number(r"Requests per second:\s+([\d.]+)"),
        p50_ms=percentiles.get(50),
        p99_ms=percentiles.get(99),
        tls=number(r"SSL/TLS Protocol:\s+(\S+)", str),
        returncode=returncode,
        tail=out[-600:],
    )


def _percentiles(csv: Path) -> dict[int, float]:
    """ab's `-e` file: `percent,milliseconds` lines after a header."""
    found: dict[int, float] = {}
    if csv.exists():
        for line in csv.read_text().splitlines():
            key, _, value = line.strip().partition(",")
            if key.isdigit():
                found[int(key)] = float(value)
    return found
