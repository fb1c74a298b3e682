"""Per request: one config reference, route, build the policy `context`, run the pipeline, respond.

The protocols (HTTP/1.1, HTTP/2) call `RequestHandler.__call__(exchange)`. Routing failures and
unexpected errors become APIM-style JSON responses, never a stack trace.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING

from certgate.gateway.body import ClientDisconnected
from certgate.gateway.config import GatewayConfig
from certgate.gateway.exchange import ConnectionInfo, Exchange
from certgate.gateway.paths import PathError, normalize
from certgate.gateway.router import Route, RouteKey, Router
from certgate.httpsyntax import target_problem
from certgate.observe.accesslog import AccessLog
from certgate.observe.accesslog import line as access_line
from certgate.observe.metrics import RequestMetrics
from certgate.policy.context import Context, Headers, Request, reason_phrase
from certgate.policy.forwarding import Forwarder

if TYPE_CHECKING:
    from certgate.certs.x509 import X509Certificate2
    from certgate.policy.engine import Pipeline

log = logging.getLogger("certgate.gateway")

_JSON = [("content-type", "application/json; charset=utf-8")]
_EMPTY: list[tuple[str, str]] = []
STATUS_PATH = "/status-0123456789abcdef"  # APIM's gateway status endpoint (self-hosted probes)


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"statusCode": status, "message": message}).encode()


_NOT_FOUND = error_body(404, "Resource not found")
_BAD_TARGET = error_body(400, "Bad request: the request target must be an absolute path")
_BAD_QUERY = error_body(400, "Bad request: a control character or space in the query")
_ABOVE_ROOT = error_body(400, "Bad request: the path climbs above the API's root")
_INTERNAL = error_body(500, "Internal server error")
_BACKEND_STATUS = {"BackendConnectionFailure": 500, "Timeout": 504}


class _Refused(Exception):
    """The request matches no API or operation: a fixed JSON answer, no pipeline runs."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        self.status, self.reason, self.body = status, reason, body


class RequestHandler:
    """Turns one exchange into a pipeline run; `config_ref()` returns the current GatewayConfig.
    Every answered request is observed once (`RequestMetrics`) and, with an `access_log`,
    written as one line."""

    __slots__ = ("_config_ref", "_forwarder", "access_log", "metrics")

    def __init__(
        self,
        config_ref: Callable[[], GatewayConfig],
        forwarder: Forwarder,
        access_log: AccessLog | None = None,
    ) -> None:
        self._config_ref = config_ref
        self._forwarder = forwarder
        self.access_log = access_log
        self.metrics = RequestMetrics()

    async def __call__(self, exchange: Exchange) -> None:
        if exchange.target == STATUS_PATH:  # APIM's gateway health probe: before routing
            await exchange.respond(200, "OK", _EMPTY, b"", True)
            return
        start = perf_counter()
        config = self._config_ref()
        context: Context | None = None
        status = 0
        try:
            context, pipeline = _prepare(exchange, config)
            conn = exchange.conn
            peer, prefetch = conn.peer, config.crl_prefetch
            if prefetch is not None and peer is not None and conn.crl_prefetched is not prefetch:
                await prefetch(peer.leaf.cert, tuple(c.cert for c in peer.chain))
                conn.crl_prefetched = prefetch
            response = await pipeline.run(context, config.forwarder or self._forwarder)
            body = response.send_body()
            status = response.StatusCode
            try:
                await exchange.respond(
                    status,
                    response.StatusReason or reason_phrase(status),
                    response.Headers.items(),
                    body,
                    response.Headers.vetted,
                )
            except BaseException:
                close = getattr(body, "close", None)
                if close is not None:
                    close()  # the upstream connection, mid-response, is closed, not leaked
                raise
        except _Refused as refused:
            status = refused.status
            await exchange.respond(status, refused.reason, _JSON, refused.body, True)
        except (asyncio.CancelledError, ClientDisconnected):
            raise
        except Exception as exc:
            if exchange.responded:
                raise  # mid-response: the protocol aborts the connection
            status = await _respond_error(exchange, exc)
        finally:
            seconds = perf_counter() - start
            self.metrics.observe(context, status, seconds)
            if self.access_log is not None and config.access_log:
                self.access_log.write(access_line(exchange, context, config, status, seconds))


def _prepare(exchange: Exchange, config: GatewayConfig) -> tuple[Context, Pipeline]:
    """Route the request and build its policy `context` (no I/O); raises `_Refused`."""
    target = exchange.target
    if not target.startswith("/"):
        origin_form = _origin_form(target)
        if origin_form is None:
            raise _Refused(400, "Bad Request", _BAD_TARGET)
        target = origin_form
    raw_path, sep, query = target.partition("?")
    conn = exchange.conn
    method = exchange.method
    router = config.router
    key = (conn.scheme, method, raw_path)
    route = router.cache.entries.get(key) or _route(router, key, query)
    path, changed, api, remainder, operation, params = route
    if sep and target_problem(query):
        raise _Refused(400, "Bad Request", _BAD_QUERY)
    if changed:
        target = f"{path}?{query}" if sep else path

    authority = exchange.authority
    if authority != conn.authority:  # keep-alive clients repeat the same Host
        conn.authority = authority
        conn.host_port = _split_authority(authority, conn)
    host, port = conn.host_port
    pairs = exchange.headers  # a fresh list per request: extended in place
    forwarded_for = exchange.forwarded_for
    pairs.append(
        (
            "X-Forwarded-For",
            conn.client_ip if forwarded_for is None else f"{forwarded_for}, {conn.client_ip}",
        )
    )
    pairs.append(("X-Forwarded-Proto", conn.scheme))
    if authority:
        pairs.append(("X-Forwarded-Host", authority))
    certificate = conn.client_certificate(config.verifier) if conn.peer is not None else None
    if api.forward_client_certificate and certificate is not None:
        add_client_cert_headers(pairs, certificate, conn.client_chain_der)
    request = Request(
        method,
        conn.scheme,
        host,
        port,
        target,
        Headers(pairs, True),  # parsed strictly, plus the gateway's own fields
        exchange.body,
        conn.client_ip,
        certificate,
        authority,
    )
    if params:
        request.set_matched_parameters(params)
    context = Context(  # positional: keyword matching costs more than the rest of the call
        request,
        api.context_api,
        operation.context_operation,
        None,  # product
        config.deployment,
        config.snapshot,
        conn,
        api.backend,
        remainder,
    )
    return context, operation.pipeline


def _route(router: Router, key: RouteKey, query: str) -> Route:
    """Normalise the path, then find its API and operation (`router.cache` keeps the result);
    raises `_Refused`."""
    scheme, method, raw_path = key
    try:
        path, floor = normalize(raw_path)
    except PathError as exc:
        raise _Refused(400, "Bad Request", error_body(400, f"Bad request: {exc}")) from None
    found = router.match_api(path)
    if found is None or scheme not in found[0].protocols:
        raise _Refused(404, "Not Found", _NOT_FOUND)
    api, remainder = found
    if floor < api.depth:
        raise _Refused(400, "Bad Request", _ABOVE_ROOT)
    matched = api.match_operation(method, remainder, query)
    if matched is None:
        raise _Refused(404, "Not Found", _NOT_FOUND)
    route = (path, path != raw_path, api, remainder, *matched)
    if not api.query_templates:
        router.cache.put(key, route)
    return route


def add_client_cert_headers(
    pairs: list[tuple[str, str]], certificate: X509Certificate2, ders: list[bytes]
) -> None:
    """RFC 9440 `Client-Cert` (and `Client-Cert-Chain`) for a certificate that passes `Verify()`."""
    if not certificate.Verify():
        return
    leaf, *chain = ders
    pairs.append(("Client-Cert", _byte_sequence(leaf)))
    if chain:
        pairs.append(("Client-Cert-Chain", ", ".join(_byte_sequence(d) for d in chain)))


def _byte_sequence(der: bytes) -> str:
    """An RFC 8941 byte sequence: base64 between colons."""
    return f":{base64.b64encode(der).decode()}:"


async def _respond_error(exchange: Exchange, exc: Exception) -> int:
    """Answers an unexpected failure; returns the status sent."""
    reason = getattr(exc, "reason", None)
    status = _BACKEND_STATUS.get(reason) if isinstance(reason, str) else None
    if status is None:
        log.error("request failed: %s", type(exc).__name__, exc_info=exc)
        await exchange.respond(500, "Internal Server Error", _JSON, _INTERNAL)
        return 500
    message = "Gateway Timeout" if status == 504 else "Internal server error"  # no backend details
    body = json.dumps({"statusCode": status, "message": message, "reason": reason}).encode()
    await exchange.respond(status, reason_phrase(status), _JSON, body)
    return status


def _origin_form(target: str) -> str | None:
    """The path?query of an absolute-form request target (`http://host/path`), else None."""
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    slash = rest.find("/")
    return "/" if slash < 0 else rest[slash:]


def _split_authority(authority: str, conn: ConnectionInfo) -> tuple[str, int]:
    if not authority:
        return conn.server_name or "localhost", conn.local_port
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[: end + 1], authority[end + 1 :]
    else:
        host, _, rest = authority.partition(":")
        rest = ":" + rest if rest else ""
    if rest.startswith(":") and rest[1:].isdigit():
        return host, int(rest[1:])
    return host, 443 if conn.scheme == "https" else 80
