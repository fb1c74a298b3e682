"""When a worker must ask the store for its revision: only after a write, on both stores.

PostgreSQL: LISTEN/NOTIFY (`RevisionListener`). SQLite: a file watch (`FileWatch`).

Every store write on PostgreSQL sends `NOTIFY certgate_revision` in its transaction (delivered at
commit). A `RevisionListener` holds one extra autocommit connection per worker that LISTENs on the
channel; `changed()` drains the notifications that arrived, which reads the local socket only,
no round trip to the database. So a worker polling every 0.25 s queries a remote database only
when some node wrote, plus once every `fallback` seconds in case a notification was lost (the
listening connection broke, or a foreign writer changed the rows without notifying).
"""

from __future__ import annotations

import logging
import os
import time

import psycopg
from sqlalchemy.engine import make_url

from certgate.config.store import REVISION_CHANNEL

log = logging.getLogger("certgate.follower")


class RevisionListener:
    """See the module docstring. Not thread-safe: one per worker, called from one thread."""

    def __init__(self, url: str, fallback: float) -> None:
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._fallback = fallback
        self._connection: psycopg.Connection | None = None
        self._asked = time.monotonic()

    def changed(self) -> bool:
        """True when the revision may have moved since the last True: a notification arrived,
        the listening connection was (re)opened, or `fallback` seconds passed."""
        now = time.monotonic()
        if now - self._asked >= self._fallback or not self._drained():
            self._asked = now
            return True
        return False

    def _drained(self) -> bool:
        """False when a notification arrived or listening failed (then the caller must ask)."""
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(self._conninfo, autocommit=True)
                self._connection.execute(f"LISTEN {REVISION_CHANNEL}")
                return False
            return not sum(1 for _ in self._connection.notifies(timeout=0))
        except psycopg.Error as error:
            log.warning("revision notifications unavailable (%s); polling the store", error)
            self.close()
            return False

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class FileWatch:
    """SQLite: every commit changes the database file or its write-ahead log, so two `stat`s
    (microseconds) tell a worker polling every 0.25 s whether a query (about a millisecond of
    SQLAlchemy) is worth making; every `fallback` seconds it asks regardless, as the listener."""

    def __init__(self, database: str, fallback: float) -> None:
        self._paths = (database, f"{database}-wal")
        self._fallback = fallback
        self._seen: tuple | None = None
        self._asked = time.monotonic()

    def changed(self) -> bool:
        now = time.monotonic()
        seen = tuple(_file_state(path) for path in self._paths)
        if seen != self._seen or now - self._asked >= self._fallback:
            self._seen, self._asked = seen, now
            return True
        return False

    def close(self) -> None:
        """Nothing to release (the same interface as `RevisionListener`)."""


def _file_state(path: str) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino
