"""py-spy on certgate's busiest process while `ab` keeps it under load (optional)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench.procs import cpu_ticks

if TYPE_CHECKING:
    from bench.run import Bench


NOT_INSTALLED = "not installed (.venv/bin/pip install py-spy)"


def py_spy() -> str | None:
    """The py-spy command (on PATH or beside this interpreter), or None."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return spy if Path(spy).exists() else None


def profile(bench: Bench, seconds: float, keep_alive: bool = True) -> str:
    """Records `seconds` of samples under keep-alive load or new connections per request;
    returns where they are and the hottest functions, or why there are none."""
    spy = py_spy()
    if spy is None:
        return NOT_INSTALLED
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


def _main_thread_stacks(raw: Path) -> Iterator[tuple[list[str], int]]:
    """(frames, samples) of each stack of a raw py-spy file, the main thread's only (pool threads
    blocked in C look busy to py-spy here; the event loop is the main one), line numbers dropped
    so that all lines of one function count together."""
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if not frames[0].startswith("Thread._bootstrap"):
            yield frames, int(samples)


def own_samples(raw: Path) -> Counter[str]:
    """Samples by the function on top of the main thread's stack, whichever checkout it ran."""
    own: Counter[str] = Counter()
    for frames, samples in _main_thread_stacks(raw):
        own[_DIRECTORY.sub("(", frames[-1])] += samples
    return own


def hottest(raw: Path, count: int = 15) -> str:
    """Own (leaf) and inclusive share of the hottest functions of the main thread (the event loop),
    all lines of one function together."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, samples in _main_thread_stacks(raw):
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"{'own':>6} {'incl':>6}  function (py-spy, main thread, {total} samples)"]
    for frame, samples in own.most_common(count):
        lines.append(
            f"{100 * samples / total:5.1f}% {100 * inclusive[frame] / total:5.1f}%  {frame}"
        )
    return "\n".join(lines)
