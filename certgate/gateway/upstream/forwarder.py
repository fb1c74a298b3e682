"""The `Forwarder`: sends `context.Request` to the backend and fills `context.Response`.

What it reads:
- `context.backend` (`BackendTarget`: `url`, `backend_id`) and `context.backend_target()`; a target
  with a `backend_id` and no `url` takes the backend entity's (which then replaces it);
- `context.backend_certificate`: a `CertificateMaterial` set by `authentication-certificate`. It
  takes precedence over the backend entity's certificate;
- `context.snapshot` (a `SnapshotView`, or None):
  - `revision` (int, grows with every configuration change),
  - `backends`: Mapping[str, `Backend`] (`compile_backend`, by id),
  - `certificates_by_id`, `certificates_by_thumbprint`: Mapping[str, CertificateMaterial]
    (thumbprints upper-case hex SHA-1; `authentication-certificate` reads both),
  - `backend_trust`: a `BackendTrust` (`service_backend_trust(service properties)`: system
    roots plus the service's CA certificates), or None for system roots only.

A newer snapshot retires the pools of identities it no longer holds (a replaced certificate, a
changed CA store): their connections are drained, never reused.

The forward-request timeout covers the whole exchange up to the response head, as APIM documents
it ("the time to wait for the HTTP response headers"): waiting for a pool connection, connecting,
sending the request and its body, and waiting for the head all end at one deadline (504, reason
Timeout). Each read of the response body then waits at most that timeout again. Cancelling
`forward` (the client went away, or its body timed out) closes the backend connection in use.

`limits` (the process's `Limits`) bound the pools and response heads, and policies read
`limits.max_buffered_body_bytes` from here (`certgate.policy.buffering`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Collection
from urllib.parse import urlsplit

from certgate.certs.material import CertificateMaterial
from certgate.gateway.upstream.backend import Backend
from certgate.gateway.upstream.connection import ConnectionClosed, ResponseBody, UpstreamConnection
from certgate.gateway.upstream.pool import Origin, Pool, Pools
from certgate.gateway.upstream.proxy import Proxy
from certgate.gateway.upstream.tls import SYSTEM_TRUST, ClientIdentity, Identities
from certgate.headerkinds import REQUEST_SKIP
from certgate.httpsyntax import UnsafeHead, head_is_clean, host_problem, target_problem
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.policy.context import Context, Headers, Request, Response
from certgate.policy.errors import BackendError
from certgate.policy.forwarding import ForwardOptions, SnapshotView

log = logging.getLogger("certgate.upstream")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ResponseHead = tuple[int, str, list[tuple[str, str]], ResponseBody | bytes]


class Forwarder:
    """One per gateway process: TLS identities, pools, and `forward(context, options)`.

    `options` may carry `timeout` (seconds until the response head, as forward-request's
    attribute); without it `limits.backend_timeout` applies.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.timeout = limits.backend_timeout
        self.pools = Pools(limits)
        self.identities = Identities()
        self._snapshot: SnapshotView | None = None
        self._revision = -1
        self._routes: dict[tuple[object, ...], tuple[Origin, Pool, str]] = {}

    async def forward(self, context: Context, options: ForwardOptions | None = None) -> None:
        snapshot = context.snapshot
        if snapshot is not self._snapshot and snapshot is not None:
            self._adopt(snapshot)
        target = context.backend
        if target is None:
            raise BackendError("BackendConnectionFailure", "No backend service is configured.")
        request = context.Request
        material = context.backend_certificate
        backend = None
        if target.backend_id is not None and snapshot is not None:
            backends = snapshot.backends  # (another spelling: an id an expression computed)
            backend = backends.get(target.backend_id) or backends.named(target.backend_id)
        if backend is None and target.url is None:
            raise BackendError(
                "BackendConnectionFailure", f"Backend with id '{target.backend_id}' was not found."
            )
        if backend is not None:
            if target.url is None:
                target = context.backend = backend.target  # set-backend-service backend-id="..."
            if material is None:
                if backend.certificate_error is not None:
                    log.warning("backend %s: %s", backend.id, backend.certificate_error)
                    raise BackendError("BackendConnectionFailure", backend.certificate_error)
                material = backend.certificate
            if backend.query:
                params = request.Url.params()
                for name, values in backend.query.items():
                    params[name] = list(values)
        timeout = getattr(options, "timeout", None) or self.timeout
        base = target.url
        if base is None:  # a backend entity always has its URL
            raise BackendError("BackendConnectionFailure", "No backend service is configured.")
        web_proxy = context.web_proxy
        key: tuple[object, ...] = (
            (base, material, backend)
            if web_proxy is None
            else (base, material, backend, web_proxy.key)
        )
        route = self._routes.get(key)
        if route is None or route[1].retired:
            route = self._route(key, base, material, backend, snapshot, web_proxy)
        origin, pool, base_path = route
        path = base_path + context.backend_target()
        if not path.startswith("/"):
            path = "/" + path
        proxy = pool.proxy
        proxy_line = ""
        if proxy is not None and not origin.tls:
            path = base[: origin.prefix_len] + path  # absolute-form, for the proxy
            proxy_line = proxy.header_line()
        head, stream, chunked = _request_head(request, path, origin, backend, proxy_line)
        head_only = request.Method == "HEAD"

        loop_time = self.pools.loop.time
        started = loop_time()
        deadline = started + timeout
        conn = pool.take_idle() or await pool.acquire(deadline)
        try:
            status, reason, headers, body = await _exchange(
                conn, head, stream, chunked, head_only, deadline, timeout
            )
        except ConnectionClosed:
            if stream is not None or not (conn.reused and conn.received_nothing):
                raise _closed(origin) from None
            conn = await pool.acquire(deadline, fresh=True)  # a stale keep-alive connection
            try:
                status, reason, headers, body = await _exchange(
                    conn, head, None, False, head_only, deadline, timeout
                )
            except ConnectionClosed:
                raise _closed(origin) from None
        context.backend_status = status
        context.backend_seconds = loop_time() - started
        context.Response = Response(status, reason, Headers(headers, True), body)

    def _route(
        self,
        key: tuple[object, ...],
        base: str,
        material: CertificateMaterial | None,
        backend: Backend | None,
        snapshot: SnapshotView | None,
        web_proxy: Proxy | None,
    ) -> tuple[Origin, Pool, str]:
        """The origin, pool and base path of (base URL, client certificate, backend entity or
        the proxy policy's proxy), kept until the configuration changes or the pool is retired:
        one lookup per request. The proxy policy's proxy replaces the backend entity's."""
        origin = _parse_origin(base)
        identity = self._identity(origin, material, backend, snapshot)
        proxy = web_proxy if web_proxy is not None or backend is None else backend.proxy
        base_path = base.rstrip("/")[origin.prefix_len :]
        route = origin, self.pools.get(origin, identity, proxy), base_path
        if len(self._routes) > 4096:
            self._routes.clear()
        self._routes[key] = route
        return route

    def _identity(
        self,
        origin: Origin,
        material: CertificateMaterial | None,
        backend: Backend | None,
        snapshot: SnapshotView | None,
    ) -> ClientIdentity | None:
        if not origin.tls:
            return None
        trust = (snapshot.backend_trust if snapshot is not None else None) or SYSTEM_TRUST
        chain, name = (True, True) if backend is None else backend.switches
        try:
            return self.identities.get(material, trust, chain, name)
        except (ValueError, OSError) as exc:  # no private key, a key OpenSSL refuses
            thumbprint = material.thumbprint if material is not None else None
            log.warning("client certificate %s unusable: %s", thumbprint, exc)
            raise BackendError(
                "BackendConnectionFailure", "The client certificate for the backend is unusable."
            ) from None

    def _adopt(self, snapshot: SnapshotView) -> None:
        """Retire pools a newer configuration no longer allows (older snapshots change nothing)."""
        revision = snapshot.revision
        if revision <= self._revision:
            return
        self._snapshot, self._revision = snapshot, revision
        self._routes.clear()
        live = snapshot.certificates_by_thumbprint
        trust_key = (snapshot.backend_trust or SYSTEM_TRUST).key

        def keep_key(key: tuple[object, ...]) -> bool:
            return key[1] == trust_key and (key[0] is None or key[0] in live)

        self.identities.retain(keep_key)
        retired = self.pools.retire(lambda identity: identity is None or keep_key(identity.key))
        if retired:
            log.info("configuration %s: %d backend connection pool(s) drained", revision, retired)

    def close(self) -> None:
        """Close every pooled connection (process shutdown)."""
        self.pools.close()


def _parse_origin(base: str) -> Origin:
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    netloc = parts.netloc.rpartition("@")[2]
    if scheme not in ("http", "https") or not parts.hostname or host_problem(netloc):
        raise BackendError("BackendConnectionFailure", "Invalid backend URL.")
    port = parts.port or (443 if scheme == "https" else 80)
    prefix_len = base.index(netloc) + len(netloc)
    if target_problem(base[prefix_len:]):  # once per route: the request line stays one line
        raise BackendError("BackendConnectionFailure", "Invalid backend URL.")
    return Origin(scheme, parts.hostname, port, netloc, prefix_len)


def _closed(origin: Origin) -> BackendError:
    where = f"{origin.host}:{origin.port}"
    log.warning("backend %s: connection closed before the response", where)
    return BackendError(
        "BackendConnectionFailure", f"The backend {where} closed the connection unexpectedly."
    )


def _request_head(
    request: Request, path: str, origin: Origin, backend: Backend | None, extra: str = ""
) -> tuple[bytes, AsyncIterable[bytes] | None, bool]:
    """The request head bytes (with a bytes body appended), the body stream, chunked framing."""
    method = request.Method
    host = origin.host_header
    length: str | None = None
    tokens: str | None = None
    drop: Collection[str] = backend.header_names if backend is not None else ()
    lines = []
    headers = request.Headers
    vetted = (
        headers.vetted
    )  # no policy set a field: the Host is the client's, sent as the backend's
    for name, value in headers.items():
        lower = name.lower()
        if lower in REQUEST_SKIP:
            if lower == "host":
                if not vetted and not request.names_own_host(value):
                    if host_problem(value) is not None:
                        raise UnsafeHead("the Host a policy set is not a valid authority")
                    host = value  # a policy set it
            elif lower == "content-length":
                length = value
            elif lower == "connection":
                tokens = value if tokens is None else f"{tokens},{value}"
            continue
        if lower in drop:
            continue
        lines.append(f"{name}: {value}\r\n")
    if tokens is not None:
        named = {token.strip().lower() for token in tokens.split(",")}
        lines = [line for line in lines if line.partition(":")[0].lower() not in named]
    block = "".join(lines)
    if not vetted and not head_is_clean(block, len(lines)):
        raise UnsafeHead("a request header has a CR, LF or NUL in its name or value")
    if backend is not None and backend.header_lines:
        block += backend.header_lines
    block += extra
    body = request.send_body()
    stream: AsyncIterable[bytes] | None = None
    chunked = False
    payload = b""
    if isinstance(body, (bytes, bytearray)):
        payload = body
        if body or length is not None or method in _BODY_METHODS:
            block += f"Content-Length: {len(body)}\r\n"
    else:
        stream = body
        if length is not None:
            block += f"Content-Length: {length}\r\n"
        else:
            chunked = True
            block += "Transfer-Encoding: chunked\r\n"
    text = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{block}\r\n"
    try:
        head = text.encode("latin-1")
    except UnicodeEncodeError:
        head = text.encode("utf-8")  # a policy set a non-Latin-1 value: send its UTF-8 bytes
    if payload:
        head += payload
    return head, stream, chunked


def _exchange(
    conn: UpstreamConnection,
    head: bytes,
    stream: AsyncIterable[bytes] | None,
    chunked: bool,
    head_only: bool,
    deadline: float,
    timeout: float,
) -> Awaitable[ResponseHead]:
    """One request on `conn`: the head is written now; awaiting the result gives the response
    head. Any failure or cancellation closes the connection (it is never half-reused)."""
    conn.start(head, head_only, deadline, timeout, stream is None)
    if stream is None:
        return conn.response_head()
    return _upload_then_head(conn, stream, chunked, deadline)


async def _upload_then_head(
    conn: UpstreamConnection, stream: AsyncIterable[bytes], chunked: bool, deadline: float
) -> ResponseHead:
    """The body upload waits on the client too, so the deadline bounds it as a whole."""
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            await _send_body(conn, stream, chunked)
    except ConnectionClosed:
        if not conn.response_started:
            conn.abort()
            raise  # else: the backend answered early, then closed
    except BaseException as exc:
        conn.abort()
        if isinstance(exc, TimeoutError) and scope.expired():  # not the inbound body's own
            raise BackendError(
                "Timeout", "The request was not sent to the backend within the configured timeout."
            ) from None
        raise
    return await conn.response_head()


async def _send_body(conn: UpstreamConnection, stream: AsyncIterable[bytes], chunked: bool) -> None:
    """Stream the request body; stops early when the backend already answered."""
    async for chunk in stream:
        if not chunk:
            continue
        if conn.response_started:
            return  # an early response (413, 401...): the connection will not be reused
        await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
    if chunked:
        await conn.write(b"0\r\n\r\n")
    conn.finish_request()
