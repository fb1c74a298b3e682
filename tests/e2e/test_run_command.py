"""The README's run path: `certgate serve` prints a curl line that works as printed, keeps its
secrets private, and keeps certificates across a restart."""

from __future__ import annotations

import base64
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
    assert served.token not in served.announced + served.log.read_text()
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


def test_plain_http_listener(served: Served) -> None:
    assert f"http://127.0.0.1:{served.http_port}" in served.announced
    status, body = served.curl("/nothing", scheme="http")
    assert status == 404 and json.loads(body)["statusCode"] == 404


def test_secret_files_are_private(served: Served) -> None:
    for name in ("admin.token", "data.key", "dev-ca.key", "dev-server.pem"):
        mode = stat.S_IMODE((served.data_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"


def test_restart_keeps_certificates_and_token(served: Served) -> None:
    """Runs last in this module: it restarts the module's server."""
    data = base64.b64encode(pki.issue("kept across restarts").pfx(None)).decode()
    with served.http() as http:
        added = http.put("/certificates/kept", json={"properties": {"data": data}})
    assert added.status_code == 201, added.text
    token, before = served.token, served.process
    served.restart()
    assert before.returncode == 0  # SIGTERM is a clean shutdown
    assert served.token == token
    with served.http() as http:
        shown = http.get("/certificates/kept")
    assert shown.status_code == 200, shown.text
    assert shown.json()["properties"]["thumbprint"] == added.json()["properties"]["thumbprint"]
