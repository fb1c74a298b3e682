"""The CRL cache every worker of every node shares through the store.

A CRL a worker downloaded from a distribution point is written here (DER, when it was fetched, its
nextUpdate), so the other workers and nodes read it instead of downloading it again: one download
per URL and per nextUpdate for the whole installation, and no node owns the chore, so it goes on
when any node dies. The table is bounded: at most `Limits.crl_shared_entries` rows (the oldest
download goes first, expired rows go at every write), each at most `crl_max_bytes`.
Calls are synchronous SQLAlchemy: `CrlFetcher` runs them in a thread, only where it would download.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from certgate.config.store import _aware, crl_cache
from certgate.limits import DEFAULT_LIMITS, Limits


class StoreCrlCache:
    """`certgate.certs.crl.SharedCrls` on the store's engine."""

    def __init__(self, engine: Engine, limits: Limits = DEFAULT_LIMITS) -> None:
        self.engine, self.limits = engine, limits

    def read(self, url: str) -> tuple[bytes, dt.datetime] | None:
        """The DER and nextUpdate last written for `url`, expired or not (the caller decides)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(crl_cache.c.der, crl_cache.c.next_update).where(crl_cache.c.url == url)
            ).first()
        return None if row is None else (bytes(row.der), _aware(row.next_update))

    def write(self, url: str, der: bytes, next_update: dt.datetime) -> None:
        """Stores a CRL just downloaded and verified to parse; drops expired and surplus rows."""
        now = dt.datetime.now(dt.UTC)
        values = {"der": der, "fetched_at": now, "next_update": next_update}
        replace = update(crl_cache).where(crl_cache.c.url == url).values(**values)
        with self.engine.connect() as conn, conn.execution_options(certgate_write=True).begin():
            if not conn.execute(replace).rowcount:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(crl_cache).values(url=url, **values))
                except IntegrityError:  # another worker inserted it first
                    conn.execute(replace)
            conn.execute(delete(crl_cache).where(crl_cache.c.next_update < now))
            kept = (
                select(crl_cache.c.url)
                .order_by(crl_cache.c.fetched_at.desc())
                .limit(self.limits.crl_shared_entries)
            )
            conn.execute(delete(crl_cache).where(crl_cache.c.url.not_in(kept.scalar_subquery())))
