"""Two live management APIs (source and target) and the real `certgate` CLI pointed at each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli_commands import Cli
from tests.management.server import management_server


@pytest.fixture
def source(tmp_path: Path):
    with management_server(tmp_path / "source") as running:
        yield running


@pytest.fixture
def target(tmp_path: Path):
    with management_server(tmp_path / "target") as running:
        yield running


@pytest.fixture
def source_cli(source, tmp_path: Path) -> Cli:
    return Cli(source, tmp_path)


@pytest.fixture
def target_cli(target, tmp_path: Path) -> Cli:
    return Cli(target, tmp_path)
