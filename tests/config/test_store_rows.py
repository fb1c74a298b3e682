"""The store: rows, references, cascade, revision, concurrency and persistence, on SQLite and on
PostgreSQL (a private cluster the session starts: tests/postgres.py)."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import inspect

from certgate.config.sealing import Sealer
from certgate.config.store import (
    InUse,
    MissingReference,
    NotFound,
    PreconditionFailed,
    Store,
    metadata,
)

KEY = os.urandom(32)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """SQLite in tmp_path, or a fresh database on the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("postgres").database()


@pytest.fixture
def store(url):
    opened = Store(url, Sealer(KEY))
    yield opened
    opened.close()


def test_put_get_list_and_revision(store):
    assert store.revision() == 0
    row, created = store.put("certificate", "certificates/a", {"x": 1}, secrets={"k": "v"})
    assert created and row.etag and row.secrets == {"k": "v"}
    again, created = store.put("certificate", "certificates/a", {"x": 2})
    assert not created and again.etag != row.etag and again.created == row.created
    store.put("api", "apis/p", {})
    store.put("operation", "apis/p/operations/o", {})
    assert [r.path for r in store.list("certificate")] == ["certificates/a"]
    assert [r.name for r in store.list(parent="apis/p")] == ["o"]
    assert [r.path for r in store.list(parent="")] == ["apis/p", "certificates/a"]
    assert store.get("certificates/a").properties == {"x": 2}
    assert store.get("certificates/a").secrets == {}
    assert store.revision() == 4


def test_if_match_rules(store):
    row, _ = store.put("certificate", "certificates/a", {})
    with pytest.raises(PreconditionFailed):
        store.put("certificate", "certificates/a", {}, if_match='"nope"')
    with pytest.raises(PreconditionFailed):
        store.put("certificate", "certificates/new", {}, if_match="*")
    store.put("certificate", "certificates/a", {}, if_match=f'W/"{row.etag}"')
    with pytest.raises(PreconditionFailed):
        store.delete("certificates/a", if_match=row.etag)
    store.delete("certificates/a", if_match="*")
    with pytest.raises(NotFound):
        store.delete("certificates/a")


def test_references_block_deletion_and_cascade(store):
    store.put("certificate", "certificates/c", {})
    with pytest.raises(MissingReference) as missing:
        store.put("backend", "backends/b", {}, references=["certificates/c", "certificates/x"])
    assert missing.value.missing == ["certificates/x"]
    assert store.get("backends/b") is None
    store.put("backend", "backends/b", {}, references=["certificates/c"])
    store.put("api", "apis/a", {})
    store.put("policy", "apis/a/policies/policy", {}, references=["apis/a", "certificates/c"])
    with pytest.raises(InUse) as in_use:
        store.delete("certificates/c")
    assert in_use.value.referrers == ["apis/a/policies/policy", "backends/b"]
    assert store.delete("apis/a") == ["apis/a", "apis/a/policies/policy"]
    store.put("backend", "backends/b", {})
    assert store.referrers("certificates/c") == []
    store.delete("certificates/c")


def test_concurrent_creates_of_one_path(store):
    results, barrier = [], threading.Barrier(12)

    def writer(number: int) -> None:
        barrier.wait()
        results.append(store.put("certificate", "certificates/same", {"n": number})[1])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 11 + [True]
    assert store.revision() == 12


def test_writers_on_several_nodes_never_lose_a_revision(store, url):
    """Two Store objects (two nodes) writing at once: every write gets its own revision."""
    other = Store(url, Sealer(KEY), migrate=False)
    barrier = threading.Barrier(8)

    def writer(target: Store, number: int) -> None:
        barrier.wait()
        for step in range(5):
            target.put("namedValue", f"namedValues/n{number}-{step}", {"n": step})

    threads = [
        threading.Thread(target=writer, args=(store if n % 2 else other, n)) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.revision() == other.revision() == 40
    assert len(store.list("namedValue")) == 40
    other.close()


def test_cascade_treats_like_wildcards_literally(store):
    store.put("api", "apis/a_b", {})
    store.put("api", "apis/a%b", {})
    store.put("api", "apis/axb", {})
    store.put("operation", "apis/axb/operations/o", {})
    store.put("operation", "apis/a_b/operations/o", {})
    assert store.delete("apis/a_b") == ["apis/a_b", "apis/a_b/operations/o"]
    assert store.delete("apis/a%b") == ["apis/a%b"]
    assert store.get("apis/axb/operations/o") is not None


def test_reopening_keeps_everything_and_secrets_are_sealed_on_disk(store, url, tmp_path):
    store.put("certificate", "certificates/a", {"subject": "CN=a"}, secrets={"pem": "SECRET-KEY"})
    store.close()
    reopened = Store(url, Sealer(KEY))
    assert reopened.get("certificates/a").secrets == {"pem": "SECRET-KEY"}
    assert reopened.revision() == 1
    assert set(inspect(reopened.engine).get_table_names()) >= {"resources", "refs", "revision"}
    if url.startswith("sqlite"):
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert b"CN=a" in raw and b"SECRET-KEY" not in raw
    reopened.close()


def test_migrations_match_the_table_definitions(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
