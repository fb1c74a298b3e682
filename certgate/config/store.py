"""The configuration store: generic resources keyed by path, a reference index, a revision counter.

SQLAlchemy 2 Core only, and nothing SQLite-specific in the queries, so PostgreSQL can take over.
Every write first bumps the revision row: that statement takes the write lock (SQLite) or the row
lock (PostgreSQL), which serialises writers, so concurrent PUTs of one path see each other and
exactly one of them creates it. One write (`Store.writing`) may put and delete many rows (an API
imported with its operations): they commit together, under one revision, or not at all.
"""

from __future__ import annotations

import builtins  # `Store.list` hides the built-in in the class body
import datetime as dt
import json
import secrets as _secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url

from certgate.armnames import stored_name
from certgate.config.sealing import Sealer

metadata = MetaData()
REVISION_CHANNEL = "certgate_revision"  # PostgreSQL NOTIFY channel of every write: config.notify

resources = Table(
    "resources",
    metadata,
    Column("path", String(1024), primary_key=True),
    Column("kind", String(64), nullable=False, index=True),
    Column("parent", String(1024), nullable=False, index=True),
    Column("name", String(256), nullable=False),
    Column("properties", Text, nullable=False),
    Column("sealed", LargeBinary, nullable=True),
    Column("etag", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
)

refs = Table(
    "refs",
    metadata,
    Column("from_path", String(1024), primary_key=True),
    Column("to_path", String(1024), primary_key=True, index=True),
)

revision_table = Table(
    "revision",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", Integer, nullable=False),
)

worker_status = Table(  # written by gateway workers, read by GET /status: certgate.config.status
    "worker_status",
    metadata,
    Column("node", String(256), primary_key=True),
    Column("worker", String(64), primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("error_message", Text, nullable=True),
    Column("error_revision", Integer, nullable=True),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("heartbeat", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
    Column("version", String(64), nullable=True),
)

leases = Table(  # one node does a shared chore while it renews its lease: certgate.config.leases
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
)

crl_cache = Table(  # CRLs one worker downloaded, read by all workers: certgate.config.crlcache
    "crl_cache",
    metadata,
    Column("url", String(2048), primary_key=True),
    Column("der", LargeBinary, nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False, index=True),
    Column("next_update", DateTime(timezone=True), nullable=False),
)


class StoreError(Exception):
    """Base of the store's refusals; each names the path involved."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class NotFound(StoreError):
    def __init__(self, path: str) -> None:
        super().__init__(path, f"'{path}' does not exist")


class PreconditionFailed(StoreError):
    def __init__(self, path: str) -> None:
        super().__init__(path, f"'{path}' has changed: the If-Match ETag does not match")


class InUse(StoreError):
    """Deleting `path` would leave dangling references; `referrers` lists every referring path."""

    def __init__(self, path: str, referrers: list[str]) -> None:
        super().__init__(path, f"'{path}' is referenced by {', '.join(referrers)}")
        self.referrers = referrers


class MissingReference(StoreError):
    """A write names resources that do not exist (checked inside the write's transaction)."""

    def __init__(self, path: str, missing: list[str]) -> None:
        super().__init__(path, f"'{path}' references missing {', '.join(missing)}")
        self.missing = missing


@dataclass(frozen=True)
class Resource:
    """One stored resource. `secrets` are already unsealed; never log or return them."""

    kind: str
    path: str
    parent: str
    name: str
    properties: dict
    etag: str
    created: dt.datetime
    updated: dt.datetime
    secrets: dict = field(default_factory=dict, repr=False)


class Reader:
    """Reads one consistent state of the store: committed, or a write's candidate before commit."""

    def __init__(self, store: Store, conn: Connection) -> None:
        self._store, self._conn = store, conn

    def revision(self) -> int:
        value = self._conn.execute(
            select(revision_table.c.value).where(revision_table.c.id == 1)
        ).scalar()
        return int(value or 0)

    def rows(self, known: Mapping[str, Resource] = {}) -> dict[str, Resource]:
        """Every resource by path; rows of `known` whose ETag did not change are reused as they
        are, so reading a large configuration after a small change decodes only what changed."""
        etags = self._conn.execute(select(resources.c.path, resources.c.etag)).all()
        result: dict[str, Resource] = {}
        changed = []
        for path, etag in etags:
            cached = known.get(path)
            if cached is not None and cached.etag == etag:
                result[path] = cached
            else:
                changed.append(path)
        for chunk in _chunks(changed):
            query = select(resources).where(resources.c.path.in_(chunk))
            for row in self._conn.execute(query):
                result[row.path] = self._store._resource(row)
        return result


class WriteCheck(Protocol):
    """Judges a write inside its transaction: `before` sees the state the write starts from,
    `after` the candidate state; an exception from either rolls the write back."""

    def before(self, reader: Reader) -> None: ...

    def after(self, reader: Reader) -> None: ...


class Writer:
    """Writes rows inside one transaction of `Store.writing`; nothing is visible to others, and
    nothing stays, unless the whole transaction commits."""

    def __init__(self, store: Store, conn: Connection) -> None:
        self._store, self._conn = store, conn

    def paths(self, kind: str, parent: str) -> list[str]:
        """Paths of the `kind` resources directly below `parent`, as this transaction sees them."""
        query = select(resources.c.path).where(
            resources.c.kind == kind, resources.c.parent == parent
        )
        return list(self._conn.execute(query.order_by(resources.c.path)).scalars())

    def put(
        self,
        kind: str,
        path: str,
        properties: dict,
        *,
        secrets: dict | None = None,
        references: Iterable[str] = (),
        if_match: str | None = None,
    ) -> tuple[Resource, bool]:
        """Creates or replaces `path` with its references; returns the row and whether it was new.

        `if_match` is an ETag or `*`; a mismatch (or any If-Match on a missing row) raises
        PreconditionFailed. A reference to a missing resource raises MissingReference.
        """
        conn = self._conn
        parent, name = split_path(path)
        wanted = sorted(set(references) - {path})
        now = dt.datetime.now(dt.UTC)
        sealed = self._store._sealer.seal(path, secrets) if secrets else None
        body = json.dumps(properties, separators=(",", ":"), sort_keys=True)
        current = conn.execute(
            select(resources.c.etag, resources.c.created).where(resources.c.path == path)
        ).first()
        _check_etag(path, current.etag if current else None, if_match)
        missing = _missing(conn, wanted)
        if missing:
            raise MissingReference(path, missing)
        etag = _secrets.token_hex(8)
        values = dict(
            kind=kind,
            parent=parent,
            name=name,
            properties=body,
            sealed=sealed,
            etag=etag,
            updated=now,
        )
        if current:
            conn.execute(update(resources).where(resources.c.path == path).values(**values))
            created_at = _aware(current.created)
        else:
            conn.execute(insert(resources).values(path=path, created=now, **values))
            created_at = now
        conn.execute(delete(refs).where(refs.c.from_path == path))
        if wanted:
            conn.execute(insert(refs), [{"from_path": path, "to_path": t} for t in wanted])
        resource = Resource(
            kind=kind,
            path=path,
            parent=parent,
            name=name,
            properties=json.loads(body),
            etag=etag,
            created=created_at,
            updated=now,
            secrets=dict(secrets or {}),
        )
        return resource, current is None

    def delete(
        self, path: str, *, if_match: str | None = None, linked_kinds: Iterable[str] = ()
    ) -> list[str]:
        """Deletes `path`, every resource below it and every resource of `linked_kinds` named as
        it (a product's link to a deleted API); returns the deleted paths.

        Raises NotFound, PreconditionFailed, or InUse listing referrers outside the deleted set.
        """
        conn = self._conn
        current = conn.execute(select(resources.c.etag).where(resources.c.path == path)).first()
        if current is None:
            raise NotFound(path)
        _check_etag(path, current.etag, if_match)
        doomed = [path, *_descendants(conn, path), *_linked(conn, path, linked_kinds)]
        gone = set(doomed)
        outside = [r for r in _referrers(conn, doomed) if r not in gone]
        if outside:
            raise InUse(path, outside)
        for chunk in _chunks(doomed):
            conn.execute(delete(refs).where(refs.c.from_path.in_(chunk)))
            conn.execute(delete(resources).where(resources.c.path.in_(chunk)))
        return doomed


def split_path(path: str) -> tuple[str, str]:
    """`apis/a/operations/o` -> (`apis/a`, `o`); `certificates/c` -> (``, `c`)."""
    parts = path.split("/")
    if len(parts) <= 2:
        return "", parts[-1]
    return "/".join(parts[:-2]), parts[-1]


class Store:
    """Thread-safe access to the configuration; one instance per process and database."""

    def __init__(self, url: str, sealer: Sealer, *, migrate: bool = True) -> None:
        self.url = url
        self._sealer = sealer
        self._engine = _engine(url)
        if migrate:
            from certgate.config.migrations import upgrade

            upgrade(self._engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    # -- reads -------------------------------------------------------------------------------
    def get(self, path: str) -> Resource | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(resources).where(resources.c.path == path)).first()
        return self._resource(row) if row else None

    def list(self, kind: str | None = None, parent: str | None = None) -> list[Resource]:
        """Resources ordered by path; `None` filters nothing, `parent=""` means top-level."""
        query = select(resources).order_by(resources.c.path)
        if kind is not None:
            query = query.where(resources.c.kind == kind)
        if parent is not None:
            query = query.where(resources.c.parent == parent)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self._resource(row) for row in rows]

    def names_in(self, collection: str) -> builtins.list[str]:
        """Names of the resources in `collection` (`certificates`, `apis/a/operations`)."""
        with self._engine.connect() as conn:
            return _names_in(conn, collection)

    def canonical(self, path: str) -> str | None:
        """`path` as stored, each name matched as ARM matches names (case-insensitively);
        None when nothing is stored there."""
        with self._engine.connect() as conn:
            if conn.execute(select(resources.c.path).where(resources.c.path == path)).first():
                return path
            parts, found = path.split("/"), ""
            for depth in range(1, len(parts), 2):
                collection = f"{found}/{parts[depth - 1]}" if found else parts[depth - 1]
                name = stored_name(parts[depth], _names_in(conn, collection))
                if name is None:
                    return None
                found = f"{collection}/{name}"
            return found or None

    def revision(self) -> int:
        with self._engine.connect() as conn:
            return Reader(self, conn).revision()

    @contextmanager
    def reading(self) -> Iterator[Reader]:
        """One read transaction: the revision and the rows read through it agree."""
        with self._engine.connect() as conn, conn.begin():
            yield Reader(self, conn)

    def referrers(self, path: str) -> builtins.list[str]:
        """Paths of resources that reference `path`."""
        with self._engine.connect() as conn:
            return _referrers(conn, [path])

    def references(self, path: str) -> builtins.list[str]:
        """Paths that the resource at `path` references."""
        query = select(refs.c.to_path).where(refs.c.from_path == path).order_by(refs.c.to_path)
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    # -- writes ------------------------------------------------------------------------------
    @contextmanager
    def writing(self, check: WriteCheck | None = None) -> Iterator[Writer]:
        """One write transaction: what is put and deleted through the `Writer` commits together,
        with one revision bump, or not at all (an exception rolls everything back). `check`
        judges the state the write starts from and, before commit, the state it produces."""
        with self._write() as conn:
            if check is not None:
                check.before(Reader(self, conn))
            yield Writer(self, conn)
            if check is not None:
                check.after(Reader(self, conn))

    def put(
        self,
        kind: str,
        path: str,
        properties: dict,
        *,
        secrets: dict | None = None,
        references: Iterable[str] = (),
        if_match: str | None = None,
        check: WriteCheck | None = None,
    ) -> tuple[Resource, bool]:
        """`Writer.put` as a write of its own; `check` judges the result before it commits."""
        with self.writing(check) as writer:
            return writer.put(
                kind, path, properties, secrets=secrets, references=references, if_match=if_match
            )

    def delete(
        self,
        path: str,
        *,
        if_match: str | None = None,
        linked_kinds: Iterable[str] = (),
        check: WriteCheck | None = None,
    ) -> builtins.list[str]:
        """`Writer.delete` as a write of its own; `check` judges the result before it commits."""
        with self.writing(check) as writer:
            return writer.delete(path, if_match=if_match, linked_kinds=linked_kinds)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.execution_options(certgate_write=True).begin():
            conn.execute(
                update(revision_table)
                .where(revision_table.c.id == 1)
                .values(value=revision_table.c.value + 1)
            )
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"NOTIFY {REVISION_CHANNEL}")  # delivered at commit
            yield conn

    def _resource(self, row) -> Resource:
        return Resource(
            kind=row.kind,
            path=row.path,
            parent=row.parent,
            name=row.name,
            properties=json.loads(row.properties),
            etag=row.etag,
            created=_aware(row.created),
            updated=_aware(row.updated),
            secrets=self._sealer.unseal(row.path, row.sealed) if row.sealed else {},
        )


def store_url(value: str) -> str:
    """The SQLAlchemy URL of a `--store` value: `postgresql://...` (psycopg 3) or `sqlite:///...`.

    Raises ValueError naming the accepted forms; the message never repeats a password.
    """
    scheme, sep, rest = value.partition("://")
    if not sep or not rest:
        raise ValueError("--store must be a URL: postgresql://USER@HOST:PORT/DB or sqlite:///FILE")
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        return value
    raise ValueError(f"--store: unsupported database '{scheme}' (use postgresql:// or sqlite://)")


def shown_url(url: str) -> str:
    """`url` for logs and errors: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # SQLite only: WAL lets readers (gateway workers) proceed while the management API writes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # Writers take the lock at BEGIN so a read-then-write cannot fail on lock upgrade.
        writing = conn.get_execution_options().get("certgate_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


def _check_etag(path: str, current: str | None, if_match: str | None) -> None:
    if if_match is None:
        return
    if current is None or (if_match.strip() != "*" and not _etag_matches(current, if_match)):
        raise PreconditionFailed(path)


def _etag_matches(current: str, header: str) -> bool:
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == current:
            return True
    return False


def _names_in(conn: Connection, collection: str) -> list[str]:
    parent = split_path(f"{collection}/_")[0]
    paths = conn.execute(select(resources.c.path).where(resources.c.parent == parent)).scalars()
    return [p.rpartition("/")[2] for p in paths if p.rpartition("/")[0] == collection]


def _missing(conn: Connection, paths: list[str]) -> list[str]:
    found: set[str] = set()
    for chunk in _chunks(paths):
        query = select(resources.c.path).where(resources.c.path.in_(chunk))
        found.update(conn.execute(query).scalars())
    return [p for p in paths if p not in found]


def _descendants(conn: Connection, path: str) -> list[str]:
    prefix = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
    query = select(resources.c.path).where(resources.c.path.like(prefix, escape="\\"))
    return list(conn.execute(query.order_by(resources.c.path)).scalars())


def _linked(conn: Connection, path: str, kinds: Iterable[str]) -> list[str]:
    kinds = list(kinds)
    if not kinds:
        return []
    _, name = split_path(path)
    query = select(resources.c.path).where(resources.c.kind.in_(kinds), resources.c.name == name)
    return [p for p in conn.execute(query.order_by(resources.c.path)).scalars() if p != path]


def _referrers(conn: Connection, paths: list[str]) -> list[str]:
    found: set[str] = set()
    for chunk in _chunks(paths):
        query = select(refs.c.from_path).where(refs.c.to_path.in_(chunk))
        found.update(conn.execute(query).scalars())
    return sorted(found)


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """Bounded IN lists: SQLite limits bound parameters and expression depth per statement."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
