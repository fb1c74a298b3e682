"""The `management_server` fixture: a live HTTPS management API on a fresh store in tmp_path."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests.pki`, the one certificate factory

import pytest  # noqa: E402

from tests.management.server import ManagementServer, management_server  # noqa: E402


@pytest.fixture
def server(tmp_path: Path):
    with management_server(tmp_path / "data") as running:
        yield running


@pytest.fixture
def client(server: ManagementServer):
    with server.client(timeout=30) as http:
        yield http
