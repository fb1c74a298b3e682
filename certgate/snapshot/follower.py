"""A gateway worker follows the store: a new Snapshot when the revision moves, and its status row.

`RevisionFollower(root, node, heartbeat, store_url=...)` is the `build_config` that `certgate serve`
hands to `WorkerPool`: it is pickled into each spawned worker, opens the store there on its first
call, and is then called every poll interval (in a thread) with the configuration being served.
It compiles only when the store's revision moved, and never twice for a revision that failed to
compile, so a broken configuration costs one compile per write, not one per poll. It writes the
worker's row (`certgate.config.status`) when the revision the worker serves changes, when a compile
fails, and every `heartbeat` seconds. On PostgreSQL it asks for the revision only after a write
notified it (`certgate.config.notify`), or every `full_poll` seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from certgate import __version__
from certgate.config import status
from certgate.config.datadir import DataDirLayout
from certgate.config.notify import FileWatch, RevisionListener
from certgate.config.sealing import Sealer, load_key
from certgate.config.store import Store
from certgate.gateway.config import GatewayConfig
from certgate.gateway.workers import worker_index
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.observe.metrics import COMPILE_FAILURES
from certgate.snapshot.compiler import SnapshotBuilder

log = logging.getLogger("certgate.follower")

LIVE_HEARTBEATS = 5
"""A row stays live for this many heartbeat intervals after its last write."""


class RevisionFollower:
    """See the module docstring."""

    def __init__(
        self,
        root: Path,
        node: str,
        heartbeat: float,
        limits: Limits = DEFAULT_LIMITS,
        *,
        store_url: str | None = None,
        full_poll: float = 5.0,
    ) -> None:
        self._root = root
        self._store_url = store_url
        self._full_poll = full_poll
        self._listener: RevisionListener | FileWatch | None = None
        self._limits = limits
        self._node = node
        self._heartbeat = heartbeat
        self._builder: SnapshotBuilder | None = None
        self._serving = -1
        self._failed_revision: int | None = None
        self._error: tuple[str, int] | None = None
        self._started: dt.datetime | None = None
        self._reported: tuple[int, dt.datetime] | None = None

    def __call__(self, previous: GatewayConfig | None) -> GatewayConfig | None:
        """`previous` is what the worker serves now: a revision is reported as served only once
        the worker swapped it in (one call after it compiled), never while it is being swapped."""
        builder = self._builder or self._open()
        if previous is not None:
            self._serving = previous.revision
        if previous is None or self._listener is None or self._listener.changed():
            revision = builder.store.revision()
        else:
            revision = builder.revision  # no write was notified: nothing to ask the store
        config = None
        if previous is None or revision not in (builder.revision, self._failed_revision):
            config = self._compile(builder, revision, first=previous is None)
        if self._due():
            self._report(builder)
        return config

    def _open(self) -> SnapshotBuilder:
        self._started = status.now()
        layout = DataDirLayout(self._root)
        url = self._store_url or layout.database_url
        store = Store(url, Sealer(load_key(layout.data_key)), migrate=False)
        if store.engine.dialect.name == "postgresql":
            self._listener = RevisionListener(url, self._full_poll)
        elif store.engine.url.database:
            self._listener = FileWatch(store.engine.url.database, self._full_poll)
        self._builder = SnapshotBuilder(
            store,
            dev_server_pem=layout.dev_server.read_bytes(),
            limits=self._limits,
            node=self._node,
        )
        return self._builder

    def _compile(
        self, builder: SnapshotBuilder, revision: int, *, first: bool
    ) -> GatewayConfig | None:
        try:
            config = builder.build()
        except Exception as error:
            COMPILE_FAILURES.inc()
            self._failed_revision = revision
            self._error = (f"{type(error).__name__}: {error}", revision)
            self._report(builder)
            if first:
                raise
            log.exception(
                "configuration revision %s did not compile; still serving %s",
                revision,
                self._serving,
            )
            return None
        self._failed_revision = None
        if first:
            self._serving = config.revision  # served from the moment the worker listens
        return config

    def _due(self) -> bool:
        """When the served revision changed, or a heartbeat is due."""
        if self._reported is None or self._reported[0] != self._serving:
            return True
        return (status.now() - self._reported[1]).total_seconds() >= self._heartbeat

    def _report(self, builder: SnapshotBuilder) -> None:
        now = status.now()
        message, failed = self._error or (None, None)
        row = status.WorkerStatus(
            node=self._node,
            worker=str(worker_index()),
            pid=os.getpid(),
            revision=self._serving,
            error_message=message,
            error_revision=failed,
            started=self._started or now,
            heartbeat=now,
            expires=now + dt.timedelta(seconds=self._heartbeat * LIVE_HEARTBEATS),
            version=__version__,
        )
        try:
            status.report(builder.store.engine, row)
        except Exception:
            log.exception("could not write this worker's status")
            return
        self._reported = (self._serving, now)
