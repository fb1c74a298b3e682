"""py-spy on certgate's busiest process while `ab` keeps it under load (optional)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from bench.procs import cpu_ticks

if TYPE_CHECKING:
    from bench.run import Bench


def profile(bench: Bench, seconds: float, keep_alive: bool = True) -> str:
    """Records `seconds` of samples under keep-alive load or new connections per request;
    returns where they are and the hottest functions, or why there are none."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "not installed (.venv/bin/pip install py-spy)"
    target = next(s for s in bench.systems if s.name.startswith("certgate"))
    ab_cpus = bench.place(target)
    worker = max(target.service.tree(), key=lambda pid: cpu_ticks([pid]))
    out = bench.work / "pyspy.txt"
    load = ["taskset", "-c", ab_cpus] if ab_cpus else []
    load += ["ab", "-q", "-s", "30", "-t", str(int(seconds) + 3), "-n", "10000000"]
    load += ["-c", "32" if keep_alive else "16", "-E", str(bench.pki.loadgen_pem)]
    load += ["-k", target.url] if keep_alive else [target.url]
    with subprocess.Popen(load, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as ab:
        try:
            time.sleep(1)
            record = [spy, "record", "-p", str(worker), "-d", str(int(seconds)), "-r", "250"]
            record += ["-f", "raw", "-o", str(out)]
            subprocess.run(record, capture_output=True, timeout=seconds + 60, check=False)
            ab.wait(timeout=seconds + 60)
        finally:
            if ab.poll() is None:
                ab.kill()
    if not out.exists():
        return "py-spy wrote nothing"
    return f"{out}\n{hottest(out)}"


_LINE = re.compile(r":\d+\)$")
_DIRECTORY = re.compile(r"\([^()]*/")  # two checkouts' copies of a file are one function


def own_samples(raw: Path) -> Counter[str]:
    """Samples by the function on top of the main thread's stack (all its lines together)."""
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        frames = stack.split(";")
        if frames[0].startswith("Thread._bootstrap"):
            continue
        own[_DIRECTORY.sub("(", _LINE.sub(")", frames[-1]))] += int(samples)
    return own


def hottest(raw: Path, count: int = 15) -> str:
    """Own (leaf) and inclusive share of the hottest functions of the main thread (the event loop),
    all lines of one function together."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if frames[0].startswith("Thread._bootstrap"):
            continue  # pool threads blocked in C look busy to py-spy here; the loop is the main one
        total += int(samples)
        own[frames[-1]] += int(samples)
        for frame in set(frames):
            inclusive[frame] += int(samples)
    lines = [f"{'own':>6} {'incl':>6}  function (py-spy, main thread, {total} samples)"]
    for frame, samples in own.most_common(count):
        lines.append(
            f"{100 * samples / total:5.1f}% {100 * inclusive[frame] / total:5.1f}%  {frame}"
        )
    return "\n".join(lines)
