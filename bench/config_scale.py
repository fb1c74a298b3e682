"""Configuration at scale: how long the management API and the Snapshot compiler take (issue 12).

    .venv/bin/python -m bench.config_scale [--operations 1000] [--apis 1000]

Starts `certgate serve` (one worker) on free 127.0.0.1 ports with a fresh data directory and prints:
- creating N operations of one API through the HTTP API, one PUT each (target: 1,000 in < 30 s;
  every PUT compiles the candidate configuration and the gateway rebuilds before it answers);
- deleting that API (with its N operations);
- creating M APIs (one operation each, every other one with an API policy) the same way;
- compiling a Snapshot of those M APIs in this process: cold (a new `SnapshotBuilder`, target
  < 2 s), then warm after one more operation is written (what a worker does after a write).
Each HTTP phase also prints the CPU seconds `certgate serve` spent (`/proc`), which a loaded
shared machine disturbs less than wall-clock time. Not part of the test suite (which asserts that
the work is incremental instead).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.certgate import management_client, start_certgate
from bench.procs import TICK, cpu_ticks, free_port
from certgate.config.datadir import DataDirLayout
from certgate.config.sealing import Sealer, load_key
from certgate.config.store import Store
from certgate.snapshot.compiler import SnapshotBuilder

POLICY = (
    "<policies><inbound><base /><set-header name='X-Api' exists-action='override'>"
    "<value>@(context.Api.Name)</value></set-header></inbound></policies>"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--apis", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="certgate-scale-") as temporary:
        work = Path(temporary)
        (work / "logs").mkdir()
        certgate = start_certgate(work, free_port(), free_port())
        try:
            with management_client(certgate) as client:
                _operations(client, args.operations, certgate.service)
                _apis(client, args.apis, certgate.service)
        finally:
            certgate.service.stop()
        _rebuild(certgate.data_dir, args.apis)


class _Phase:
    """Wall-clock time and the server's CPU time of one phase."""

    def __init__(self, service) -> None:
        self.service = service

    def __enter__(self) -> _Phase:
        self.started, self.ticks = time.perf_counter(), cpu_ticks(self.service.tree())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.cpu = (cpu_ticks(self.service.tree()) - self.ticks) / TICK

    def __str__(self) -> str:
        return f"{self.wall:.1f} s (server CPU {self.cpu:.1f} s)"


def _operations(client, count: int, service) -> None:
    client.put("apis/scale", {"properties": {"path": "scale", "serviceUrl": "https://b.test"}})
    with _Phase(service) as phase:
        for number in range(count):
            operation = {"method": "GET", "urlTemplate": f"/items{number}/{{id}}"}
            client.put(f"apis/scale/operations/op{number}", {"properties": operation})
    print(f"create {count} operations (one PUT each): {phase}")
    with _Phase(service) as phase:
        client.delete("apis/scale")
    print(f"delete the API with {count} operations: {phase}")


def _apis(client, count: int, service) -> None:
    with _Phase(service) as phase:
        for number in range(count):
            api = f"api{number}"
            properties = {"path": api, "serviceUrl": f"https://backend{number}.test"}
            client.put(f"apis/{api}", {"properties": properties})
            operation = {"method": "GET", "urlTemplate": "/things/{id}"}
            client.put(f"apis/{api}/operations/get", {"properties": operation})
            if number % 2 == 0:
                client.put(f"apis/{api}/policies/policy", {"properties": {"value": POLICY}})
    print(f"create {count} APIs with an operation, half with a policy: {phase}")


def _rebuild(data_dir: Path, count: int) -> None:
    layout = DataDirLayout(data_dir)
    store = Store(layout.database_url, Sealer(load_key(layout.data_key)), migrate=False)
    builder = SnapshotBuilder(store, dev_server_pem=layout.dev_server.read_bytes())
    started = time.perf_counter()
    config = builder.build()
    cold = time.perf_counter() - started
    print(f"Snapshot of {len(config.router.apis)} APIs, cold build: {cold:.2f} s")
    store.put("operation", "apis/api0/operations/new", {"method": "GET", "urlTemplate": "/new"})
    before = sum(builder.compiles.values())
    started = time.perf_counter()
    builder.build()
    warm = time.perf_counter() - started
    compiled = sum(builder.compiles.values()) - before
    print(f"rebuild after one operation write: {warm * 1e3:.1f} ms ({compiled} pieces compiled)")
    builder.close()
    store.close()


if __name__ == "__main__":
    main()
