"""Expiry warnings: 30, 14 and 7 days before a certificate in use expires, once a day each.

`ExpiryWarnings(state_file).check(uses, now)` is pure apart from the log and its small JSON state
file (which thumbprint got which warning when), so a restart within the day does not repeat a
warning. A certificate used in several places (stored, as a hostname's, by a backend) gets one
warning naming every use. The supervisor of `certgate serve` runs it every
`--expiry-check-interval` seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from certgate.observe.inventory import InUse

log = logging.getLogger("certgate.expiry")

THRESHOLDS_DAYS = (7, 14, 30)
REPEAT = dt.timedelta(days=1)


class ExpiryWarnings:
    def __init__(self, state_file: Path | None = None) -> None:
        self._file = state_file
        self._last: dict[str, str] = self._load()

    def check(self, uses: Iterable[InUse], now: dt.datetime) -> list[str]:
        """Logs (and returns) the warnings due at `now`."""
        by_thumbprint: dict[str, list[InUse]] = {}
        for use in uses:
            by_thumbprint.setdefault(use.thumbprint, []).append(use)
        warnings = []
        for thumbprint, group in sorted(by_thumbprint.items()):
            not_after = group[0].not_after
            left = not_after - now
            tier = next((d for d in THRESHOLDS_DAYS if left <= dt.timedelta(days=d)), None)
            if tier is None:
                continue
            key = f"{thumbprint}/{tier}"
            last = self._last.get(key)
            if last is not None and now - dt.datetime.fromisoformat(last) < REPEAT:
                continue
            self._last[key] = now.isoformat()
            warnings.append(_message(group, tier, left, not_after))
        for message in warnings:
            log.warning("%s", message)
        if warnings:
            self._save()
        return warnings

    def _load(self) -> dict[str, str]:
        if self._file is None:
            return {}
        try:
            data = json.loads(self._file.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save(self) -> None:
        if self._file is None:
            return
        temporary = self._file.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(self._last))
            os.replace(temporary, self._file)
        except OSError as error:
            log.warning("could not record the expiry warnings in %s: %s", self._file, error)


def _message(group: list[InUse], tier: int, left: dt.timedelta, not_after: dt.datetime) -> str:
    uses = ", ".join(f"{use.kind} {use.id} ({use.source})" for use in group)
    subject = next((use.subject for use in group if use.subject), "")
    when = not_after.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    named = f"{subject} " if subject else ""
    head = f"certificate {named}(thumbprint {group[0].thumbprint})"
    if left <= dt.timedelta(0):
        return f"{head} expired at {when} ({tier}-day warning); used as: {uses}"
    return f"{head} expires in {left.days} days at {when} ({tier}-day warning); used as: {uses}"
