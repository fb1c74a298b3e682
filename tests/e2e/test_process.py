"""`certgate serve` as processes: a supervisor with the management API, gateway workers that die
with it, ports that a second instance cannot share, worker status and the CLI's write-then-wait."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from certgate.gateway.ports import bind_exclusive
from tests.e2e.serve import (
    CERTGATE,
    DATA_DIR,
    UNVERIFIED,
    EchoBackend,
    Served,
    client_env,
    deny_when,
    free_port,
    listeners,
)

WORKERS = 2
GONE_WITHIN = 10.0  # seconds for every worker to exit once the supervisor is killed
MANAGEMENT_BOUND = 3.0  # seconds a management GET may take while every worker is saturated
SATURATING_CLIENTS = 12  # concurrent gateway requests, 0.5-1 s of policy CPU each
LOOP = "@{ long s = 0; for (int i = 0; i &lt; 90000; i++) { s += i; } return s.ToString(); }"
CPU_HEAVY_POLICY = f"""<policies>
  <inbound>
    <base />
    <set-variable name="a" value="{LOOP}" />
    <set-variable name="b" value="{LOOP}" />
    <set-variable name="c" value="{LOOP}" />
    <return-response><set-status code="200" reason="OK" /></return-response>
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[Served]:
    server = Served.start(tmp_path_factory.mktemp("process"), workers=WORKERS)
    yield server
    server.stop()


def _wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.05)  # the polling interval of a condition with a deadline


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its (new) parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            if ppid == pid:
                found |= {int(entry.name)} | _children(int(entry.name))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(served: Served) -> dict:
    return json.loads(served.ok("status", "--output", "json"))


def _serve_again(cwd: Path, management_port: int, gateway_port: int):
    cwd.mkdir(parents=True, exist_ok=True)
    argv = [CERTGATE, "serve", "--data-dir", DATA_DIR, "--workers", "1"]
    argv += ["--management-port", str(management_port), "--gateway-port", str(gateway_port)]
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=60, env=client_env()
    )


# -- lifecycle -------------------------------------------------------------------------------


def test_sigkill_of_serve_leaves_no_worker_behind(tmp_path) -> None:
    served = Served.start(tmp_path / "killed", workers=WORKERS)
    try:
        workers = {w["pid"] for w in _status(served)["properties"]["workers"]}
        descendants = _children(served.process.pid)
        assert len(workers) == WORKERS and workers <= descendants
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=10)
        _wait_until(
            lambda: not any(_alive(pid) for pid in descendants),
            GONE_WITHIN,
            f"every process of the killed serve exits: {descendants}",
        )
        assert listeners(served.gateway_port) == 0
        for port in (served.gateway_port, served.management_port):
            bind_exclusive("127.0.0.1", port).close()
    finally:
        served.stop()


def test_a_stopped_worker_times_the_wait_out_then_a_dead_one_stops_serve(tmp_path) -> None:
    """--wait-timeout, the heartbeat's liveness, the worker watch and --shutdown-timeout."""
    heartbeat = 1.0  # live for 5 s after the last heartbeat: far longer than one CLI call
    options = ("--heartbeat-interval", str(heartbeat), "--shutdown-timeout", "1")
    served = Served.start(tmp_path / "stalled", workers=WORKERS, options=options)
    try:
        workers = {w["worker"]: w["pid"] for w in _status(served)["properties"]["workers"]}
        descendants = _children(served.process.pid)
        os.kill(workers["0"], signal.SIGSTOP)  # alive, listening, but it cannot follow the store
        create = ("api", "create", "late", "--path", "late", "--service-url", "http://127.0.0.1:9")
        waited = served.cli(*create, "--wait-timeout", "0.5")
        assert waited.returncode != 0
        assert "after 0.5 s these gateway workers do not serve it yet" in waited.stderr
        assert "/0 (serves" in waited.stderr and "/1 (serves" not in waited.stderr
        served.ok("status", "--wait", "--wait-timeout", "30")  # once worker 0 is no longer live
        live = {w["worker"]: w["live"] for w in _status(served)["properties"]["workers"]}
        assert live == {"0": False, "1": True}
        os.kill(workers["1"], signal.SIGKILL)
        assert served.process.wait(timeout=30) == 1  # worker 0 is still stopped: killed after 1 s
        assert f"gateway worker exited (pid {workers['1']}, exit code -9)" in served.log.read_text()
        _wait_until(
            lambda: not any(_alive(pid) for pid in descendants), GONE_WITHIN, "every worker exits"
        )
    finally:
        for pid in workers.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        served.stop()


def test_workers_that_do_not_start_in_time_fail_serve_in_one_line(tmp_path) -> None:
    cwd = tmp_path / "slow"
    cwd.mkdir()
    argv = [CERTGATE, "serve", "--data-dir", DATA_DIR, "--worker-start-timeout", "0.001"]
    argv += ["--management-port", str(free_port()), "--gateway-port", str(free_port())]
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=60, env=client_env()
    )
    assert result.returncode == 1
    assert "certgate serve: workers did not start within 0.001 s" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_second_serve_on_the_gateway_port_fails_naming_it(gateway: Served, tmp_path) -> None:
    result = _serve_again(tmp_path / "second", free_port(), gateway.gateway_port)
    assert result.returncode != 0
    assert f"address already in use: 127.0.0.1:{gateway.gateway_port}" in result.stderr
    assert "--gateway-port" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert listeners(gateway.gateway_port) == WORKERS  # nobody joined the first one's workers
    assert [w["live"] for w in _status(gateway)["properties"]["workers"]] == [True] * WORKERS


def test_a_second_serve_on_the_management_port_fails_naming_it(gateway: Served, tmp_path) -> None:
    result = _serve_again(tmp_path / "third", gateway.management_port, free_port())
    assert result.returncode != 0
    assert f"address already in use: 127.0.0.1:{gateway.management_port}" in result.stderr
    assert "--management-port" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert gateway.process.poll() is None


# -- status and write-then-wait --------------------------------------------------------------


def test_status_shows_every_worker_serving_the_store_revision(gateway: Served) -> None:
    gateway.ok("status", "--wait")
    document = _status(gateway)
    revision = document["properties"]["revision"]
    workers = document["properties"]["workers"]
    assert len(workers) == WORKERS
    assert all(w["live"] and w["revision"] == revision for w in workers)
    # a compile error of an earlier revision (another test of this module broke one) may stay shown
    assert all(not w["lastError"] or w["lastError"]["revision"] < revision for w in workers)
    assert len({w["pid"] for w in workers}) == WORKERS
    table = gateway.ok("status").splitlines()
    assert table[0] == f"store revision: {revision}"
    assert table[1].split()[:5] == ["node", "worker", "pid", "live", "revision"]
    rows = [line.split() for line in table[2:]]
    assert sorted(row[1] for row in rows) == [str(i) for i in range(WORKERS)]
    assert all(row[3] == "yes" and row[4] == str(revision) for row in rows)


async def _statuses(served: Served, path: str, count: int) -> list[int]:
    """`count` requests on fresh connections (SO_REUSEPORT spreads them over the workers)."""
    context = ssl.create_default_context(cafile=served.dev_ca)

    async def one() -> int:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", served.gateway_port, ssl=context, server_hostname="localhost"
        )
        request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        line = await reader.readline()
        writer.close()
        return int(line.split()[1])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_readme_sequence_is_served_by_every_worker_when_each_command_returns(
    gateway: Served, backend: EchoBackend, tmp_path
) -> None:
    policy = tmp_path / "deny.xml"
    policy.write_text(deny_when(UNVERIFIED))
    gateway.ok("api", "create", "seq", "--path", "seq", "--service-url", backend.url)
    gateway.ok("operation", "add", "seq", "all", "--url-template", "/*")
    assert set(await _statuses(gateway, "/seq/x", 16)) == {200}
    gateway.ok("policy", "set", "--api", "seq", str(policy))
    assert set(await _statuses(gateway, "/seq/x", 16)) == {403}
    revision = _status(gateway)["properties"]["revision"]
    assert {w["revision"] for w in _status(gateway)["properties"]["workers"]} == {revision}
    gateway.ok("api", "delete", "seq")
    assert set(await _statuses(gateway, "/seq/x", 16)) == {404}


def test_no_wait_returns_at_once_and_the_header_names_the_revision(
    gateway: Served, backend: EchoBackend
) -> None:
    before = _status(gateway)["properties"]["revision"]
    gateway.ok("api", "create", "nowait", "--path", "nowait", "--service-url", backend.url,
               "--no-wait")  # fmt: skip
    with gateway.http() as http:
        api = {"displayName": "h", "path": "header", "serviceUrl": backend.url}
        written = http.put("/apis/header", json={"properties": api})
    assert int(written.headers["X-Certgate-Revision"]) == before + 2
    gateway.ok("status", "--wait")
    gateway.ok("api", "delete", "nowait")
    gateway.ok("api", "delete", "header")


def _corrupt(served: Served) -> None:
    """A row no compiler accepts, as a damaged or foreign write would leave it."""
    with sqlite3.connect(served.data_dir / "certgate.sqlite", timeout=30) as db:
        db.execute(
            "INSERT INTO resources (path, kind, parent, name, properties, etag, created, updated)"
            " VALUES ('apis/corrupt', 'api', '', 'corrupt', '{not json', 'x',"
            " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")


def _repair(served: Served) -> None:
    with sqlite3.connect(served.data_dir / "certgate.sqlite", timeout=30) as db:
        db.execute("DELETE FROM resources WHERE path = 'apis/corrupt'")
        db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")


def test_a_revision_that_does_not_compile_is_reported_and_the_wait_fails(
    gateway: Served,
) -> None:
    gateway.ok("status", "--wait")
    served_before = _status(gateway)["properties"]["revision"]
    _corrupt(gateway)
    try:
        waited = gateway.cli("status", "--wait", "--wait-timeout", "30")
        assert waited.returncode != 0
        broken = served_before + 1
        assert f"could not compile revision {broken}" in waited.stderr
        assert "Traceback" not in waited.stderr
        workers = _status(gateway)["properties"]["workers"]
        assert {w["revision"] for w in workers} == {served_before}  # still the last good one
        assert {w["lastError"]["revision"] for w in workers} == {broken}
        assert all("JSONDecodeError" in w["lastError"]["message"] for w in workers)
        assert f"revision {broken}: JSONDecodeError" in gateway.ok("status")
    finally:
        _repair(gateway)
    gateway.ok("status", "--wait")


# -- the management API in its own process ---------------------------------------------------


async def _saturate(served: Served, stop: asyncio.Event) -> None:
    """Sends the CPU-heavy request again as soon as the previous one is answered."""
    context = ssl.create_default_context(cafile=served.dev_ca)
    request = b"GET /heavy/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", served.gateway_port, ssl=context, server_hostname="localhost"
        )
        writer.write(request)
        await reader.read()
        writer.close()


def _timed_get(served: Served) -> tuple[float, int]:
    with served.http() as http:
        started = time.monotonic()
        response = http.get("/apis")
        return time.monotonic() - started, response.status_code


async def test_management_answers_while_every_worker_is_saturated(
    gateway: Served, backend: EchoBackend, tmp_path
) -> None:
    policy = tmp_path / "heavy.xml"
    policy.write_text(CPU_HEAVY_POLICY)
    gateway.ok("api", "create", "heavy", "--path", "heavy", "--service-url", backend.url)
    gateway.ok("operation", "add", "heavy", "all", "--url-template", "/*")
    gateway.ok("policy", "set", "--api", "heavy", str(policy))
    pids = [w["pid"] for w in _status(gateway)["properties"]["workers"]]
    before = {pid: _cpu_seconds(pid) for pid in pids}
    stop = asyncio.Event()
    load = [asyncio.create_task(_saturate(gateway, stop)) for _ in range(SATURATING_CLIENTS)]
    try:
        await asyncio.to_thread(
            _wait_until,
            lambda: all(_cpu_seconds(pid) - before[pid] > 1.0 for pid in pids),
            60,
            "every worker is busy with the CPU-heavy policy",
        )
        timings = [await asyncio.to_thread(_timed_get, gateway) for _ in range(5)]
        assert not any(task.done() for task in load), "the load stopped early"
    finally:
        stop.set()
        for task in load:
            task.cancel()
        await asyncio.gather(*load, return_exceptions=True)
    assert all(code == 200 for _, code in timings)
    assert max(seconds for seconds, _ in timings) < MANAGEMENT_BOUND, timings
    gateway.ok("api", "delete", "heavy")
