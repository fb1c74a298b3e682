"""Medians, same-run ratios and the printed table (perf-anchors section 6 and appendix A.4)."""

from __future__ import annotations

import statistics
from collections import defaultdict

REFERENCE = "nginx"


def summarize(records: list[dict]) -> list[dict]:
    """One row per (scenario, system): medians over repetitions, and the median of the ratios
    system/nginx computed within each repetition (the figure that survives machine drift): `ratio`
    of req/s, and `cpu_ratio`, nginx's CPU per request over the system's (the steadier one when
    other work shares the machine)."""
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        by[(record["scenario"], record["system"])].append(record)
    rows = []
    for (scenario, system), runs in by.items():
        good = [r for r in runs if r["ok"]]
        row = {
            "kind": "summary",
            "scenario": scenario,
            "system": system,
            "runs": len(runs),
            "failed_runs": len(runs) - len(good),
            "rps": _median([r["rps"] for r in good]),
            "rps_runs": [round(r["rps"]) for r in good],
            "p50_ms": _median([r["p50_ms"] for r in good]),
            "p99_ms": _median([r["p99_ms"] for r in good]),
            "cpu_us_per_req": _median([r["cpu_us_per_req"] for r in good]),
            "other_load_cores": _median([r.get("other_load_cores") for r in good]),
            "ratio": None,
            "ratio_runs": [],
            "cpu_ratio": None,
        }
        reference = {r["rep"]: r for r in by.get((scenario, REFERENCE), []) if r["ok"]}
        if system != REFERENCE:
            pairs = [(r, reference[r["rep"]]) for r in good if r["rep"] in reference]
            ratios = [r["rps"] / ref["rps"] for r, ref in pairs]
            row["ratio"] = _median(ratios)
            row["ratio_runs"] = [round(x, 3) for x in ratios]
            cpu = [
                ref["cpu_us_per_req"] / r["cpu_us_per_req"]
                for r, ref in pairs
                if r["cpu_us_per_req"]
            ]
            row["cpu_ratio"] = _median(cpu)
        rows.append(row)
    return rows


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table(rows: list[dict], descriptions: dict[str, str]) -> str:
    head = ("scenario", "system", "req/s", "runs", "p50 ms", "p99 ms", "CPU µs/req", "vs nginx")
    head += ("CPU vs nginx", "other load")
    lines = [head]
    for row in rows:
        ratio = "-"
        if row["ratio"] is not None:
            ratio = f"{row['ratio']:.2f}x ({' / '.join(f'{x:.2f}' for x in row['ratio_runs'])})"
        failed = f" ({row['failed_runs']} failed)" if row["failed_runs"] else ""
        lines.append(
            (
                row["scenario"],
                row["system"],
                _fmt(row["rps"], ",.0f"),
                " / ".join(f"{x:,}" for x in row["rps_runs"]) + failed,
                _fmt(row["p50_ms"], ".2f"),
                _fmt(row["p99_ms"], ".2f"),
                _fmt(row["cpu_us_per_req"], ".0f"),
                ratio,
                _fmt(row["cpu_ratio"], ".2f"),
                _fmt(row["other_load_cores"], ".2f"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    legend = [f"  {name}: {text}" for name, text in descriptions.items()]
    return "\n".join([*out, "", *legend])


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
