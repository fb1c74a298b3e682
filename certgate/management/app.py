"""The management API: one generic ARM dispatcher over the registered resource kinds.

Rules the dispatcher applies to every kind (docs/management.md lists them for users):
- bearer token on every route, 401 `AuthenticationFailed` otherwise; an address over its budget of
  wrong tokens gets 429 `TooManyFailedAuthentications` with `Retry-After`, its token not compared
  (`certgate.authlimit`);
- PUT creates (201) or replaces (200); `If-Match` optional on PUT, required on DELETE (`*` or the
  ETag; 428 `PreconditionRequired` when missing, 412 `PreconditionFailed` on mismatch);
- DELETE of a missing resource is 404; deleting a referenced one is 409 `<Kind>InUse`;
- a write (PUT, PATCH, POST action, DELETE) commits only if the configuration it produces compiles
  with the Snapshot compiler, inside the write's transaction: a resource that would not compile, or
  would break another one, is a 400 `ValidationError` naming the resource and the field;
- request bodies above `limits.management_max_body_bytes` are refused with 413 before being
  buffered; JSON nested deeper than `management_max_json_depth`, NaN/Infinity and lone surrogates
  are refused with 400 naming the field, before anything is stored;
- resource names are case-insensitive as in ARM: a request naming `CS` reaches the stored `cs`;
- every write answers with `X-Certgate-Revision`, a store revision that includes it: gateway
  workers serve it once `GET /status` shows them at that revision or later.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from certgate.armnames import stored_name
from certgate.authlimit import AdminToken
from certgate.certs.keyvault import KeyVault, VaultCredentials
from certgate.config.problems import ConfigurationRejected
from certgate.config.store import (
    InUse,
    MissingReference,
    NotFound,
    PreconditionFailed,
    Resource,
    Store,
    WriteCheck,
    Writer,
)
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.management import api_export, builtin
from certgate.management.arm import Addressed, ServiceRoot, address, check_id, merge_patch
from certgate.management.errors import ApiError, Detail, ValidationError, not_found
from certgate.management.kinds import (
    SERVICE_PATH,
    Children,
    Kind,
    KindRegistry,
    Match,
    Validated,
    WriteRequest,
    registry,
)
from certgate.management.odata import compile_filter
from certgate.management.openapi import openapi_document
from certgate.management.status import status_routes
from certgate.ui import ui_routes

log = logging.getLogger("certgate.management")

OnChange = Callable[[], Awaitable[None]]
REVISION_HEADER = "X-Certgate-Revision"
PAGE_SIZE = 100
MAX_TOP = 1000
# ARM declares these deletes long-running (the SDKs' `begin_delete` accepts only 202 or 204):
# certgate deletes synchronously, so it answers 204, "done, nothing to poll".
LONG_RUNNING_DELETES = frozenset({"Microsoft.ApiManagement/service/apis"})
# ARM deletes without an If-Match parameter (links): the SDKs send none, so none is required.
UNCONDITIONAL_DELETES = frozenset({"Microsoft.ApiManagement/service/products/apis"})
MAX_SKIP = 2**31 - 1
METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"]


class WriteChecker(Protocol):
    """What judges writes: `certgate.snapshot.compiler.SnapshotBuilder`, handed in by the caller
    (the compiler sits above the management kinds, so this module does not import it)."""

    def check(self, *paths: str) -> WriteCheck: ...


def create_management_app(
    store: Store,
    *,
    admin_token: str,
    on_change: OnChange | None = None,
    kinds: KindRegistry | None = None,
    service_root: ServiceRoot | None = None,
    limits: Limits = DEFAULT_LIMITS,
    compiler: WriteChecker | None,
    key_vault: KeyVault | None = None,
    node: str | None = None,
    dev_server_pem: bytes | None = None,
) -> Starlette:
    """The Starlette app serving every registered kind at short and ARM paths, plus `/status`,
    `/ready` (of `node`'s workers, any node's when None) and `/metrics`.

    `compiler` checks each write: a `SnapshotBuilder` over `store` for certgate's own kinds; None
    checks nothing (for `kinds` the Snapshot compiler does not know). `key_vault` is the service's
    vault access (`certgate.certs.keyvault.service.service_key_vault`); without it the service
    credentials come from the VAULT_* environment."""
    if not admin_token:
        raise ValueError("the management API needs a non-empty admin token")
    if kinds is None:
        builtin.load()
        kinds = registry
    vault = key_vault or KeyVault(VaultCredentials.from_env_and_files())
    gate = AdminToken(admin_token, limits)
    dispatcher = _Dispatcher(
        store,
        gate,
        on_change,
        kinds,
        service_root or ServiceRoot(),
        limits,
        compiler,
        vault,
    )
    dispatcher.ensure_service()
    return Starlette(
        routes=[
            *ui_routes(gate, store, limits),
            Route("/openapi.json", dispatcher.openapi, methods=["GET"]),
            *status_routes(
                store,
                dispatcher._authorise,
                dispatcher.root,
                node=node,
                dev_server_pem=dev_server_pem,
            ),
            Route("/exports/{token}", dispatcher.export_link, methods=["GET"]),
            Route("/{path:path}", dispatcher.handle, methods=METHODS),
        ],
        exception_handlers={HTTPException: _http_exception},
    )


async def _http_exception(_request: Request, error: Exception) -> Response:
    """Starlette's own refusals (an unrouted method) in the ARM error shape."""
    status = error.status_code if isinstance(error, HTTPException) else 500
    code = {404: "ResourceNotFound", 405: "MethodNotAllowed"}.get(status, "Error")
    message = (
        str(error.detail)
        if isinstance(error, HTTPException) and status < 500
        else "The request failed."
    )
    return ApiError(status, code, message).response()


class _Dispatcher:
    def __init__(
        self,
        store: Store,
        gate: AdminToken,
        on_change: OnChange | None,
        kinds: KindRegistry,
        root: ServiceRoot,
        limits: Limits,
        compiler: WriteChecker | None,
        key_vault: KeyVault,
    ) -> None:
        self.store, self.kinds, self.root, self.compiler = store, kinds, root, compiler
        self.key_vault = key_vault
        self._gate = gate
        self._export_key = api_export.export_key(gate.token.decode())
        self.on_change, self.limits = on_change, limits

    def ensure_service(self) -> None:
        """Writes the service row once, with its defaults, so it always has an ETag."""
        service = next((k for k in self.kinds if not k.pattern), None)
        if service is None or self.store.get(SERVICE_PATH) is not None:
            return
        request = WriteRequest(
            service, SERVICE_PATH, {}, "PUT", {}, {}, None, self.store, {}, self.key_vault
        )
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

    async def export_link(self, request: Request) -> Response:
        """An exported API definition behind a signed, expiring link (no bearer token)."""
        try:
            token = request.path_params["token"]
            text, media_type = await _thread(
                api_export.linked_document, self.store, self._export_key, token
            )
        except ApiError as error:
            return error.response()
        return Response(text, media_type=media_type)

    async def handle(self, request: Request) -> Response:
        try:
            self._authorise(request)
            where = address(request.url.path, request.query_params.get("api-version"), self.root)
            match = self.kinds.find(where.relative)
            if match is None:
                raise ApiError(404, "ResourceNotFound", f"No resource at '/{where.relative}'.")
            for name, value in match.ids.items():
                check_id(name, value)
            match = await _thread(self._canonical, match)
            response = await self._route(request, where, match)
        except ApiError as error:
            response = error.response()
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            response = ApiError(500, "InternalError", "The request failed; see the log.").response()
        log.info("%s %s -> %d", request.method, request.url.path, response.status_code)
        return response

    def _authorise(self, request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        token = presented.strip().encode() if scheme.lower() == "bearer" else b""
        verdict = self._gate.check(request, token)
        if verdict.retry_after is not None:
            raise ApiError(
                429,
                verdict.code,
                verdict.message,
                headers={"Retry-After": str(verdict.retry_after)},
            )
        if not verdict.accepted:
            raise ApiError(
                401,
                "AuthenticationFailed",
                "Authentication failed: send 'Authorization: Bearer <admin token>'.",
                headers={"WWW-Authenticate": 'Bearer realm="certgate"'},
            )

    def _canonical(self, match: Match) -> Match:
        """`match` with each id spelled as stored: ARM names are case-insensitive."""
        if not match.ids or self.store.get(_level_path(match.kind, match.ids)) is not None:
            return match
        ids = dict(match.ids)
        names = list(ids)
        for depth, name in enumerate(names):
            level = {n: ids[n] for n in names[: depth + 1]}
            collection, _, wanted = _level_path(match.kind, level).rpartition("/")
            ids[name] = stored_name(wanted, self.store.names_in(collection)) or wanted
        last = names[-1]
        whole = len(ids) == len(match.kind.id_names)
        if match.kind.link_to and whole and self.store.get(_level_path(match.kind, ids)) is None:
            linked = self.store.names_in(match.kind.link_to)
            ids[last] = stored_name(ids[last], linked) or ids[last]
        return Match(match.kind, ids, match.item, match.action)

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
        if request.query_params.get("export", "").lower() == "true" and not head:
            return await self._export(request, where, match)
        resource = await _thread(self.store.get, match.path)
        if resource is None:
            raise not_found(f"{match.kind.title} '{_display(match)}'")
        headers = {"ETag": _quote(resource.etag)}
        if head:
            return Response(status_code=200, headers=headers)
        contract = self._contract(where, match.kind, resource, request.query_params)
        if match.kind.observe is not None:
            observed = await _thread(match.kind.observe, self.store)
            contract["properties"].update(observed.get(resource.path, {}))
        return JSONResponse(contract, headers=headers)

    async def _export(self, request: Request, where: Addressed, match: Match) -> Response:
        if match.kind.name != "api":
            raise ApiError(400, "NotSupported", "Only APIs can be exported.", target="export")
        fmt = api_export.export_format(request.query_params)
        result = await _thread(
            api_export.export_result,
            self.store,
            match.path,
            where.root.resource_id(match.path),
            fmt,
            str(request.base_url),
            self._export_key,
            self.limits.api_export_link_seconds,
        )
        return JSONResponse(result)

    async def _list(self, request: Request, where: Addressed, match: Match) -> Response:
        kind, query = match.kind, request.query_params
        parent = kind.parent_path(match.ids)
        if parent and await _thread(self.store.get, parent) is None:
            raise not_found(f"'{parent}'")
        rows = await _thread(self.store.list, kind.name, parent)
        for param, keep in kind.list_params.items():
            if param in query:
                rows = [row for row in rows if keep(row, query[param])]
        observed = await _thread(kind.observe, self.store) if kind.observe else {}
        presented = [
            (row, {**kind.render(row, query), **observed.get(row.path, {})}) for row in rows
        ]
        if text := query.get("$filter"):
            predicate = compile_filter(
                text, kind.filter_fields, self.limits.management_max_filter_depth
            )
            presented = [
                (row, props)
                for row, props in presented
                if predicate(functools.partial(_field, row, props))
            ]
        skip = _int_param(query, "$skip", 0, 0, MAX_SKIP)
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
            properties = merge_patch(kind.render(current, request.query_params), properties)
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
            self.key_vault,
        )
        hook = kind.actions[match.action] if match.action else kind.validate
        result: Validated = await _call(hook, write)
        references = [*result.references, *([parent] if parent else [])]
        if_match = request.headers.get("if-match") if method != "POST" else None
        if method in ("PATCH", "POST") and not if_match:
            if_match = (
                current.etag
            )  # read-modify-write: a concurrent change gives 412, not a lost update
        written = [path, *(child for children in result.children for child in children.items)]

        def commit() -> tuple[Resource, bool]:
            """The resource and its children: one transaction, one revision, checked whole."""
            with self.store.writing(self._check(*written)) as writer:
                stored = writer.put(
                    kind.name,
                    path,
                    result.properties,
                    secrets=result.secrets,
                    references=references,
                    if_match=if_match,
                )
                for children in result.children:
                    _replace_children(writer, path, children)
                return stored

        try:
            resource, created = await _thread(commit)
            revision = await _thread(self.store.revision)
        except ConfigurationRejected as error:
            raise _rejected(path, written, error) from None
        except PreconditionFailed:
            raise _precondition_failed(kind, match) from None
        except InUse as error:
            raise self._in_use(error) from None
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
            headers={"ETag": _quote(resource.etag), REVISION_HEADER: str(revision)},
        )

    async def _delete(self, request: Request, match: Match) -> Response:
        kind = match.kind
        if_match = request.headers.get("if-match")
        if not if_match and kind.arm_type in UNCONDITIONAL_DELETES:
            if_match = "*"
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
            raise _rejected(match.path, [match.path], error) from None
        except NotFound:
            raise not_found(f"{kind.title} '{_display(match)}'") from None
        except PreconditionFailed:
            raise _precondition_failed(kind, match) from None
        except InUse as error:
            raise self._in_use(error) from None
        revision = await _thread(self.store.revision)
        await self._changed()
        status = 204 if kind.arm_type in LONG_RUNNING_DELETES else 200
        return Response(status_code=status, headers={REVISION_HEADER: str(revision)})

    def _check(self, *paths: str) -> WriteCheck | None:
        return self.compiler.check(*paths) if self.compiler is not None else None

    def _in_use(self, error: InUse) -> ApiError:
        """409 `<Kind>InUse`: deleting `error.path` (asked for, or a child a write replaces)
        would leave the listed resources referring to nothing."""
        match = self.kinds.find(error.path)
        title = match.kind.title if match else "Resource"
        shown = _display(match) if match else error.path
        return ApiError(
            409,
            f"{title}InUse",
            f"{title} '{shown}' is in use by {len(error.referrers)} "
            "resource(s); remove those references first.",
            [
                Detail("ReferencedBy", r, f"'{error.path}' is referenced by '{r}'.")
                for r in error.referrers
            ],
        )

    async def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            await self.on_change()
        except Exception:
            log.exception("on_change callback failed after a successful write")

    async def _read_json(self, request: Request) -> dict:
        """The JSON object body; an empty body is `{}` (kinds say which fields they need)."""
        limit = self.limits.management_max_body_bytes
        declared = request.headers.get("content-length", "")
        if _DIGITS.fullmatch(declared) and int(declared) > limit:
            raise _too_large(limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except RecursionError:
            raise _too_deep(self.limits.management_max_json_depth, "body") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValidationError(
                f"The request body is not valid JSON: {_json_reason(error)}.", "body"
            ) from None
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object.", "body")
        _check_json(body, self.limits.management_max_json_depth)
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


def _level_path(kind: Kind, ids: dict[str, str]) -> str:
    """The store path of the resource named by the first ids of `kind`'s pattern."""
    out: list[str] = []
    named = 0
    for segment in kind.pattern.split("/"):
        if segment.startswith("{"):
            if segment[1:-1] not in ids:
                break
            out.append(ids[segment[1:-1]])
            named = len(out)
        else:
            out.append(segment)
    return "/".join(out[:named])


_DIGITS = re.compile(r"[0-9]{1,15}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _json_reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno}, column {error.colno}"
    return "it is not UTF-8"


def _check_json(body: dict, max_depth: int) -> None:
    """Refuses what JSON parsers accept but the store cannot hold or clients cannot read.

    Non-finite numbers (`1e999`), lone surrogates (`"\\ud800"`, not UTF-8) and nesting deeper than
    `max_depth`; the error names the field (`properties.value`) and never echoes the value.
    """
    stack: list[tuple[Any, str, int]] = [(body, "", 1)]
    items: Iterable[tuple[str, Any]]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = ((f"[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"'{where}' must be a finite number.", where)
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise ValidationError(f"'{where}' contains a lone UTF-16 surrogate.", where)
        else:
            continue
        if depth > max_depth:
            raise _too_deep(max_depth, where or "body")
        for key, item in items:
            if isinstance(value, list):
                path = f"{where}{key}"
            elif _SURROGATE.search(key):
                raise ValidationError(
                    f"A key in '{where or 'body'}' contains a lone UTF-16 surrogate.",
                    where or "body",
                )
            else:
                path = f"{where}.{key}" if where else key
            stack.append((item, path, depth + 1))


def _too_deep(limit: int, where: str) -> ValidationError:
    return ValidationError(
        f"'{where}' nests arrays and objects deeper than {limit} levels "
        "(--management-max-json-depth).",
        where,
    )


def _field(row, props: dict, name: str) -> Any:
    if name == "name":
        return row.name
    value: Any = props
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _int_param(query, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise ValidationError(f"'{name}' must be an integer between {low} and {high}.", name)
    return int(raw)


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


def _replace_children(writer: Writer, parent: str, children: Children) -> None:
    """The children of `children.kind` below `parent` become exactly `children.items`."""
    for path in writer.paths(children.kind, parent):
        if path not in children.items:
            writer.delete(path)
    for path, properties in children.items.items():
        writer.put(children.kind, path, properties, references=[parent])


def _rejected(path: str, written: list[str], error: ConfigurationRejected) -> ValidationError:
    """400 naming each resource that would not compile and its field; the written resource's
    own problems name just the field, as other validation errors do, and a child written with
    it (an imported operation or schema) is named by its path."""
    first = min(error.problems, key=lambda p: (p.path != path, p.path not in written))
    own = first.path == path
    if own:
        message = f"The configuration would not compile: {first.message}"
    elif first.path in written:
        message = (
            f"The configuration would not compile: '{first.path}' {first.field}: {first.message}"
        )
    else:
        message = f"The change would break '{first.path}': {first.message}"
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
