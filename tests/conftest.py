"""Suite-wide checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
REQUIRED = ("apim-policies", "x509-limbo/limbo.json", "nist-pkits/pkits.json")

pytest_plugins = ["tests.redis_server"]  # redis_server, redis_url, private_redis fixtures


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI, missing conformance data is a failure: the conformance tests would only skip."""
    if not os.environ.get("CI"):
        return
    missing = [name for name in REQUIRED if not (CORPORA / name).exists()]
    if missing:
        where = CORPORA.resolve()
        raise pytest.UsageError(f"CI needs the corpora in {where}; missing: {', '.join(missing)}")


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL cluster for the session (tests/postgres.py); started on first use."""
    from tests.postgres import PostgresCluster

    cluster = PostgresCluster()
    yield cluster
    cluster.stop()
