"""`GET /status`: the store's revision and what every gateway worker serves (no APIM counterpart).

Also at the ARM path `.../providers/Microsoft.ApiManagement/service/{name}/status`. The body:

    {"id": ".../status", "type": "certgate/status", "name": "status",
     "properties": {"revision": 12,
                    "workers": [{"node", "worker", "pid", "live", "revision", "lastError":
                                 {"message", "revision"} | null, "started", "heartbeat"}]}}

A worker is `live` while it keeps renewing its heartbeat (`certgate.config.status`); rows of
stopped workers stay listed, not live, until their node's next start. APIM's self-hosted
`gateways` resource (certgate.management.gateways) is the per-node view of the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from certgate.config import status
from certgate.config.store import Store
from certgate.management.arm import ServiceRoot, address
from certgate.management.errors import ApiError
from certgate.observe.metrics import CONTENT_TYPE, exposition

log = logging.getLogger("certgate.management")

STATUS_TYPE = "certgate/status"
ARM_STATUS_PATH = (
    "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.ApiManagement/service/{n}/status"
)


_WORKER_SCHEMA = {
    "type": "object",
    "properties": {
        "node": {"type": "string"},
        "worker": {"type": "string"},
        "pid": {"type": "integer"},
        "live": {"type": "boolean"},
        "revision": {"type": "integer"},
        "lastError": {
            "type": ["object", "null"],
            "properties": {"message": {"type": "string"}, "revision": {"type": "integer"}},
        },
        "started": {"type": "string", "format": "date-time"},
        "heartbeat": {"type": "string", "format": "date-time"},
        "version": {"type": ["string", "null"]},
    },
}
STATUS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string", "const": STATUS_TYPE},
        "name": {"type": "string"},
        "properties": {
            "type": "object",
            "properties": {
                "revision": {"type": "integer"},
                "workers": {"type": "array", "items": _WORKER_SCHEMA},
            },
        },
    },
}


def status_path_item() -> dict:
    """The OpenAPI path item of `/status`."""
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    return {
        "get": {
            "operationId": "Status_Get",
            "tags": ["Status"],
            "summary": "The store revision and the revision every gateway worker serves",
            "responses": {
                "200": {"description": "Status", "content": content},
                "default": {"$ref": "#/components/responses/Error"},
            },
        }
    }


def status_document(
    revision: int, workers: Iterable[status.WorkerStatus], root: ServiceRoot, now: dt.datetime
) -> dict:
    return {
        "id": f"{root.prefix}/status",
        "type": STATUS_TYPE,
        "name": "status",
        "properties": {
            "revision": revision,
            "workers": [worker.as_json(now) for worker in workers],
        },
    }


def readiness(store: Store, node: str | None, now: dt.datetime) -> tuple[bool, dict]:
    """Ready when the store answers and a live worker (of `node`, when given) serves the store's
    revision; the body says why not."""
    try:
        revision = store.revision()
        workers = status.read_all(store.engine)
    except Exception as error:
        log.warning("readiness: the store does not answer: %s", type(error).__name__)
        return False, {"ready": False, "reason": "the store does not answer"}
    mine = [w for w in workers if w.live(now) and (node is None or w.node == node)]
    serving = sum(1 for w in mine if w.revision >= revision)
    body: dict[str, Any] = {"ready": serving > 0, "revision": revision, "liveWorkers": len(mine)}
    body["servingWorkers"] = serving
    if not serving:
        body["reason"] = f"no live gateway worker serves revision {revision}"
    return serving > 0, body


def status_routes(
    store: Store,
    authorise: Callable[[Request], None],
    root: ServiceRoot,
    *,
    node: str | None = None,
    dev_server_pem: bytes | None = None,
) -> list[Route]:
    """The routes of the status resource, `/ready` (no token: probes carry none, and it tells
    nothing but ready or not) and `/metrics` (the admin token), for `create_management_app`."""

    async def ready(request: Request) -> Response:
        ok, body = await anyio.to_thread.run_sync(readiness, store, node, status.now())
        return JSONResponse(body, status_code=200 if ok else 503)

    from certgate.observe.inventory import CertificateCollector  # it imports management: a cycle

    collector = CertificateCollector(store, dev_server_pem)

    async def metrics(request: Request) -> Response:
        try:
            authorise(request)
        except ApiError as error:
            return error.response()
        text = await anyio.to_thread.run_sync(exposition, collector)
        return Response(text, media_type=CONTENT_TYPE)

    def read(where_root: ServiceRoot) -> dict:
        return status_document(
            store.revision(), status.read_all(store.engine), where_root, status.now()
        )

    async def handle(request: Request) -> Response:
        try:
            authorise(request)
            if request.method not in ("GET", "HEAD"):
                raise ApiError(
                    405, "MethodNotAllowed", f"{request.method} is not supported on this resource."
                )
            where = address(request.url.path, request.query_params.get("api-version"), root)
            body = await anyio.to_thread.run_sync(read, where.root)
        except ApiError as error:
            return error.response()
        return JSONResponse(body)

    methods = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"]
    return [
        Route("/status", handle, methods=methods),
        Route(ARM_STATUS_PATH, handle, methods=methods),
        Route("/ready", ready, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
