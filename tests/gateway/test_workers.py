"""Worker processes (uvloop, SO_REUSEPORT): serving, following configuration changes, and staying
in bounded memory while big bodies stream through. The default size is 256 MiB each way;
CERTGATE_STREAM_BYTES=1073741824 runs the 1 GiB check (about 12 s)."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
from pathlib import Path

import pytest

from certgate.gateway.ports import AddressInUse
from certgate.gateway.workers import WorkerPool
from tests import pki
from tests.gateway.support import curl, file_config, run, write_file_config

STREAM_BYTES = int(os.environ.get("CERTGATE_STREAM_BYTES", str(256 * 1024 * 1024)))


def api(backend_url: str, path: str = "echo") -> tuple[dict, dict]:
    return (
        {path: {"path": path, "serviceUrl": backend_url, "protocols": ["https"]}},
        {path: {"all": {"method": "*", "urlTemplate": "/*"}}},
    )


@pytest.fixture
async def workers(tmp_path, backend, certs):
    config = tmp_path / "gateway.json"
    server = pki.server(certs.ca, "localhost")
    write_file_config(config, 1, server, *api(backend.url))
    pool = WorkerPool(
        2, functools.partial(file_config, str(config)), https_port=0, poll_interval=0.2
    )
    await asyncio.to_thread(pool.start)
    pool.config_file = config
    pool.server_cert = server
    yield pool
    await asyncio.to_thread(pool.stop)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_workers_share_the_port_and_follow_config_changes(workers, backend, certs, tmp_path):
    first = await curl(workers.https_port, "/echo/x", ca=certs.ca_file, tmp=tmp_path)
    assert first.status == 200
    apis, operations = api(backend.url, "later")
    write_file_config(workers.config_file, 2, workers.server_cert, apis, operations)
    deadline = time.monotonic() + 1.5  # every worker polls within its interval
    seen = []
    while time.monotonic() < deadline:
        reply = await curl(workers.https_port, "/later/x", ca=certs.ca_file, tmp=tmp_path)
        seen.append(reply.status)
        if seen[-4:] == [200] * 4:
            break
    assert seen[-4:] == [200] * 4
    assert len(set(workers.pids)) == 2


async def test_streaming_upload_and_download_stay_in_bounded_memory(workers, certs):
    base = f"https://localhost:{workers.https_port}/echo"
    common = f"--cacert {certs.ca_file} --resolve localhost:{workers.https_port}:127.0.0.1 -sS"
    up = await run(
        "sh",
        "-c",
        f"head -c {STREAM_BYTES} /dev/zero | curl {common} --http1.1 -T - {base}/upload",
        timeout=300,
    )
    down = await run(
        "sh",
        "-c",
        f"curl {common} -o /dev/null -w '%{{size_download}}' {base}/download/{STREAM_BYTES}",
        timeout=300,
    )
    assert up[0] == 0, up[2]
    assert f'"received": {STREAM_BYTES}'.encode() in up[1]
    assert down[1] == str(STREAM_BYTES).encode()
    for pid in workers.pids:
        assert peak_rss_mb(pid) < 200, f"worker {pid} peaked at {peak_rss_mb(pid):.0f} MB"


def test_a_pool_refuses_a_port_another_gateway_listens_on():
    """Another gateway's worker holds the port with SO_REUSEPORT: joining it would split traffic."""
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen()
    port = other.getsockname()[1]
    pool = WorkerPool(1, functools.partial(file_config, "never-read.json"), https_port=port)
    try:
        with pytest.raises(AddressInUse, match=f"address already in use: 127.0.0.1:{port}"):
            pool.start()
        assert pool.pids == []
    finally:
        other.close()
