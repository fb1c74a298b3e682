"""certgate against nginx as mTLS reverse proxies, side by side, alternating (perf-anchors method).

    scripts/install-bench-deps && .venv/bin/python -m bench.run

Starts an nginx backend that requires a client certificate, nginx as the reference mTLS proxy and
certgate (one worker each), checks that every path really presents the gateway's certificate to the
backend, then runs `ab` per scenario, repetition and system in turn. Prints medians and the
same-run ratio certgate/nginx; writes every run as a JSON line to bench/results/. Stops everything
it started, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import ssl
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench import certgate as cg
from bench import nginx
from bench.load import Scenario, run_ab
from bench.pki import BenchPki, make_pki
from bench.procs import TICK, Service, children_cpu, cpu_ticks, free_port, machine_ticks, pin
from bench.report import summarize, table

HERE = Path(__file__).resolve().parent
SYSTEMS = ("nginx", "certgate", "certgate-policy")


@dataclass
class System:
    name: str
    url: str
    service: Service
    description: str


@dataclass
class Bench:
    """The servers of one run and where they are pinned."""

    work: Path
    pki: BenchPki
    backend: Service
    cpus: list[int]
    pinned: bool
    systems: list[System] = field(default_factory=list)

    def place(self, current: System | None) -> str | None:
        """Pinned: `current` on the first core, backend and ab on the second; returns ab's cores."""
        every = set(self.cpus)
        for system in self.systems:
            pin(system.service.tree(), every)
        if not self.pinned or current is None:
            pin(self.backend.tree(), every)
            return None
        pin(current.service.tree(), {self.cpus[0]})
        pin(self.backend.tree(), {self.cpus[1]})
        return str(self.cpus[1])

    def ab(self, system: System, scenario: Scenario, cpus: str | None):
        return run_ab(system.url, self.pki.loadgen_pem, scenario, self.work / "pct.csv", cpus, 180)

    def measure(self, system: System, scenario: Scenario, rep: int) -> dict:
        ab_cpus = self.place(system)
        own, back = system.service.tree(), self.backend.tree()
        own_before, back_before = cpu_ticks(own), cpu_ticks(back)
        machine_before, ab_before = machine_ticks(), children_cpu()
        started = time.monotonic()
        result = self.ab(system, scenario, ab_cpus)
        wall = time.monotonic() - started
        own_s = (cpu_ticks(own) - own_before) / TICK
        back_s = (cpu_ticks(back) - back_before) / TICK
        machine_after = machine_ticks()
        busy_s = (
            machine_after[0] - machine_before[0] - machine_after[1] + machine_before[1]
        ) / TICK
        ab_s = children_cpu() - ab_before
        other_s = busy_s - own_s - back_s - ab_s
        done = max(1, result.complete)
        record = {
            "kind": "run",
            "scenario": scenario.name,
            "system": system.name,
            "rep": rep,
            "layout": "pinned" if self.pinned else "free",
            "requests": scenario.requests,
            "concurrency": scenario.concurrency,
            "wall_s": round(wall, 3),
            **{k: v for k, v in asdict(result).items() if k != "tail"},
            "ok": result.ok,
            "cpu_us_per_req": 1e6 * own_s / done,
            "backend_us_per_req": 1e6 * back_s / done,
            "ab_us_per_req": 1e6 * ab_s / done,
            "other_load_cores": round(max(0.0, other_s) / wall, 2),
        }
        if not result.ok:
            record["ab_tail"] = result.tail
        exited = system.service.process.poll()
        if exited is not None:
            record["ok"] = False
            record["ab_tail"] = f"{system.service.name} exited ({exited}): {system.service.tail()}"
        return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("nginx", "ab"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found; run scripts/install-bench-deps", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _interrupt)
    with ExitStack() as stack:
        try:
            return run(args, stack)
        except KeyboardInterrupt:
            print("\nbench: interrupted; stopping servers", file=sys.stderr)
            return 130


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma list (default: all)")
    parser.add_argument(
        "--scenarios", default="keepalive,newconn", help="keepalive,newconn,latency"
    )
    parser.add_argument("--keepalive-requests", type=int, default=30_000)
    parser.add_argument("--newconn-requests", type=int, default=2_000)
    parser.add_argument("--latency-requests", type=int, default=5_000)
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions (median)")
    parser.add_argument("--layout", choices=("pinned", "free"), default="pinned")
    parser.add_argument("--key", choices=("ec", "rsa"), default="ec", help="PKI key type")
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument(
        "--profile",
        type=float,
        default=0,
        metavar="SECONDS",
        help="py-spy on the certgate worker under load after the runs (needs py-spy)",
    )
    parser.add_argument("--profile-scenario", choices=("keepalive", "newconn"), default="keepalive")
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system {unknown[0]!r}; known: {', '.join(SYSTEMS)}")
    return args


def scenarios(args: argparse.Namespace) -> dict[str, Scenario]:
    known = {
        "keepalive": Scenario(
            "keepalive", True, args.keepalive_requests, 32, "keep-alive HTTPS, ab -k -c 32"
        ),
        "newconn": Scenario(
            "newconn", False, args.newconn_requests, 16, "new mTLS connection per request, ab -c 16"
        ),
        "latency": Scenario(
            "latency", True, args.latency_requests, 1, "unloaded latency, keep-alive, ab -k -c 1"
        ),
    }
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise SystemExit(f"bench: unknown scenario {unknown[0]!r}; known: {', '.join(known)}")
    return {name: known[name] for name in wanted}


def run(args: argparse.Namespace, stack: ExitStack) -> int:
    chosen = scenarios(args)
    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True)
    pki = make_pki(work / "pki", args.key)

    backend_port = free_port()
    config = nginx.backend_config(work, pki, backend_port)
    backend = _started(stack, nginx.start_nginx(work, "backend", config))
    backend.wait_listening(backend_port)
    cpus = sorted(os.sched_getaffinity(0))
    bench = Bench(work, pki, backend, cpus, args.layout == "pinned" and len(cpus) >= 2)
    if "nginx" in args.systems:
        bench.systems.append(_start_nginx_proxy(stack, work, pki, backend_port))
    if {"certgate", "certgate-policy"} & set(args.systems):
        try:
            bench.systems += _start_certgate(stack, work, pki, backend_port, args.systems)
        except Exception as error:  # the nginx half still runs; the reason is printed
            print(f"bench: certgate skipped: {error}", file=sys.stderr)
    for system in list(bench.systems):
        try:
            _check(system, pki)
        except RuntimeError as error:
            print(f"bench: {system.name} skipped: {error}", file=sys.stderr)
            bench.systems.remove(system)
    missing = [s for s in args.systems if s not in {x.name for x in bench.systems}]
    if not bench.systems:
        return 1
    names = ", ".join(s.name for s in bench.systems)
    print(f"bench: {names}: the backend saw the gateway's client certificate (CN=bench-gateway)")

    records = _measure_all(bench, chosen, args)
    rows = summarize(records)
    out_path = _write(args.results, records, rows)
    if args.profile and any(s.name.startswith("certgate") for s in bench.systems):
        from bench.profile import profile

        keep_alive = args.profile_scenario == "keepalive"
        print(f"bench: py-spy: {profile(bench, args.profile, keep_alive)}")
    bench.place(None)
    legend = {s.name: s.description for s in bench.systems}
    legend |= {name: s.description for name, s in chosen.items()}
    print()
    print(table(rows, legend))
    layout = "pinned: system on core 0, ab and backend on core 1" if bench.pinned else "free"
    print(f"\nbench: layout {layout}; results in {out_path}")
    other = max(r["other_load_cores"] for r in records)
    if other > 0.2:
        print(
            f"bench: other processes used up to {other:.1f} cores during the runs; absolute "
            "figures are low, compare the same-run ratios (CPU ratio is the steadiest)",
            file=sys.stderr,
        )
    if missing:
        print(f"bench: not measured: {', '.join(missing)}", file=sys.stderr)
    return 0 if all(r["ok"] for r in records) and not missing else 1


def _measure_all(bench: Bench, chosen: dict[str, Scenario], args: argparse.Namespace) -> list[dict]:
    warm = Scenario("warmup", True, 2000, 32, "")
    for system in bench.systems:  # fills upstream pools and faults code in; not recorded
        bench.ab(system, warm, bench.place(system))
    records = []
    for scenario in chosen.values():
        for rep in range(1, args.reps + 1):
            for system in bench.systems:  # alternate within each repetition
                record = bench.measure(system, scenario, rep)
                records.append(record)
                _progress(record)
                time.sleep(1)
    return records


def _write(results: Path, records: list[dict], rows: list[dict]) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    with path.open("w") as out:
        for item in [*records, *rows]:
            out.write(json.dumps(item) + "\n")
    return path


def _started(stack: ExitStack, service: Service) -> Service:
    stack.callback(service.stop)
    return service


def _start_nginx_proxy(stack: ExitStack, work: Path, pki: BenchPki, backend_port: int) -> System:
    port = free_port()
    config = nginx.proxy_config(work, pki, port, backend_port)
    proxy = _started(stack, nginx.start_nginx(work, "proxy", config))
    proxy.wait_listening(port)
    url = _url(port, nginx.PREFIX)
    return System("nginx", url, proxy, "nginx 1 worker, proxy_ssl_certificate to the backend")


def _start_certgate(
    stack: ExitStack, work: Path, pki: BenchPki, backend_port: int, wanted: list[str]
) -> list[System]:
    gateway = cg.start_certgate(work, free_port(), free_port())
    _started(stack, gateway.service)
    with cg.management_client(gateway) as client:
        cg.configure(client, pki, f"https://127.0.0.1:{backend_port}")
    found = []
    if "certgate" in wanted:
        url = _url(gateway.gateway_port, cg.API)
        text = "certgate 1 worker, backend entity with the client certificate"
        found.append(System("certgate", url, gateway.service, text))
    if "certgate-policy" in wanted:
        url = _url(gateway.gateway_port, cg.POLICY_API)
        text = "the same plus APIM's client-certificate thumbprint policy"
        found.append(System("certgate-policy", url, gateway.service, text))
    return found


def _url(port: int, prefix: str) -> str:
    return f"https://127.0.0.1:{port}/{prefix}/"


def _check(system: System, pki: BenchPki, timeout: float = 15.0) -> None:
    """The proxy answers with the backend's echo, which names the certificate the proxy presented.
    Polled with a deadline: certgate applies new configuration within about a second."""
    context = ssl.create_default_context(cafile=str(pki.ca_pem))
    context.load_cert_chain(str(pki.loadgen_pem))
    deadline = time.monotonic() + timeout
    last = ""
    with httpx.Client(verify=context, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(system.url + "echo")
                last = f"{response.status_code} {response.text.strip()[:300]}"
                if response.status_code == 200 and "CN=bench-gateway" in response.text:
                    return
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.2)
    raise RuntimeError(f"{system.url}echo did not reach the mTLS backend: {last}")


def _progress(record: dict) -> None:
    flag = "" if record["ok"] else f"  FAILED: {record.get('ab_tail', '')[-200:]!r}"
    print(
        f"  {record['scenario']:9} r{record['rep']} {record['system']:16} "
        f"{record['rps'] or 0:>9,.0f} req/s  p50 {record['p50_ms']} ms  p99 {record['p99_ms']} ms  "
        f"cpu {record['cpu_us_per_req']:.0f} µs/req  "
        f"keep-alive {record['keep_alive_requests']}  "
        f"other load {record['other_load_cores']} cores{flag}",
        flush=True,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
