"""The README's run path: `certgate serve` prints a curl line that works as printed, keeps its
secrets private, and keeps certificates across a restart."""

from __future__ import annotations

import json
import stat
import subprocess

from tests import pki
from tests.e2e.serve import Served, client_env


def _printed_curl(announced: str) -> str:
    lines = [line.strip() for line in announced.splitlines() if line.strip().startswith("curl ")]
    assert len(lines) == 1, announced
    return lines[0]


def test_printed_urls_and_curl_line_work_as_printed(served: Served) -> None:
    assert served.management_url in served.announced
    assert f"https://127.0.0.1:{served.gateway_port}" in served.announced
    assert "certgate-data/admin.token" in served.announced
    assert "certgate-data/dev-ca.pem" in served.announced
    result = subprocess.run(
        ["bash", "-c", _printed_curl(served.announced)],
        cwd=served.cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env=client_env(),
    )
    assert result.returncode == 0, result.stderr
    collection = json.loads(result.stdout)
    assert isinstance(collection["value"], list)
    assert collection["count"] == len(collection["value"])


def test_secret_files_are_private(served: Served) -> None:
    for name in ("admin.token", "data.key"):
        mode = stat.S_IMODE((served.data_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"


def test_restart_keeps_certificates_and_token(tmp_path) -> None:
    pfx = tmp_path / "kept.pfx"
    pfx.write_bytes(pki.issue("kept across restarts").pfx(None))
    first = Served.start(tmp_path / "run")
    try:
        first.ok("cert", "add", "kept", "--pfx", str(pfx))
        token = first.token
        thumbprint = json.loads(first.ok("cert", "show", "kept", "--output", "json"))
    finally:
        first.stop()
    second = Served.start(tmp_path / "run")
    try:
        assert second.token == token
        shown = json.loads(second.ok("cert", "show", "kept", "--output", "json"))
        assert shown["properties"]["thumbprint"] == thumbprint["properties"]["thumbprint"]
    finally:
        second.stop()
