"""Several gateway processes on one machine, sharing the listening ports through SO_REUSEPORT.

API:

    pool = WorkerPool(count, build_config, host="0.0.0.0", https_port=8443, http_port=None,
                      poll_interval=1.0, forwarder_factory=None)
    pool.start()          # spawns the workers, returns once every one of them listens
    pool.https_port       # the shared port (also when 0 was asked: reserved by the parent)
    pool.wait()           # blocks until the workers exit;  pool.stop() ends them (SIGTERM)

    run_workers(count, build_config, ...)   # start + wait, stopping the workers on SIGINT/SIGTERM

`build_config(previous)` runs inside each worker: first with `previous=None` (must return a
`GatewayConfig`), then every `poll_interval` seconds in a thread with the config being served;
it returns a new config to swap in (`GatewayServer.update`) or None when nothing changed (e.g. the
store revision did not move). Workers are spawned, not forked, so `build_config` and
`forwarder_factory` must be picklable: module-level functions or `functools.partial` of them.
Each worker runs uvloop and its own `Forwarder` (`forwarder_factory()`, default
`certgate.gateway.upstream.forwarder.Forwarder(limits)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import uvloop

from certgate.gateway.config import GatewayConfig
from certgate.gateway.server import GatewayServer
from certgate.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger("certgate.workers")

BuildConfig = Callable[[GatewayConfig | None], GatewayConfig | None]


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
        self._reserved: list[socket.socket] = []
        self._processes: list[Any] = []

    def start(self, timeout: float = 30.0) -> None:
        if self.https_port is not None:
            self.https_port = self._reserve(self.https_port)
        if self.http_port is not None:
            self.http_port = self._reserve(self.http_port)
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
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self._host, port))
        self._reserved.append(sock)
        return sock.getsockname()[1]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def wait(self) -> None:
        for process in self._processes:
            process.join()

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


def run_workers(count: int, build_config: BuildConfig, **options: Any) -> None:
    """Runs `count` workers until SIGINT/SIGTERM (the `certgate serve --workers N` entry point)."""
    pool = WorkerPool(count, build_config, **options)
    pool.start()
    previous = {
        sig: signal.signal(sig, lambda *_: pool.stop()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        pool.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        pool.stop()


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
) -> None:
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
) -> None:
    if forwarder_factory is None:
        from functools import partial

        from certgate.gateway.upstream.forwarder import Forwarder

        forwarder_factory = partial(Forwarder, limits)
    config = build_config(None)
    if config is None:
        raise WorkerError("build_config(None) returned no configuration")
    forwarder = forwarder_factory()
    server = GatewayServer(config, forwarder=forwarder, limits=limits)
    await server.start(host, https_port, http_port, reuse_port=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready.put(("ready", ""))
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)
            if stop.is_set():
                break
            try:
                fresh = await asyncio.to_thread(build_config, server.config)
            except Exception:
                log.exception("configuration rebuild failed; still serving the previous one")
                continue
            if fresh is not None:
                server.update(fresh)
    finally:
        await server.close()
        close = getattr(forwarder, "close", None)
        if close is not None:
            close()
