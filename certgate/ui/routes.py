"""Starlette routes of the admin UI: sign-in/out, the static app, and a proxy to the REST API.

The page is a small static JS app (`static/`) that calls `/ui/api/<path>`; that route checks the
session cookie (and, for every change, the CSRF token bound to the session), then hands the request
to the management app itself, as `/<path>` with the admin token as its bearer: the UI reaches the
store only through the REST API's own routes and validation (the kinds, `/status`, ...). Two
read-only helpers answer what the REST API has no resource for: who references each certificate
(the store's `refs`) and the store revision.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from certgate.authlimit import SIGNED_IN, AdminToken
from certgate.config.store import Store
from certgate.limits import Limits
from certgate.ui.sessions import Session, Sessions

COOKIE = "__Host-certgate-ui"
CSRF_HEADER = "x-csrf-token"
CHANGES = ("PUT", "PATCH", "DELETE", "POST")
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
}
# Headers the REST API must not see from the browser: the UI's cookie and CSRF token stay here.
_DROPPED = frozenset({b"authorization", b"cookie", CSRF_HEADER.encode()})


def _assets() -> dict[str, tuple[bytes, str]]:
    folder = resources.files(__package__) / "static"
    return {
        item.name: (item.read_bytes(), _TYPES[item.name.rpartition(".")[2]])
        for item in folder.iterdir()
        if item.name.rpartition(".")[2] in _TYPES
    }


def ui_routes(gate: AdminToken, store: Store, limits: Limits) -> list[Route | Mount]:
    """The `/ui` routes of the management app (`create_management_app`); `gate` checks the
    admin token, with the REST API's budget of wrong tokens per address."""
    ui = _AdminUi(gate, store, limits)
    return [
        Route("/ui", ui.to_page, methods=["GET"]),
        Mount(
            "/ui",
            routes=[
                Route("/", ui.page, methods=["GET"]),
                Route("/static/{name}", ui.asset, methods=["GET"]),
                Route("/signin", ui.sign_in, methods=["POST"]),
                Route("/signout", ui.sign_out, methods=["POST"]),
                Route("/session", ui.session, methods=["GET"]),
                Route("/usage", ui.usage, methods=["GET"]),
                Route("/revision", ui.revision, methods=["GET"]),
                Route("/api/{path:path}", _Forward(ui), methods=[*CHANGES, "GET"]),
            ],
        ),
    ]


class _AdminUi:
    def __init__(self, gate: AdminToken, store: Store, limits: Limits) -> None:
        self._store, self._limits, self._gate = store, limits, gate
        self.token = gate.token
        self._sessions = Sessions(limits.ui_session_seconds, limits.ui_max_sessions)
        self._assets = _assets()

    # -- pages -------------------------------------------------------------------------------
    async def to_page(self, _request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=308, headers=HEADERS)

    async def page(self, _request: Request) -> Response:
        return self._asset_response("index.html")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._assets:
            return _plain(404, "Not found.")
        return self._asset_response(name)

    def _asset_response(self, name: str) -> Response:
        body, media_type = self._assets[name]
        return Response(body, media_type=media_type, headers=HEADERS)

    # -- sign-in -----------------------------------------------------------------------------
    async def sign_in(self, request: Request) -> Response:
        """The form posts `token`; a match starts a session, anything else goes back, refused.
        An address over its budget of wrong tokens gets 429 without its token being compared."""
        body = await _bounded_body(request, self._limits.management_max_body_bytes)
        fields = parse_qs(body.decode("utf-8", "replace")) if body is not None else {}
        presented = (fields.get("token") or [""])[0].strip().encode()
        verdict = self._gate.check(request, presented)
        if verdict.retry_after is not None:
            refusal = _error(429, verdict.code, verdict.message)
            refusal.headers["Retry-After"] = str(verdict.retry_after)
            return refusal
        if not verdict.accepted:
            return RedirectResponse("/ui/?signin=failed", status_code=303, headers=HEADERS)
        session = self._sessions.create()
        response = RedirectResponse("/ui/", status_code=303, headers=HEADERS)
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=int(self._limits.ui_session_seconds),
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    async def sign_out(self, request: Request) -> Response:
        session = self.authorise(request)
        if isinstance(session, Response):
            return session
        self._sessions.end(session.id)
        response = JSONResponse({"signedIn": False}, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    async def session(self, request: Request) -> Response:
        """The CSRF token for this session (same-origin reads only: no CORS is ever granted)."""
        session = self.authorise(request)
        if isinstance(session, Response):
            return session
        return JSONResponse({"signedIn": True, "csrfToken": session.csrf}, headers=HEADERS)

    # -- read-only helpers -------------------------------------------------------------------
    async def usage(self, request: Request) -> Response:
        """`{certificates/c1: [paths that reference it]}` for every certificate."""
        if isinstance(refused := self.authorise(request), Response):
            return refused

        def read() -> dict[str, list[str]]:
            paths = [r.path for r in self._store.list("certificate")]
            return {path: self._store.referrers(path) for path in paths}

        return JSONResponse(await anyio.to_thread.run_sync(read), headers=HEADERS)

    async def revision(self, request: Request) -> Response:
        if isinstance(refused := self.authorise(request), Response):
            return refused
        value = await anyio.to_thread.run_sync(self._store.revision)
        return JSONResponse({"revision": value}, headers=HEADERS)

    def authorise(self, request: Request) -> Session | Response:
        """The caller's session, or a refusal: 401 signed out, 403 a change without the token."""
        session = self._sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return _error(401, "SignInRequired", "Sign in with the admin token.")
        if request.method in CHANGES and not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            return _error(
                403,
                "CsrfTokenInvalid",
                f"A change needs the session's CSRF token in the {CSRF_HEADER} header.",
            )
        return session


class _Forward:
    """`/ui/api/<path>` -> the management app's `/<path>`, for a signed-in session only."""

    def __init__(self, ui: _AdminUi) -> None:
        self._ui = ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path = request.path_params["path"]
        session = self._ui.authorise(request)
        if isinstance(session, Response):
            await session(scope, receive, send)
            return
        if path.split("/", 1)[0].casefold() == "ui":
            refusal = _error(404, "ResourceNotFound", "The UI's own routes are not forwarded.")
            await refusal(scope, receive, send)
            return
        inner = dict(scope)
        inner["path"] = "/" + path
        inner["raw_path"] = inner["path"].encode()
        inner["root_path"] = ""
        inner[SIGNED_IN] = True
        inner["headers"] = [
            *((k, v) for k, v in scope["headers"] if k not in _DROPPED),
            (b"authorization", b"Bearer " + self._ui.token),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(HEADERS)
            await send(message)

        await scope["app"](inner, receive, send_with_headers)


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (the form is then treated as empty)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, code: str, message: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": []}}
    return JSONResponse(body, status_code=status, headers=HEADERS)


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain", headers=HEADERS)
