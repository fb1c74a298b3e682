"""The status page over the management API's worker status resource (`GET /status`, issue 12).

Skipped on a tree without that resource (`certgate.config.status`); the page then shows the store
revision only, which tests/ui/test_walkthroughs.py covers.
"""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from tests.ui.browser import row

status = pytest.importorskip("certgate.config.status")


def worker(name: str, revision: int, error: str | None = None) -> object:
    now = status.now()
    return status.WorkerStatus(
        node="node-a",
        worker=name,
        pid=4242,
        revision=revision,
        error_message=error,
        error_revision=revision + 1 if error else None,
        started=now,
        heartbeat=now,
        expires=now + dt.timedelta(hours=1),
    )


def test_workers_their_revisions_and_the_last_compile_error(admin, server):
    engine = server.store.engine
    status.report(engine, worker("w1", 7))
    status.report(engine, worker("w2", 6, "Error in element 'set-header' <b>on line 3</b>"))
    admin.get_by_role("link", name="Status", exact=True).click()
    expect(row(admin, "w1")).to_contain_text("7")
    expect(row(admin, "w2")).to_contain_text("revision 7")
    expect(admin.locator("#compile-error")).to_have_text(
        "Revision 7 (worker w2): Error in element 'set-header' <b>on line 3</b>"
    )
