"""A private, real `redis-server` on 127.0.0.1 for the cache and counter tests.

`RedisServer.start()` runs `redis-server --port <free> --save '' --appendonly no` with a password
(so tests can prove it never leaks) and returns once Redis logs that it accepts connections;
`stop()` ends it. `redis_server` is one per session; `redis_url` gives each test an empty Redis.
The root conftest loads this module as a plugin.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest
import redis

from tests.e2e.serve import free_port

PASSWORD = "h18-redis-s3cret-pw"
START_DEADLINE = 15.0


class RedisServer:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/test installs it)")
        for _ in range(3):  # a free port can be taken before redis binds it
            port = free_port()
            process = subprocess.Popen(
                [
                    *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                    *("--appendonly", "no", "--requirepass", PASSWORD, "--logfile", ""),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            if _ready(process):
                return cls(process, port)
            process.kill()
            process.wait()
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def flush(self) -> None:
        with redis.Redis.from_url(self.url, socket_timeout=5) as client:
            client.flushall()

    def keys(self, pattern: str) -> list[bytes]:
        with redis.Redis.from_url(self.url, socket_timeout=5) as client:
            return sorted(client.keys(pattern))


def _ready(process: subprocess.Popen) -> bool:
    """Reads redis's log until it accepts connections (True) or exits (False), with a deadline."""
    ready = threading.Event()

    def read() -> None:  # keeps draining the log so that redis never blocks on a full pipe
        for line in process.stdout:  # ends when the process exits
            if b"Ready to accept connections" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(START_DEADLINE)
    return process.poll() is None and ready.is_set()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, which the test may stop."""
    server = RedisServer.start()
    yield server
    server.stop()
