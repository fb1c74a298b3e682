"""`certgate serve` as a real subprocess, and the `certgate` CLI pointed at it.

`Served.start(cwd)` runs `.venv/bin/certgate serve --data-dir certgate-data` from `cwd` (as the
README does) on free ports, waits until the management API answers, and exposes its URLs, token,
dev CA and a `cli(*args)` runner. `stop()` sends SIGTERM and waits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from certgate.client import REVISION_HEADER, ManagementClient
from tests.gateway.support import ClientFiles

CERTGATE = str(Path(sys.executable).parent / "certgate")
DATA_DIR = "certgate-data"
START_DEADLINE = 30.0
UNVERIFIED = "context.Request.Certificate == null || !context.Request.Certificate.Verify()"


def deny_when(condition: str) -> str:
    """A policy document answering 403 when the C# `condition` holds (the README's shape)."""
    return f"""<policies>
  <inbound>
    <base />
    <choose>
      <when condition="@({condition})">
        <return-response><set-status code="403" reason="Invalid client certificate" />
        </return-response>
      </when>
    </choose>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>
"""


def free_port() -> int:
    """A port nothing listens on right now (bound to port 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:`port` (one per worker with SO_REUSEPORT)."""
    local = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == local and row.split()[3] == "0A")


def client_env() -> dict[str, str]:
    """The environment for real clients: no proxies, no token override from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTGATE_")}
    env["NO_PROXY"] = "*"
    return env


class PortTaken(RuntimeError):
    """Another process bound a port chosen for serve."""


@dataclass
class Served:
    cwd: Path
    process: subprocess.Popen
    management_port: int
    gateway_port: int
    http_port: int | None
    log: Path
    workers: int = 1
    announced: str = field(default="")
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        cwd: Path,
        *,
        workers: int = 1,
        http: bool = False,
        options: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> Served:
        """Starts serve from `cwd` (with more serve `options` and `env` variables, e.g. the
        shared CERTGATE_DATA_KEY of several nodes); returns once the API answers and every
        worker listens.

        A free port can be taken between choosing it and serve binding it: then it retries.
        """
        for _ in range(2):
            try:
                return cls._start(cwd, workers, http, options, env or {})
            except PortTaken:
                continue
        return cls._start(cwd, workers, http, options, env or {})

    @classmethod
    def _start(
        cls, cwd: Path, workers: int, http: bool, options: tuple[str, ...], env: dict[str, str]
    ) -> Served:
        cwd.mkdir(parents=True, exist_ok=True)
        management, gateway = free_port(), free_port()
        http_port = free_port() if http else None
        argv = [CERTGATE, "serve", "--data-dir", DATA_DIR, "--management-port", str(management)]
        argv += ["--gateway-port", str(gateway), "--workers", str(workers)]
        argv += ["--log-level", "warning", *options]
        if http_port is not None:
            argv += ["--http-port", str(http_port)]
        log = cwd / f"serve-{management}.log"
        with (cwd / f"serve-{management}.out").open("wb") as out, log.open("wb") as err:
            process = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=err, env={**client_env(), **env}
            )
        served = cls(
            cwd, process, management, gateway, http_port, log, workers, options=options, env=env
        )
        served._wait_until_ready(workers)
        served.announced = (cwd / f"serve-{management}.out").read_text()
        return served

    def _wait_until_ready(self, workers: int) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.log.read_text()
                if "address already in use" in error.lower():
                    raise PortTaken(error[-300:])
                raise RuntimeError(f"certgate serve exited: {error[-2000:]}")
            if self._answers() and listeners(self.gateway_port) >= workers:
                return
            time.sleep(0.05)  # polling interval of the readiness condition, not synchronisation
        self.stop()
        raise RuntimeError(f"certgate serve was not ready within {START_DEADLINE}s")

    def _answers(self) -> bool:
        try:
            httpx.get(f"{self.management_url}/openapi.json", verify=False, timeout=1)
        except httpx.HTTPError:
            return False
        return True

    @property
    def data_dir(self) -> Path:
        return self.cwd / DATA_DIR

    @property
    def management_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    @property
    def gateway_url(self) -> str:
        return f"https://localhost:{self.gateway_port}"

    @property
    def token(self) -> str:
        if token := self.env.get("CERTGATE_ADMIN_TOKEN"):
            return token
        return (self.data_dir / "admin.token").read_text().strip()

    @property
    def dev_ca(self) -> Path:
        return self.data_dir / "dev-ca.pem"

    def http(self, *, wait: bool = True) -> httpx.Client:
        """An httpx client of the management API (token and dev CA set). With `wait`, each write
        returns once every gateway worker serves it, as the CLI does (`X-Certgate-Revision`)."""
        return httpx.Client(
            base_url=self.management_url,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=ssl.create_default_context(cafile=self.dev_ca),
            timeout=30,
            event_hooks={"response": [self._wait_until_served]} if wait else {},
        )

    def _wait_until_served(self, response: httpx.Response) -> None:
        revision = response.headers.get(REVISION_HEADER)
        if revision is not None:
            with ManagementClient(self.management_url, self.token, str(self.dev_ca)) as client:
                client.wait_for_revision(int(revision), START_DEADLINE)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Runs `certgate ARGS --management-url URL --data-dir DIR`; never raises on failure."""
        argv = [CERTGATE, *args, "--management-url", self.management_url]
        argv += ["--data-dir", str(self.data_dir)]
        return subprocess.run(
            argv,
            cwd=self.cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**client_env(), **self.env},
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """`cli` that must succeed; returns stdout."""
        result = self.cli(*args, stdin=stdin)
        assert result.returncode == 0, f"certgate {' '.join(args)}: {result.stderr}"
        return result.stdout

    def curl(
        self,
        path: str,
        identity: ClientFiles | None = None,
        *,
        host: str = "localhost",
        cacert: Path | None = None,
        scheme: str = "https",
        headers: tuple[str, ...] = (),
    ) -> tuple[int, str]:
        """One request through the gateway with the real curl: (HTTP status, body)."""
        port = self.gateway_port if scheme == "https" else self.http_port
        argv = ["curl", "-s", "-w", "\n%{http_code}", "--max-time", "20"]
        for header in headers:
            argv += ["-H", header]
        argv += ["--cacert", str(cacert or self.dev_ca)]
        argv += ["--resolve", f"{host}:{port}:127.0.0.1"]
        if identity is not None:
            argv += ["--cert", str(identity.cert), "--key", str(identity.key)]
        argv.append(f"{scheme}://{host}:{port}{path}")
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=client_env())
        body, _, status = result.stdout.rpartition("\n")
        return int(status or 0), body

    def curl_status(self, path: str, identity: ClientFiles | None = None, **options) -> int:
        return self.curl(path, identity, **options)[0]

    def s_client(self, servername: str, *args: str) -> str:
        """`openssl s_client -msg` against the gateway with this SNI; its whole output."""
        argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{self.gateway_port}", "-msg"]
        result = subprocess.run(
            [*argv, "-servername", servername, *args],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
            env=client_env(),
        )
        return result.stdout + result.stderr

    def restart(self) -> None:
        """Stops and starts again from the same directory (on new ports)."""
        self.stop()
        fresh = Served.start(
            self.cwd,
            workers=self.workers,
            http=self.http_port is not None,
            options=self.options,
            env=self.env,
        )
        self.__dict__.update(fresh.__dict__)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class EchoBackend:
    """A plain-HTTP backend in a thread: answers every request with its method and path as JSON."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> EchoBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _echo(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        echoed = {"method": self.command, "path": self.path}
        for name in ("Client-Cert", "Client-Cert-Chain"):  # RFC 9440, when the gateway sends it
            if name in self.headers:
                echoed[name] = self.headers[name]
        body = json.dumps(echoed).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _echo

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: test output stays readable."""
