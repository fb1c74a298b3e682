"""`GET /status` and the revision on write responses, through the real HTTPS management API."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from certgate.client import RevisionProgress
from certgate.config import status

ARM = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ApiManagement/service/gw"
API = {"displayName": "a", "path": "a", "serviceUrl": "https://backend.example"}


def _row(worker: str, revision: int, *, expires_in: float = 60.0, error=None):
    now = status.now()
    message, failed = error or (None, None)
    return status.WorkerStatus(
        node="node-a",
        worker=worker,
        pid=1000 + int(worker),
        revision=revision,
        error_message=message,
        error_revision=failed,
        started=now,
        heartbeat=now,
        expires=now + dt.timedelta(seconds=expires_in),
    )


def test_every_write_answers_with_the_revision_that_includes_it(server, client):
    created = client.put("/apis/a", json={"properties": API})
    assert created.status_code == 201
    first = int(created.headers["X-Certgate-Revision"])
    assert first == server.store.revision()
    operation = {"displayName": "o", "method": "GET", "urlTemplate": "/o"}
    added = client.put("/apis/a/operations/o", json={"properties": operation})
    assert int(added.headers["X-Certgate-Revision"]) == first + 1
    patched = client.patch("/apis/a", json={"properties": {"displayName": "b"}})
    assert int(patched.headers["X-Certgate-Revision"]) == first + 2
    deleted = client.delete("/apis/a", headers={"If-Match": "*"})
    assert deleted.status_code == 204  # ARM's long-running API delete, done at once
    assert int(deleted.headers["X-Certgate-Revision"]) == first + 3 == server.store.revision()
    refused = client.put("/apis/b", json={"properties": {"path": 5}})
    assert refused.status_code == 400 and "X-Certgate-Revision" not in refused.headers
    assert "X-Certgate-Revision" not in client.get("/apis").headers


@pytest.mark.parametrize("path", ["/status", f"{ARM}/status?api-version=2024-05-01"])
def test_status_lists_workers_and_whether_they_are_live(server, client, path):
    status.report(server.store.engine, _row("0", 3))
    status.report(server.store.engine, _row("1", 2, expires_in=-1, error=("boom", 3)))
    status.report(server.store.engine, _row("0", 4))  # a worker replaces its own row
    body = client.get(path).json()
    assert body["name"] == "status" and body["id"].endswith("/status")
    assert body["properties"]["revision"] == server.store.revision()
    workers = body["properties"]["workers"]
    assert [(w["worker"], w["revision"], w["live"]) for w in workers] == [
        ("0", 4, True),
        ("1", 2, False),
    ]
    assert workers[1]["lastError"] == {"message": "boom", "revision": 3}
    assert workers[0]["lastError"] is None and workers[0]["pid"] == 1000


def test_status_needs_the_token_and_refuses_writes(server, client):
    anonymous = httpx.get(f"{server.base_url}/status", verify=server.ssl_context())
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"]
    refused = client.post("/status")
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "MethodNotAllowed"


def test_status_writes_do_not_move_the_configuration_revision(server):
    before = server.store.revision()
    status.report(server.store.engine, _row("0", before))
    status.forget_node(server.store.engine, "node-a")
    assert server.store.revision() == before
    assert status.read_all(server.store.engine) == []


def _document(*workers: dict) -> dict:
    return {"properties": {"revision": 9, "workers": list(workers)}}


def _worker(name: str, revision: int, live: bool = True, error=None) -> dict:
    return {"node": "n", "worker": name, "live": live, "revision": revision, "lastError": error}


def test_progress_waits_only_for_live_workers_behind_the_revision():
    progress = RevisionProgress.of(
        _document(_worker("0", 9), _worker("1", 8), _worker("2", 1, live=False)), 9
    )
    assert progress.pending == ["n/1 (serves 8)"] and progress.failed == []
    assert RevisionProgress.of(_document(_worker("0", 10)), 9).pending == []


def test_progress_reports_a_compile_error_at_or_after_the_revision():
    old_error = {"message": "old", "revision": 7}
    new_error = {"message": "bad urlTemplate", "revision": 9}
    progress = RevisionProgress.of(
        _document(_worker("0", 8, error=old_error), _worker("1", 8, error=new_error)), 9
    )
    assert progress.pending == ["n/0 (serves 8)"]
    assert progress.failed == [
        "worker n/1 could not compile revision 9 (it serves 8): bad urlTemplate"
    ]


def test_openapi_describes_the_status_resource(client):
    document = client.get("/openapi.json").json()
    assert "get" in document["paths"]["/status"]
    body = client.get("/status").json()
    assert set(body) == set(document["components"]["schemas"]["Status"]["properties"])


def test_ready_turns_from_503_to_200_when_a_live_worker_serves_the_store_revision(server):
    """`/ready` needs no token (probes carry none): 503 with no worker, or only stale ones."""
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as probe:
        waiting = probe.get("/ready")
        assert waiting.status_code == 503
        assert waiting.json()["reason"] == (
            f"no live gateway worker serves revision {server.store.revision()}"
        )
        status.report(server.store.engine, _row("0", server.store.revision() - 1))
        assert probe.get("/ready").status_code == 503  # live, but behind the store
        status.report(server.store.engine, _row("1", server.store.revision(), expires_in=-1))
        assert probe.get("/ready").status_code == 503  # at the revision, but not live
        status.report(server.store.engine, _row("0", server.store.revision()))
        ready = probe.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "ready": True,
            "revision": server.store.revision(),
            "liveWorkers": 1,
            "servingWorkers": 1,
        }
        with server.client() as admin:
            assert admin.put("/apis/a", json={"properties": API}).is_success
        assert probe.get("/ready").status_code == 503  # a write no worker serves yet


def test_ready_is_503_when_the_store_does_not_answer(server):
    status.report(server.store.engine, _row("0", server.store.revision()))
    server.store.engine.dispose()
    server.store.engine.pool._creator = _refuse  # every new connection fails, as a lost database
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as probe:
        down = probe.get("/ready")
    assert down.status_code == 503
    assert down.json() == {"ready": False, "reason": "the store does not answer"}


def _refuse(*_args):
    raise OSError("connection refused")


def test_metrics_need_the_admin_token(server, client):
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "certgate_request_duration_seconds" in scrape.text
