"""What each gateway worker serves: one row per (node, worker) in the store, with a heartbeat.

A worker writes its row when it starts, after every compile (the revision it now serves, or the
error that kept it on the previous one) and every heartbeat interval. A row is *live* while its
`expires` time (the last heartbeat plus a few intervals, chosen by the worker) lies ahead: a worker
that was killed, or a node that stopped, simply stops renewing it. Rows are keyed by node so that
several nodes can share one store (issue 14); `certgate serve` forgets its node's rows at start and
at a clean stop. Status writes never move the configuration revision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from certgate.config.store import worker_status

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class WorkerStatus:
    """One worker's report. `revision` is -1 until its first compile succeeded."""

    node: str
    worker: str
    pid: int
    revision: int
    error_message: str | None
    error_revision: int | None
    started: dt.datetime
    heartbeat: dt.datetime
    expires: dt.datetime
    version: str | None = None

    def live(self, now: dt.datetime) -> bool:
        return now < self.expires

    def as_json(self, now: dt.datetime) -> dict:
        error = None
        if self.error_message is not None:
            error = {"message": self.error_message, "revision": self.error_revision}
        return {
            "node": self.node,
            "worker": self.worker,
            "pid": self.pid,
            "live": self.live(now),
            "revision": self.revision,
            "lastError": error,
            "started": iso(self.started),
            "heartbeat": iso(self.heartbeat),
            "version": self.version,
        }


def report(engine: Engine, status: WorkerStatus) -> None:
    """Creates or replaces the worker's row (one short transaction)."""
    values = {
        "pid": status.pid,
        "revision": status.revision,
        "error_message": (status.error_message or "")[:MAX_ERROR_CHARS] or None,
        "error_revision": status.error_revision,
        "started": status.started,
        "heartbeat": status.heartbeat,
        "expires": status.expires,
        "version": status.version,
    }
    key = (worker_status.c.node == status.node) & (worker_status.c.worker == status.worker)
    with engine.begin() as conn:
        if conn.execute(update(worker_status).where(key).values(**values)).rowcount == 0:
            conn.execute(
                worker_status.insert().values(node=status.node, worker=status.worker, **values)
            )


def read_all(engine: Engine) -> list[WorkerStatus]:
    query = select(worker_status).order_by(worker_status.c.node, worker_status.c.worker)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        WorkerStatus(
            node=row.node,
            worker=row.worker,
            pid=row.pid,
            revision=row.revision,
            error_message=row.error_message,
            error_revision=row.error_revision,
            started=_aware(row.started),
            heartbeat=_aware(row.heartbeat),
            expires=_aware(row.expires),
            version=row.version,
        )
        for row in rows
    ]


def forget_node(engine: Engine, node: str) -> None:
    """Removes every row of `node` (its supervisor starts or stops cleanly)."""
    with engine.begin() as conn:
        conn.execute(delete(worker_status).where(worker_status.c.node == node))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
