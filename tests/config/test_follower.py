"""RevisionFollower, a worker's view of the store, driven as WorkerPool drives it (no processes)."""

from __future__ import annotations

import pytest

from certgate.config import status
from certgate.config.bootstrap import initialise_data_dir
from certgate.snapshot.follower import RevisionFollower


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv("CERTGATE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CERTGATE_DATA_KEY", raising=False)


def _row(store) -> status.WorkerStatus:
    (row,) = status.read_all(store.engine)
    return row


def test_a_revision_is_reported_once_the_worker_serves_it(tmp_path):
    data = initialise_data_dir(tmp_path / "data")
    store = data.store
    follower = RevisionFollower(data.root, "node-a", heartbeat=60)
    first = follower(None)
    assert first.revision == store.revision() and _row(store).revision == first.revision
    assert follower(first) is None  # nothing moved
    store.put("api", "apis/a", {"path": "a", "serviceUrl": "https://b.example"})
    fresh = follower(first)
    assert fresh is not None and fresh.revision == store.revision()
    assert _row(store).revision == first.revision  # compiled, not yet swapped in by the worker
    assert follower(fresh) is None
    row = _row(store)
    assert row.revision == fresh.revision and row.error_message is None and row.node == "node-a"
    assert row.live(status.now())


def test_a_revision_that_does_not_compile_is_reported_once_and_not_retried(tmp_path):
    data = initialise_data_dir(tmp_path / "data")
    store = data.store
    follower = RevisionFollower(data.root, "node-a", heartbeat=60)
    served = follower(None)
    with store.engine.begin() as conn:  # a damaged row, as an older or foreign writer left it
        conn.exec_driver_sql(
            "INSERT INTO resources (path, kind, parent, name, properties, etag, created, updated)"
            " VALUES ('apis/x', 'api', '', 'x', '{not json', 'e', '2026-01-01', '2026-01-01')"
        )
        conn.exec_driver_sql("UPDATE revision SET value = value + 1")
    broken = store.revision()
    assert follower(served) is None
    row = _row(store)
    assert row.revision == served.revision and row.error_revision == broken
    assert row.error_message.startswith("JSONDecodeError")
    heartbeat = row.heartbeat
    assert follower(served) is None and _row(store).heartbeat == heartbeat  # no retry, no write
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM resources WHERE path = 'apis/x'")
        conn.exec_driver_sql("UPDATE revision SET value = value + 1")
    repaired = follower(served)
    assert repaired is not None and repaired.revision == broken + 1
    follower(repaired)
    assert _row(store).revision == broken + 1
    assert _row(store).error_revision == broken  # the last error stays visible
