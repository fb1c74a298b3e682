"""Leases (certgate.config.leases) on SQLite and PostgreSQL: one holder at a time, renewal, expiry
of a silent holder, release at a clean stop, and one winner among nodes asking at once."""

from __future__ import annotations

import os
import threading

import pytest

from certgate.config.leases import Lease
from certgate.config.sealing import Sealer
from certgate.config.store import Store
from tests.keyvault.bao import wait_until


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").database()
    opened = Store(url, Sealer(os.urandom(32)))
    yield opened
    opened.close()


def test_one_holder_renews_and_the_others_wait(store):
    first, second = (Lease(store.engine, "chore", node, 30) for node in ("a", "b"))
    assert first.hold() and not second.hold()
    assert first.hold() and not second.hold()  # renewal keeps it
    first.release()
    assert second.hold() and not first.hold()


def test_a_silent_holder_loses_the_lease_when_it_expires(store):
    silent = Lease(store.engine, "chore", "dead", 0.3)
    waiting = Lease(store.engine, "chore", "alive", 30)
    assert silent.hold() and not waiting.hold()
    assert wait_until(waiting.hold, timeout=10)
    assert not silent.hold()


def test_nodes_asking_at_once_get_one_holder(store):
    barrier, won = threading.Barrier(8), []

    def ask(node: str) -> None:
        lease = Lease(store.engine, "chore", node, 30)
        barrier.wait()
        if lease.hold():
            won.append(node)

    threads = [threading.Thread(target=ask, args=(f"n{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_a_lease_needs_a_positive_timeout(store):
    with pytest.raises(ValueError, match="> 0 seconds"):
        Lease(store.engine, "chore", "a", 0)
