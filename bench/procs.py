"""Servers the benchmark starts: start, wait until listening, pin to cores, count CPU, stop.

Every server runs in its own session, so stopping it signals exactly the process group this module
created (an nginx master with its workers, certgate with its worker processes) and nothing else.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


class ServiceError(RuntimeError):
    """A server that would not start; the message ends with the tail of its log."""


class Service:
    def __init__(self, name: str, argv: Sequence[str], log: Path, env: dict | None = None) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def tree(self) -> list[int]:
        """The server's process and all its descendants, as they are now."""
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += _children(pid)
        return found

    def wait_listening(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited ({self.process.returncode}): {self.tail()}")
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise ServiceError(
            f"{self.name} not listening on {port} after {timeout:.0f}s: {self.tail()}"
        )

    def tail(self, size: int = 1500) -> str:
        try:
            return self.log.read_bytes()[-size:].decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the server's own process group, SIGKILL if it lingers."""
        if self.process.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.process.wait(timeout)
        _signal_group(self.pid, signal.SIGKILL)  # workers that outlived their master


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(p) for p in handle.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_ticks(pids: Sequence[int]) -> int:
    """utime + stime of the processes, in clock ticks (perf-anchors section 6)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def children_cpu() -> float:
    """CPU seconds of reaped children (ab), as perf-anchors' bench.py counts the load generator."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_ticks() -> tuple[int, int]:
    """(all, idle + iowait) clock ticks of every CPU since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(x) for x in handle.readline().split()[1:]]
    return sum(values[:8]), values[3] + values[4]


def pin(pids: Sequence[int], cpus: set[int]) -> None:
    """Like `taskset -a -p`: every thread of every process."""
    for pid in pids:
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(task), cpus)
        except (FileNotFoundError, ProcessLookupError):
            pass
