"""The admin token check, with failed attempts limited per client address.

The management API's bearer check and the admin UI's sign-in share one `AdminToken`, so an address
has one budget for both. `FailureLimiter` is the sans-I/O part (the clock is injected): a fixed
window per address opened by its first failed attempt; once the window holds `failures` failures
the address is refused, its token not even compared, until the window ends. Refusals do not count
as failures, so waiting out the window always works. Successful attempts are never counted. At most
`tracked` addresses are kept; a new one evicts the one whose window opened first.

The counts live in the process serving the management API (the supervisor of `certgate serve`):
each node counts on its own.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from certgate.limits import Limits
from certgate.observe.metrics import ADMIN_AUTH_FAILURES

log = logging.getLogger("certgate.management")

SIGNED_IN = "certgate.ui.signed_in"
"""ASGI scope key the admin UI sets on requests it forwards for a signed-in session: their token
is the UI's own and is still compared, but the address's failures do not hold them back."""


class _Window:
    __slots__ = ("failures", "start")

    def __init__(self, start: float) -> None:
        self.start, self.failures = start, 0


class FailureLimiter:
    """At most `failures` failed attempts per address in a `window` of seconds (see module)."""

    def __init__(
        self,
        failures: int,
        window: float,
        tracked: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures, self._window, self._tracked, self._clock = failures, window, tracked, clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()  # by window start, oldest first

    def __len__(self) -> int:
        return len(self._windows)

    def wait(self, address: str) -> float:
        """Seconds before `address` may try again; 0 when it may try now."""
        entry = self._windows.get(address)
        if entry is None or entry.failures < self._failures:
            return 0.0
        return max(entry.start + self._window - self._clock(), 0.0)

    def fail(self, address: str) -> bool:
        """Counts a failed attempt; True when it is the one that reaches the limit (once per
        address and window: the moment to log)."""
        now = self._clock()
        while self._windows:
            oldest = next(iter(self._windows.values()))
            if oldest.start + self._window > now:
                break
            self._windows.popitem(last=False)
        entry = self._windows.get(address)
        if entry is None:
            entry = self._windows[address] = _Window(now)
            while len(self._windows) > self._tracked:
                self._windows.popitem(last=False)
        entry.failures += 1
        return entry.failures == self._failures


@dataclass(frozen=True, slots=True)
class Verdict:
    """`accepted`, or refused: `retry_after` whole seconds (at least 1) when the address is
    blocked and the token was not compared, None when the token was wrong."""

    accepted: bool
    retry_after: int | None = None

    code = "TooManyFailedAuthentications"

    @property
    def message(self) -> str:
        """What a blocked caller is told (API and UI alike)."""
        return f"Too many wrong admin tokens from this address: try again in {self.retry_after} s."


ACCEPTED = Verdict(True)
WRONG = Verdict(False)


class AdminToken:
    """Compares presented admin tokens in constant time behind a `FailureLimiter`; logs one
    warning per blocked address and window (never the presented token) and counts refusals in
    `certgate_admin_auth_failures_total`."""

    def __init__(self, token: str, limits: Limits) -> None:
        self.token = token.encode()
        self._limits = limits
        self._limiter = FailureLimiter(
            limits.admin_auth_failures, limits.admin_auth_window, limits.admin_auth_tracked
        )

    def check(self, request: Request, presented: bytes) -> Verdict:
        """The verdict on `presented`, the token `request` carries. A request the admin UI
        forwards for a signed-in session (`SIGNED_IN`) is not blocked by its address's failures;
        an empty token guesses nothing and is not counted."""
        address = request.client.host if request.client else ""
        if not request.scope.get(SIGNED_IN) and (wait := self._limiter.wait(address)):
            ADMIN_AUTH_FAILURES.labels("blocked").inc()
            return Verdict(False, max(1, math.ceil(wait)))
        if not presented:
            return WRONG
        if secrets.compare_digest(presented, self.token):
            return ACCEPTED
        ADMIN_AUTH_FAILURES.labels("invalid").inc()
        if self._limiter.fail(address):
            log.warning(
                "admin token: %d failed attempts from %s within %g s; it is refused (429) "
                "for the next %d s",
                self._limits.admin_auth_failures,
                address,
                self._limits.admin_auth_window,
                math.ceil(self._limiter.wait(address)),
            )
        return WRONG
