"""Two certgate builds under the same load at the same time: which costs less CPU per request.

    .venv/bin/python -m bench.pair [--base REV] [--rounds 4] [--seconds 10]

An A/B for hot-path changes. `bench.run` alternates systems, and on this host one system's CPU per
keep-alive request swings by 10-20 % from one run to the next, more than most single changes
save. Here the checkout at `--base` (a git worktree) and the working tree run side by side on one
core, each loaded by its own `ab -k -c 32` at the same moment (on the other core, with the nginx
mTLS backend), so whatever the host does hits both alike: the ratio repeats within a few percent.
Sharing a core costs both more CPU per request than running alone, so compare the ratio, not
the absolute figures, and use `bench.run` for the ratio to nginx.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench import certgate as cg
from bench import nginx
from bench.load import parse_ab
from bench.pki import BenchPki, make_pki
from bench.procs import TICK, cpu_ticks, free_port, pin
from bench.profile import NOT_INSTALLED, own_samples, py_spy
from bench.run import System, _check, _started, _url

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def main(argv: list[str] | None = None) -> int:
    summary = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.pair", description=summary)
    parser.add_argument("--base", default="HEAD", help="git revision to compare against")
    parser.add_argument("--head", help="git revision to measure (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10, help="length of one round")
    parser.add_argument("--work", type=Path, default=HERE / ".work-pair")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="SECONDS",
        help="after the rounds, py-spy both workers under load and print where head spends "
        "more (or less) CPU per request than base, by function",
    )
    args = parser.parse_args(argv)
    for tool in ("nginx", "ab", "git"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found; run scripts/install-bench-deps", file=sys.stderr)
            return 2
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("bench: pairing needs two cores (gateways, then load)", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        base, head, pki, backend = _start(stack, args)
        head_name = args.head or "working tree"
        print(f"bench: base = {args.base}, head = {head_name}; both reach the mTLS backend")
        rounds = []
        for number in range(1, args.rounds + 1):
            pin(backend, {cpus[1]})
            result = measure_round((base, head), pki, args.seconds, cpus[:2])
            rounds.append(result)
            print(
                f"  round {number}: base {result['base']:.1f} µs/req, head {result['head']:.1f} "
                f"µs/req, head/base {result['head'] / result['base']:.3f}",
                flush=True,
            )
        print(summarize_rounds(rounds))
        if args.profile:
            print(profile_pair((base, head), pki, args.profile, cpus[:2], args.work.resolve()))
    return 0


def _start(stack: ExitStack, args: argparse.Namespace):
    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True)
    sources = {"base": _checkout(stack, work / "base-src", args.base)}
    sources["head"] = _checkout(stack, work / "head-src", args.head) if args.head else None
    pki = make_pki(work / "pki", "ec")
    backend_port = free_port()
    config = nginx.backend_config(work, pki, backend_port)
    backend = _started(stack, nginx.start_nginx(work, "backend", config))
    backend.wait_listening(backend_port)
    systems = []
    for name, code in sources.items():
        gateway = cg.start_certgate(work, free_port(), free_port(), name=name, source=code)
        _started(stack, gateway.service)
        with cg.management_client(gateway) as client:
            cg.configure(client, pki, f"https://127.0.0.1:{backend_port}")
        system = System(name, _url(gateway.gateway_port, cg.API), gateway.service, name)
        _check(system, pki)
        systems.append(system)
    return systems[0], systems[1], pki, backend.tree()


def _checkout(stack: ExitStack, where: Path, revision: str) -> Path:
    """A temporary git worktree of `revision`, removed when the bench ends."""
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(where), revision], check=True)
    stack.callback(subprocess.run, [*git, "worktree", "remove", "--force", str(where)])
    return where


def measure_round(
    systems: tuple[System, System], pki: BenchPki, seconds: int, cpus: list[int]
) -> dict:
    """Both systems on the first core, each under its own keep-alive `ab` on the second, for
    `seconds`; returns CPU µs per request by system name."""
    for system in systems:
        pin(system.service.tree(), {cpus[0]})
    before = {s.name: cpu_ticks(s.service.tree()) for s in systems}
    loads = _load(systems, pki, seconds, cpus[1])
    result = {}
    completed = _completed(loads, seconds)
    for system in systems:
        ab = completed[system.name]
        cpu = (cpu_ticks(system.service.tree()) - before[system.name]) / TICK
        result[system.name] = 1e6 * cpu / ab.complete
    time.sleep(1)
    return result


def _load(systems: tuple[System, ...], pki: BenchPki, seconds: int, cpu: int) -> dict:
    loads = {}
    for system in systems:
        argv = ["taskset", "-c", str(cpu), "ab", "-q", "-s", "30", "-t", str(seconds)]
        argv += ["-n", "100000000", "-c", "32", "-k", "-E", str(pki.loadgen_pem), system.url]
        loads[system.name] = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    return loads


def _completed(loads: dict, seconds: int) -> dict:
    """ab's figures by system name, once every load has ended; stops the bench on a failed load."""
    outputs = {name: load.communicate(timeout=seconds + 60)[0] for name, load in loads.items()}
    results = {}
    for name, output in outputs.items():
        ab = parse_ab(output, loads[name].returncode, {})
        if not ab.ok:
            raise SystemExit(f"bench: {name} failed under load: {ab.tail}")
        results[name] = ab
    return results


def profile_pair(
    systems: tuple[System, System], pki: BenchPki, seconds: int, cpus: list[int], work: Path
) -> str:
    """py-spy on each busiest worker process in turn, alone on its core under load (so a sample
    is not time waiting for the shared core): each function's own µs per request in base and
    head, largest differences first. On this host py-spy cannot tell an idle thread from a busy
    one, so the event loop's own time includes its waits in epoll: read the differences of
    Python functions, and `perf record` for the C side."""
    spy = py_spy()
    if spy is None:
        return f"profile: py-spy is {NOT_INSTALLED}"
    per_request = {
        system.name: _profile_one(spy, system, pki, seconds, cpus, work) for system in systems
    }
    base, head = per_request["base"], per_request["head"]
    frames = sorted(set(base) | set(head), key=lambda f: -abs(head.get(f, 0) - base.get(f, 0)))
    lines = ["profile: own CPU µs per request (py-spy), largest head - base first"]
    lines.append(f"{'base':>7} {'head':>7} {'diff':>7}  function")
    lines.append(f"{sum(base.values()):7.2f} {sum(head.values()):7.2f} {'':>7}  (all)")
    for frame in frames[:40]:
        b, h = base.get(frame, 0.0), head.get(frame, 0.0)
        lines.append(f"{b:7.2f} {h:7.2f} {h - b:+7.2f}  {frame}")
    return "\n".join(lines)


def _profile_one(
    spy: str, system: System, pki: BenchPki, seconds: int, cpus: list[int], work: Path
) -> dict[str, float]:
    rate = 250
    pin(system.service.tree(), {cpus[0]})
    load = _load((system,), pki, seconds + 2, cpus[1])
    time.sleep(1)
    worker = max(system.service.tree(), key=lambda pid: cpu_ticks([pid]))
    out = work / f"pyspy-{system.name}.txt"
    record = [spy, "record", "-p", str(worker), "-d", str(seconds), "-r", str(rate)]
    subprocess.run([*record, "-f", "raw", "-o", str(out)], capture_output=True, check=False)
    complete = _completed(load, seconds + 2)[system.name].complete
    scale = 1e6 / rate / complete * (seconds + 2) / seconds
    return {frame: samples * scale for frame, samples in own_samples(out).items()}


def summarize_rounds(rounds: list[dict]) -> str:
    """The median of the per-round head/base ratios, and their spread."""
    ratios = sorted(r["head"] / r["base"] for r in rounds)
    median = statistics.median(ratios)
    change = (median - 1) * 100
    verdict = "less" if change < 0 else "more"
    return (
        f"head/base CPU per request: median {median:.3f} over {len(ratios)} rounds "
        f"(min {ratios[0]:.3f}, max {ratios[-1]:.3f}): head costs {abs(change):.1f} % {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
