"""LISTEN/NOTIFY on PostgreSQL: a worker asks the shared store for the revision only after a write
(or every full-poll interval), so many workers polling every 0.25 s cost the database nothing
while nothing changes."""

from __future__ import annotations

from sqlalchemy import event

from certgate.config.bootstrap import initialise_data_dir
from certgate.config.notify import RevisionListener
from certgate.snapshot.follower import RevisionFollower
from tests.keyvault.bao import wait_until

API = {"path": "a", "serviceUrl": "https://b.example"}


def test_the_listener_wakes_on_a_write_from_any_node(postgres, tmp_path, monkeypatch):
    monkeypatch.delenv("CERTGATE_DATA_KEY", raising=False)
    url = postgres.database()
    store = initialise_data_dir(tmp_path / "data", database_url=url).store
    listener = RevisionListener(url, fallback=3600)
    assert listener.changed()  # opening: the caller reads the revision once
    assert not listener.changed()
    store.put("api", "apis/a", API)
    assert wait_until(listener.changed, timeout=10)
    assert not listener.changed()
    listener.close()
    assert listener.changed()  # a lost connection means "ask", then it listens again
    assert not listener.changed()
    store.close()


def test_an_idle_follower_sends_no_query_and_a_write_reaches_it(postgres, tmp_path, monkeypatch):
    monkeypatch.delenv("CERTGATE_DATA_KEY", raising=False)
    monkeypatch.delenv("CERTGATE_ADMIN_TOKEN", raising=False)
    url = postgres.database()
    data = initialise_data_dir(tmp_path / "data", database_url=url)
    follower = RevisionFollower(data.root, "node-a", heartbeat=3600, store_url=url, full_poll=3600)
    served = follower(None)
    assert follower(served) is None  # opens the listening connection and reads once
    statements = []
    engine = follower._builder.store.engine
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for _ in range(20):
        assert follower(served) is None
    assert statements == []
    data.store.put("api", "apis/a", API)  # another node's write
    fresh = wait_until(lambda: follower(served), timeout=10)
    assert fresh.revision == data.store.revision()
    data.store.close()
