"""The management API: one generic ARM dispatcher over the registered resource kinds.

Rules the dispatcher applies to every kind (docs/management.md lists them for users):
- bearer token on every route, 401 `AuthenticationFailed` otherwise;
- PUT creates (201) or replaces (200); `If-Match` optional on PUT, required on DELETE (`*` or the
  ETag; 428 `PreconditionRequired` when missing, 412 `PreconditionFailed` on mismatch);
- DELETE of a missing resource is 404; deleting a referenced one is 409 `<Kind>InUse`;
- a write (PUT, PATCH, POST action, DELETE) commits only if the configuration it produces compiles
  with the Snapshot compiler, inside the write's transaction: a resource that would not compile, or
  would break another one, is a 400 `ValidationError` naming the resource and the field;
- request bodies above `max_body_bytes` (default 4 MiB) are refused with 413 before being buffered.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from certgate.config.problems import ConfigurationRejected
from certgate.config.store import (
    InUse,
    MissingReference,
    NotFound,
    PreconditionFailed,
    Store,
    WriteCheck,
)
from certgate.management import builtin
from certgate.management.arm import Addressed, ServiceRoot, address
from certgate.management.errors import ApiError, Detail, ValidationError, not_found
from certgate.management.kinds import (
    ID_PATTERN,
    SERVICE_PATH,
    Kind,
    KindRegistry,
    Match,
    Validated,
    WriteRequest,
    registry,
)
from certgate.management.odata import compile_filter
from certgate.management.openapi import openapi_document

if TYPE_CHECKING:
    from certgate.config.snapshot import SnapshotBuilder

log = logging.getLogger("certgate.management")

OnChange = Callable[[], Awaitable[None]]
MAX_BODY_BYTES = 4 * 1024 * 1024
PAGE_SIZE = 100
MAX_TOP = 1000
METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"]


def create_management_app(
    store: Store,
    *,
    admin_token: str,
    on_change: OnChange | None = None,
    kinds: KindRegistry | None = None,
    service_root: ServiceRoot | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    compiler: SnapshotBuilder | None = None,
) -> Starlette:
    """The Starlette app serving every registered kind at short and ARM paths.

    `compiler` checks each write; with certgate's own kinds it defaults to a `SnapshotBuilder` over
    `store`. Other `kinds` (a registry the Snapshot compiler does not know) are not checked unless
    a compiler is given."""
    if not admin_token:
        raise ValueError("the management API needs a non-empty admin token")
    if kinds is None:
        from certgate.config.snapshot import SnapshotBuilder  # the compiler imports the kinds

        builtin.load()
        kinds = registry
        compiler = compiler or SnapshotBuilder(store)
    dispatcher = _Dispatcher(
        store,
        admin_token,
        on_change,
        kinds,
        service_root or ServiceRoot(),
        max_body_bytes,
        compiler,
    )
    dispatcher.ensure_service()
    return Starlette(
        routes=[
            Route("/openapi.json", dispatcher.openapi, methods=["GET"]),
            Route("/{path:path}", dispatcher.handle, methods=METHODS),
        ]
    )


class _Dispatcher:
    def __init__(
        self,
        store: Store,
        token: str,
        on_change: OnChange | None,
        kinds: KindRegistry,
        root: ServiceRoot,
        max_body: int,
        compiler: SnapshotBuilder | None,
    ) -> None:
        self.store, self.kinds, self.root, self.compiler = store, kinds, root, compiler
        self._token = f"Bearer {token}".encode()
        self.on_change, self.max_body = on_change, max_body

    def ensure_service(self) -> None:
        """Writes the service row once, with its defaults, so it always has an ETag."""
        service = next((k for k in self.kinds if not k.pattern), None)
        if service is None or self.store.get(SERVICE_PATH) is not None:
            return
        request = WriteRequest(service, SERVICE_PATH, {}, "PUT", {}, {}, None, self.store, {})
        result = service.validate(request)
        if inspect.isawaitable(result):
            raise TypeError("the service kind's validate must be synchronous")
        self.store.put(service.name, SERVICE_PATH, result.properties, secrets=result.secrets)

    async def openapi(self, request: Request) -> Response:
        try:
            self._authorise(request)
        except ApiError as error:
            return error.response()
        return JSONResponse(openapi_document(self.kinds))

    async def handle(self, request: Request) -> Response:
        try:
            self._authorise(request)
            where = address(request.url.path, request.query_params.get("api-version"), self.root)
            match = self.kinds.find(where.relative)
            if match is None:
                raise ApiError(404, "ResourceNotFound", f"No resource at '/{where.relative}'.")
            _check_ids(match)
            response = await self._route(request, where, match)
        except ApiError as error:
            response = error.response()
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            response = ApiError(500, "InternalError", "The request failed; see the log.").response()
        log.info("%s %s -> %d", request.method, request.url.path, response.status_code)
        return response

    def _authorise(self, request: Request) -> None:
        presented = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(presented, self._token):
            raise ApiError(
                401,
                "AuthenticationFailed",
                "Authentication failed: send 'Authorization: Bearer <admin token>'.",
                headers={"WWW-Authenticate": 'Bearer realm="certgate"'},
            )

    async def _route(self, request: Request, where: Addressed, match: Match) -> Response:
        method = request.method
        if match.action:
            if method != "POST":
                raise _not_allowed(method)
            return await self._write(request, where, match, "POST")
        if not match.item:
            if method != "GET":
                raise _not_allowed(method)
            return await self._list(request, where, match)
        if method in ("GET", "HEAD"):
            return await self._get(request, where, match, head=method == "HEAD")
        if method == "PUT" or (method == "PATCH" and match.kind.patch):
            return await self._write(request, where, match, method)
        if method == "DELETE" and match.kind.pattern:
            return await self._delete(request, match)
        raise _not_allowed(method)

    # -- reads -------------------------------------------------------------------------------
    async def _get(self, request: Request, where: Addressed, match: Match, *, head: bool):
        resource = await _thread(self.store.get, match.path)
        if resource is None:
            raise not_found(f"{match.kind.title} '{_display(match)}'")
        headers = {"ETag": _quote(resource.etag)}
        if head:
            return Response(status_code=200, headers=headers)
        contract = self._contract(where, match.kind, resource, request.query_params)
        return JSONResponse(contract, headers=headers)

    async def _list(self, request: Request, where: Addressed, match: Match) -> Response:
        kind, query = match.kind, request.query_params
        parent = kind.parent_path(match.ids)
        if parent and await _thread(self.store.get, parent) is None:
            raise not_found(f"'{parent}'")
        rows = await _thread(self.store.list, kind.name, parent)
        for param, keep in kind.list_params.items():
            if param in query:
                rows = [row for row in rows if keep(row, query[param])]
        presented = [(row, kind.render(row, query)) for row in rows]
        if text := query.get("$filter"):
            predicate = compile_filter(text, kind.filter_fields)
            presented = [
                (row, props)
                for row, props in presented
                if predicate(lambda f, row=row, props=props: _field(row, props, f))
            ]
        skip = _int_param(query, "$skip", 0, 0, None)
        top = _int_param(query, "$top", PAGE_SIZE, 1, MAX_TOP)
        page = presented[skip : skip + top]
        body: dict[str, Any] = {
            "value": [self._envelope(where, kind, row, props) for row, props in page],
            "count": len(presented),
            "nextLink": None,
        }
        if skip + top < len(presented):
            body["nextLink"] = str(
                request.url.include_query_params(**{"$skip": skip + top, "$top": top})
            )
        return JSONResponse(body)

    # -- writes ------------------------------------------------------------------------------
    async def _write(
        self, request: Request, where: Addressed, match: Match, method: str
    ) -> Response:
        kind, path = match.kind, match.path
        body = await self._read_json(request)
        properties = body.get("properties", {})
        if not isinstance(properties, dict):
            raise ValidationError("'properties' must be a JSON object.", "properties")
        current = await _thread(self.store.get, path)
        parent = kind.parent_path(match.ids)
        if method in ("PATCH", "POST") and current is None:
            raise not_found(f"{kind.title} '{_display(match)}'")
        if parent and await _thread(self.store.get, parent) is None:
            raise not_found(f"'{parent}'")
        if method == "PATCH":
            properties = _merge(kind.render(current, request.query_params), properties)
        write = WriteRequest(
            kind,
            path,
            match.ids,
            method,
            body,
            properties,
            current,
            self.store,
            request.query_params,
        )
        hook = kind.actions[match.action] if match.action else kind.validate
        result: Validated = await _call(hook, write)
        references = [*result.references, *([parent] if parent else [])]
        if_match = request.headers.get("if-match") if method != "POST" else None
        if method in ("PATCH", "POST") and not if_match:
            if_match = (
                current.etag
            )  # read-modify-write: a concurrent change gives 412, not a lost update
        try:
            resource, created = await _thread(
                lambda: self.store.put(
                    kind.name,
                    path,
                    result.properties,
                    secrets=result.secrets,
                    references=references,
                    if_match=if_match,
                    check=self._check(path),
                )
            )
        except ConfigurationRejected as error:
            raise _rejected(path, error) from None
        except PreconditionFailed:
            raise _precondition_failed(kind, match) from None
        except MissingReference as error:
            if parent in error.missing:
                raise not_found(f"'{parent}'") from None
            raise ValidationError(
                f"Referenced resources do not exist: {', '.join(error.missing)}.",
                "properties",
                [Detail("NotFound", m, f"'{m}' does not exist.") for m in error.missing],
            ) from None
        await self._changed()
        status = 201 if created and method == "PUT" else 200
        return JSONResponse(
            self._contract(where, kind, resource, request.query_params),
            status_code=status,
            headers={"ETag": _quote(resource.etag)},
        )

    async def _delete(self, request: Request, match: Match) -> Response:
        kind = match.kind
        if_match = request.headers.get("if-match")
        if not if_match:
            raise ApiError(
                428,
                "PreconditionRequired",
                "DELETE requires an If-Match header: '*' or the ETag from a GET.",
                target="If-Match",
            )
        try:
            await _thread(
                lambda: self.store.delete(
                    match.path,
                    if_match=if_match,
                    linked_kinds=kind.linked,
                    check=self._check(match.path),
                )
            )
        except ConfigurationRejected as error:
            raise _rejected(match.path, error) from None
        except NotFound:
            raise not_found(f"{kind.title} '{_display(match)}'") from None
        except PreconditionFailed:
            raise _precondition_failed(kind, match) from None
        except InUse as error:
            raise ApiError(
                409,
                f"{kind.title}InUse",
                f"{kind.title} '{_display(match)}' is in use by {len(error.referrers)} "
                "resource(s); remove those references first.",
                [
                    Detail("ReferencedBy", r, f"'{match.path}' is referenced by '{r}'.")
                    for r in error.referrers
                ],
            ) from None
        await self._changed()
        return Response(status_code=200)

    def _check(self, path: str) -> WriteCheck | None:
        return self.compiler.check(path) if self.compiler is not None else None

    async def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            await self.on_change()
        except Exception:
            log.exception("on_change callback failed after a successful write")

    async def _read_json(self, request: Request) -> dict:
        """The JSON object body; an empty body is `{}` (kinds say which fields they need)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise _too_large(self.max_body)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise _too_large(self.max_body)
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValidationError("The request body is not valid JSON.", "body") from None
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object.", "body")
        return body

    # -- shapes ------------------------------------------------------------------------------
    def _contract(self, where: Addressed, kind: Kind, resource, query) -> dict:
        return self._envelope(where, kind, resource, kind.render(resource, query))

    def _envelope(self, where: Addressed, kind: Kind, resource, properties: dict) -> dict:
        is_service = not kind.pattern
        return {
            "id": where.root.resource_id(resource.path, is_service=is_service),
            "type": kind.arm_type,
            "name": where.root.service if is_service else resource.name,
            "properties": properties,
        }


async def _thread(function, *args):
    return await anyio.to_thread.run_sync(function, *args)


async def _call(hook, write: WriteRequest) -> Validated:
    if inspect.iscoroutinefunction(hook):
        return await hook(write)
    result = await _thread(hook, write)
    return await result if inspect.isawaitable(result) else result


def _check_ids(match: Match) -> None:
    for name, value in match.ids.items():
        if not ID_PATTERN.match(value):
            raise ValidationError(
                f"'{value}' is not a valid {name}: 1 to 80 characters, none of * # & + : < > ? /.",
                name,
            )


def _field(row, props: dict, name: str) -> Any:
    if name == "name":
        return row.name
    value: Any = props
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _int_param(query, name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        limit = f" and {high}" if high is not None else ""
        raise ValidationError(f"'{name}' must be an integer between {low}{limit}.", name)
    return int(raw)


def _merge(base: dict, patch: dict) -> dict:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _display(match: Match) -> str:
    return match.path if len(match.ids) != 1 else next(iter(match.ids.values()))


def _quote(etag: str) -> str:
    return f'"{etag}"'


def _not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"{method} is not supported on this resource.")


def _precondition_failed(kind: Kind, match: Match) -> ApiError:
    return ApiError(
        412,
        "PreconditionFailed",
        f"{kind.title} '{_display(match)}' has changed or does not exist: the If-Match ETag "
        "does not match.",
        target="If-Match",
    )


def _rejected(path: str, error: ConfigurationRejected) -> ValidationError:
    """400 naming each resource that would not compile and its field; the written resource's
    own problems name just the field, as other validation errors do."""
    first = next((p for p in error.problems if p.path == path), error.problems[0])
    own = first.path == path
    message = (
        f"The configuration would not compile: {first.message}"
        if own
        else f"The change would break '{first.path}': {first.message}"
    )
    details = [
        Detail(
            "InvalidConfiguration",
            p.field if p.path == path else f"{p.path}:{p.field}",
            f"'{p.path}' {p.field}: {p.message}",
        )
        for p in error.problems
    ]
    return ValidationError(message, first.field if own else f"{first.path}:{first.field}", details)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "RequestEntityTooLarge",
        f"The request body exceeds the management API limit of {limit // (1024 * 1024)} MiB.",
        target="body",
    )
