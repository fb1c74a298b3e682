"""Leases: a chore that must run on one node only (key vault refreshes) goes to the lease holder.

A lease is a row `(name, holder, expires)` in the shared store. `Lease.hold()` renews it when this
node holds it, takes it when it is free or expired, and otherwise answers False; the holder calls
it at least every `renew_every` seconds (a third of the timeout), so a live holder keeps it and a
dead one loses it `timeout` seconds after its last renewal, when the next node asking takes over.
Expiry times come from each node's clock: nodes must keep their clocks in sync (NTP) to well
within the timeout.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from certgate.config.store import leases

log = logging.getLogger("certgate.leases")

KEY_VAULT_REFRESH = "key-vault-refresh"


class Lease:
    """One named lease as seen by one `holder` (the node name)."""

    def __init__(self, engine: Engine, name: str, holder: str, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("a lease timeout must be > 0 seconds")
        self.engine, self.name, self.holder, self.timeout = engine, name, holder, timeout
        self.renew_every = timeout / 3
        self._held = False

    @property
    def held(self) -> bool:
        """Whether the last `hold()` kept or took the lease."""
        return self._held

    def hold(self) -> bool:
        """True while this holder has the lease (renewed now); one short transaction."""
        now = dt.datetime.now(dt.UTC)
        values = {"holder": self.holder, "expires": now + dt.timedelta(seconds=self.timeout)}
        mine = leases.c.name == self.name
        claimable = or_(leases.c.holder == self.holder, leases.c.expires < now)
        with self.engine.connect() as conn, conn.execution_options(certgate_write=True).begin():
            held = conn.execute(update(leases).where(mine, claimable).values(**values)).rowcount
            if not held and conn.execute(select(leases.c.name).where(mine)).first() is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(leases).values(name=self.name, **values))
                    held = 1
                except IntegrityError:
                    held = 0  # another node created it first
        if bool(held) != self._held:
            log.info("%s lease %s by node %s", self.name, "taken" if held else "lost", self.holder)
        self._held = bool(held)
        return self._held

    def release(self) -> None:
        """Gives the lease up at a clean stop, so another node takes over without waiting."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(leases).where(leases.c.name == self.name, leases.c.holder == self.holder)
            )
        self._held = False
