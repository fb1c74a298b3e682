"""Admin UI sessions: random ids mapped to a CSRF token, with an absolute lifetime and a cap.

Sans-I/O (the clock is injected) so expiry and eviction are testable without a browser. Sessions
live in the management process's memory: a restart signs everyone out, which is the safe default.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str
    expires: float

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and secrets.compare_digest(
            presented.encode(), self.csrf.encode()
        )


class Sessions:
    """At most `max_sessions` live sessions; signing in beyond that ends the oldest one."""

    def __init__(
        self, lifetime: float, max_sessions: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lifetime, self._max, self._clock = lifetime, max_sessions, clock
        self._live: OrderedDict[str, Session] = OrderedDict()

    def create(self) -> Session:
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._clock() + self._lifetime
        )
        self._live[session.id] = session
        while len(self._live) > self._max:
            self._live.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id; an expired one is dropped and None returned."""
        if not session_id:
            return None
        session = self._live.get(session_id)
        if session is not None and session.expires <= self._clock():
            del self._live[session_id]
            return None
        return session

    def end(self, session_id: str) -> None:
        self._live.pop(session_id, None)
