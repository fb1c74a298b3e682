"""Several gateway processes on one machine, sharing the listening ports through SO_REUSEPORT.

API:

    pool = WorkerPool(count, build_config, host="0.0.0.0", https_port=8443, http_port=None,
                      poll_interval=1.0, forwarder_factory=None, limits=Limits(),
                      access_log="off", log_level=None)
    pool.reserve()        # optional: claims the ports first (AddressInUse when taken)
    pool.start()          # spawns the workers, returns once every one of them listens
    pool.https_port       # the shared port (also when 0 was asked: reserved by the parent)
    pool.sentinels        # one fd per worker, readable once it exited (to watch them)
    pool.exited()         # pid -> exit code of the workers that ended
    pool.stop()           # SIGTERM, then SIGKILL after the timeout

`build_config(previous)` runs inside each worker: first with `previous=None` (must return a
`GatewayConfig`), then every `poll_interval` seconds in a thread with the config being served;
it returns a new config to swap in (`GatewayServer.update`) or None when nothing changed (e.g. the
store revision did not move). Workers are spawned, not forked, so `build_config` and
`forwarder_factory` must be picklable: module-level functions, `functools.partial` of them, or
objects such as `certgate.snapshot.follower.RevisionFollower` (what `certgate serve` passes).
Each worker runs uvloop and its own `Forwarder` (`forwarder_factory()`, default
`certgate.gateway.upstream.forwarder.Forwarder(limits)`); `worker_index()` tells code running
inside a worker (such as `build_config`) which worker it is. `access_log` is the `--access-log`
target each worker opens (`certgate.observe.accesslog`); with `log_level` a worker configures
logging (`certgate.observe.logs`) so its lines carry a time, the logger and the worker's name.
Each worker sets `certgate_config_revision{worker}` to the revision it serves.

Ports: `start()` first binds each port without SO_REUSEPORT (`certgate.gateway.ports`), so a port
another process listens on, another pool's workers included, raises `AddressInUse` before any
worker starts; then it keeps a SO_REUSEPORT reservation that only its own workers join.

Lifecycle: workers exit when the process that started them dies, even by SIGKILL: on Linux the
kernel sends them SIGKILL (PR_SET_PDEATHSIG, tied to the *thread* that called `start()`, so call it
from a thread that lives as long as the pool), and everywhere each worker checks its parent
process id every `poll_interval` and stops when it changed. Workers ignore SIGINT (Ctrl-C reaches
the whole process group; the parent then stops them) and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import uvloop

from certgate.gateway.config import GatewayConfig
from certgate.gateway.ports import ensure_free, family
from certgate.gateway.server import GatewayServer
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.observe.accesslog import AccessLog
from certgate.observe.logs import configure_logging
from certgate.observe.metrics import CONFIG_REVISION

log = logging.getLogger("certgate.workers")

BuildConfig = Callable[[GatewayConfig | None], GatewayConfig | None]
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_index: int | None = None


def worker_index() -> int | None:
    """The index of the worker this code runs in (0 .. count-1), None outside a worker."""
    return _index


class WorkerError(RuntimeError):
    """A worker could not start (its message says why)."""


class WorkerPool:
    """`count` gateway processes; see the module docstring."""

    def __init__(
        self,
        count: int,
        build_config: BuildConfig,
        *,
        host: str = "127.0.0.1",
        https_port: int | None = 8443,
        http_port: int | None = None,
        poll_interval: float = 1.0,
        forwarder_factory: Callable[[], Any] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        access_log: str = "off",
        log_level: str | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"workers: must be at least 1, got {count}")
        self.count = count
        self._build_config = build_config
        self._host = host
        self.https_port = https_port
        self.http_port = http_port
        self._poll_interval = poll_interval
        self._forwarder_factory = forwarder_factory
        self._limits = limits
        self._access_log = access_log
        self._log_level = log_level
        self._reserved: list[socket.socket] = []
        self._processes: list[Any] = []

    def reserve(self) -> None:
        """Claims the ports (AddressInUse if another process holds one); `start()` does it too."""
        if self._reserved:
            return
        try:
            if self.https_port is not None:
                self.https_port = self._reserve(self.https_port)
            if self.http_port is not None:
                self.http_port = self._reserve(self.http_port)
        except OSError:
            self.stop()
            raise

    def start(self, timeout: float = 30.0) -> None:
        self.reserve()
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        for index in range(self.count):
            process = ctx.Process(
                target=_worker_main,
                args=(
                    index,
                    self._build_config,
                    self._host,
                    self.https_port,
                    self.http_port,
                    self._poll_interval,
                    self._forwarder_factory,
                    self._limits,
                    ready,
                    os.getpid(),
                    self._access_log,
                    self._log_level,
                ),
                name=f"certgate-worker-{index}",
                daemon=True,
            )
            process.start()
            self._processes.append(process)
        deadline = time.monotonic() + timeout
        for _ in range(self.count):
            try:
                status, message = ready.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise WorkerError(f"workers did not start within {timeout:g} s") from None
            if status != "ready":
                self.stop()
                raise WorkerError(message)

    def _reserve(self, port: int) -> int:
        """Binds (without listening) so port 0 becomes one port every worker then shares."""
        ensure_free(self._host, port)
        sock = socket.socket(family(self._host), socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self._host, port))
        self._reserved.append(sock)
        return sock.getsockname()[1]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def exited(self) -> dict[int, int | None]:
        """pid -> exit code (negative: the signal) of every worker whose sentinel says it ended."""
        ended = set(multiprocessing.connection.wait(self.sentinels, timeout=0))
        gone = [p for p in self._processes if p.sentinel in ended]
        for process in gone:
            process.join(5)  # its files are closed a moment before it can be reaped
        return {p.pid: p.exitcode for p in gone}

    @property
    def sentinels(self) -> list[int]:
        """One file descriptor per worker that becomes readable when the worker has exited."""
        return [p.sentinel for p in self._processes]

    def stop(self, timeout: float = 10.0) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        self._processes.clear()
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()


def _worker_main(
    index: int,
    build_config: BuildConfig,
    host: str,
    https_port: int | None,
    http_port: int | None,
    poll_interval: float,
    forwarder_factory: Callable[[], Any] | None,
    limits: Limits,
    ready: Any,
    parent: int,
    access_log: str,
    log_level: str | None,
) -> None:
    global _index
    _index = index
    _die_with_parent(parent)
    if log_level is not None:
        configure_logging(log_level)
    try:
        uvloop.run(
            _serve(
                build_config,
                host,
                https_port,
                http_port,
                poll_interval,
                forwarder_factory,
                limits,
                ready,
                parent,
                access_log,
            )
        )
    except Exception as exc:
        ready.put(("error", f"worker {index}: {type(exc).__name__}: {exc}"))
        raise


async def _serve(
    build_config: BuildConfig,
    host: str,
    https_port: int | None,
    http_port: int | None,
    poll_interval: float,
    forwarder_factory: Callable[[], Any] | None,
    limits: Limits,
    ready: Any,
    parent: int,
    access_log_target: str,
) -> None:
    if forwarder_factory is None:
        from functools import partial

        from certgate.gateway.upstream.forwarder import Forwarder

        forwarder_factory = partial(Forwarder, limits)
    config = build_config(None)
    if config is None:
        raise WorkerError("build_config(None) returned no configuration")
    forwarder = forwarder_factory()
    access_log = AccessLog.open(access_log_target)
    server = GatewayServer(config, forwarder=forwarder, limits=limits, access_log=access_log)
    await server.start(host, https_port, http_port, reuse_port=True)
    revision = CONFIG_REVISION.labels(str(_index))
    revision.set(config.revision)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    ready.put(("ready", ""))
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)
            if stop.is_set():
                break
            if os.getppid() != parent:
                log.warning("the supervisor (pid %s) is gone; this worker stops", parent)
                break
            try:
                fresh = await asyncio.to_thread(build_config, server.config)
            except Exception:
                log.exception("configuration rebuild failed; still serving the previous one")
                continue
            if fresh is not None:
                server.update(fresh)
                revision.set(fresh.revision)
    finally:
        await server.close()
        if access_log is not None:
            access_log.close()
        close = getattr(forwarder, "close", None)
        if close is not None:
            close()


def _die_with_parent(parent: int) -> None:
    """Asks Linux to SIGKILL this process when its parent dies; exits if that already happened."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %s", ctypes.get_errno())
    if os.getppid() != parent:
        os._exit(1)
