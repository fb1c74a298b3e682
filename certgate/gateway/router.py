"""Routing: request path -> API (longest path prefix, by segments) -> operation (method + template).

Everything is compiled when the configuration compiles: API paths into a dict keyed by the
lower-case prefix, operation URL templates into regexes (literal templates into a dict). Matching is
case-insensitive, as in APIM, on the normalised path (`paths.normalize`): the one forwarded.
Matched template parameters come back percent-decoded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from certgate.gateway.paths import PathError, normalize
from certgate.limits import DEFAULT_LIMITS
from certgate.policy.context import BackendTarget

if TYPE_CHECKING:
    from certgate.policy.engine import Pipeline

_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_\-.]*)\}")
_HTTP_URL = re.compile(r"^https?://[^/]+")


class RouteConfigError(ValueError):
    """An API or operation definition the router cannot use; `field` names the property."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(slots=True)
class OperationRoute:
    """One compiled operation; `pipeline` is what the handler runs for it."""

    id: str
    method: str  # upper-case, or "*"
    url_template: str
    pipeline: Pipeline
    context_operation: Any = None  # the policy `context.Operation` object, built once
    _regex: re.Pattern | None = None
    _names: tuple[str, ...] = ()
    _query: tuple[tuple[str, str | None, str], ...] = ()  # (name, param or None, literal)
    _rank: tuple = ()
    _literal_path: str = ""


@dataclass(slots=True)
class ApiRoute:
    """One compiled API: its operations and default backend."""

    id: str
    path: str  # without leading/trailing slashes, original case
    service_url: str | None
    protocols: frozenset[str]
    forward_client_certificate: bool = False  # RFC 9440 Client-Cert to the backend (extension)
    context_api: Any = None  # the policy `context.Api` object, built once
    depth: int = field(init=False)  # segments in `path`: a `..` below this left the API
    backend: BackendTarget | None = field(init=False)  # a request's `context.backend` at first
    query_templates: bool = False  # an operation's template has a query: matching reads it
    operations: list[OperationRoute] = field(default_factory=list)
    _literal: dict[tuple[str, str], OperationRoute] = field(default_factory=dict)
    _patterns: list[OperationRoute] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.depth = self.path.count("/") + 1 if self.path else 0
        self.backend = BackendTarget(self.service_url) if self.service_url else None

    def add_operations(self, operations: Iterable[OperationRoute]) -> None:
        """Adds operations compiled by `operation_route`; patterns are ranked once per call."""
        for operation in operations:
            self.operations.append(operation)
            if operation._regex is None and not operation._query:
                key = (operation.method, operation.url_template.rstrip("/").lower() or "/")
                self._literal.setdefault(key, operation)
            else:
                self._patterns.append(operation)
            self.query_templates = self.query_templates or bool(operation._query)
        self._patterns.sort(key=_rank)

    def match_operation(
        self, method: str, path: str, query: str
    ) -> tuple[OperationRoute, dict[str, str]] | None:
        """`path` is the normalised remainder after the API path, starting with '/'."""
        literal = self._literal
        if literal:
            key_path = path.rstrip("/").lower() or "/"
            op = literal.get((method, key_path)) or literal.get(("*", key_path))
            if op is not None:
                return op, {}
        for op in self._patterns:
            if op.method != "*" and op.method != method:
                continue
            params: dict[str, str] = {}
            regex = op._regex
            if regex is not None:
                found = regex.match(path)
                if found is None:
                    continue
                if op._names:
                    params = {k: unquote(v) for k, v in found.groupdict().items()}
            elif (path.rstrip("/").lower() or "/") != op._literal_path:
                continue
            if op._query and not _match_query(op._query, query, params):
                continue
            return op, params
        return None


def _rank(op: OperationRoute) -> tuple:
    return op._rank


def _compile_template(op: OperationRoute) -> None:
    template = op.url_template.strip() or "/"
    if not template.startswith("/"):
        template = "/" + template
    path_template, _, query_template = template.partition("?")
    names: list[str] = []
    pattern = ["^"]
    pos = 0
    literal_chars = 0
    for found in _PARAM.finditer(path_template):
        literal = path_template[pos : found.start()]
        literal_chars += len(literal)
        pattern.append(re.escape(literal))
        star, name = found.groups()
        if name in names:
            raise RouteConfigError(
                "urlTemplate", f"operation {op.id!r}: urlTemplate repeats the parameter {name!r}"
            )
        names.append(name)
        group = name.replace("-", "_").replace(".", "_")
        pattern.append(f"(?P<{group}>.*)" if star else f"(?P<{group}>[^/]+)")
        pos = found.end()
    tail = path_template[pos:]
    wildcard_tail = tail.endswith("/*")
    if wildcard_tail:
        tail = tail[:-2]
    literal_chars += len(tail)
    pattern.append(re.escape(tail.rstrip("/")))
    pattern.append("(?:/.*)?/?$" if wildcard_tail else "/?$")
    if names or wildcard_tail:
        try:
            op._regex = re.compile("".join(pattern), re.IGNORECASE | re.DOTALL)
        except re.error as error:  # e.g. {a-b} and {a_b} become the same group name
            raise RouteConfigError(
                "urlTemplate", f"operation {op.id!r}: urlTemplate cannot be compiled ({error})"
            ) from None
        op._names = tuple(names)
    query: list[tuple[str, str | None, str]] = []
    for part in query_template.split("&"):
        if not part:
            continue
        qname, _, qvalue = part.partition("=")
        param = _PARAM.fullmatch(qvalue)
        query.append((qname, param.group(2) if param else None, qvalue))
    op._query = tuple(query)
    op._literal_path = path_template.rstrip("/").lower() or "/"
    # More specific first: explicit method, more literal characters, fewer parameters, no wildcard.
    op._rank = (op.method == "*", wildcard_tail, -literal_chars, len(names), -len(query))
    op.url_template = template


def _match_query(
    template: tuple[tuple[str, str | None, str], ...], query: str, params: dict[str, str]
) -> bool:
    values: dict[str, str] = {}
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            values.setdefault(unquote(name.replace("+", " ")), unquote(value.replace("+", " ")))
    for name, param, literal in template:
        if name not in values:
            return False
        if param is None:
            if literal and values[name] != literal:
                return False
        else:
            params[param] = values[name]
    return True


# (scheme, method, raw path) -> (normalised path, whether it differs, api, remainder, operation,
# template parameters)
RouteKey = tuple[str, str, str]
Route = tuple[str, bool, ApiRoute, str, OperationRoute, dict[str, str]]


class RouteCache:
    """Routing results by (scheme, method, raw path), for one configuration: a path seen before
    costs one dict lookup instead of normalisation and matching (clients repeat their paths).

    Bounded by the bytes of the paths it holds (`Limits.route_cache_bytes`), since paths are the
    client's choice: past the bound it starts over. Only successful routes whose operation cannot
    depend on the query are kept (`ApiRoute.query_templates`); refusals are computed each time.
    """

    __slots__ = ("_held", "_limit", "entries")

    def __init__(self, limit: int) -> None:
        self.entries: dict[RouteKey, Route] = {}
        self._held = 0
        self._limit = limit

    def put(self, key: RouteKey, route: Route) -> None:
        size = len(key[2])
        if self._held + size > self._limit:
            self.entries.clear()
            self._held = 0
            if size > self._limit:
                return
        self.entries[key] = route
        self._held += size


class Router:
    """All APIs of one configuration; `match_api`, then the API's `match_operation`, route a
    request, and `cache` remembers their results by path."""

    __slots__ = ("_apis", "_depth", "cache")

    def __init__(
        self,
        apis: Iterable[ApiRoute],
        refused: Callable[[ApiRoute, RouteConfigError], None] | None = None,
        cache_bytes: int = DEFAULT_LIMITS.route_cache_bytes,
    ) -> None:
        """Raises RouteConfigError (APIM's message) when two APIs share a path; with `refused`,
        the later one in `apis` is reported to it and left out instead."""
        self.cache = RouteCache(cache_bytes)
        self._apis: dict[str, ApiRoute] = {}
        for api in apis:
            key = api.path.strip("/").lower()
            if key in self._apis:
                error = RouteConfigError(
                    "path",
                    f"Cannot create API '{api.id}' with the same Path '{api.path}' as API "
                    f"'{self._apis[key].id}' unless it's a part of the same version set.",
                )
                if refused is None:
                    raise error
                refused(api, error)
                continue
            self._apis[key] = api
        self._depth = max((k.count("/") + 1 for k in self._apis if k), default=0)

    @property
    def apis(self) -> list[ApiRoute]:
        return list(self._apis.values())

    def match_api(self, path: str) -> tuple[ApiRoute, str] | None:
        """Longest API path prefix of `path` (normalised, starting with '/'): the API and the
        remainder."""
        apis = self._apis
        lower = path.lower()
        if self._depth == 1:  # the usual case: single-segment API paths
            end = lower.find("/", 1)
            api = apis.get(lower[1:] if end < 0 else lower[1:end])
            if api is not None and api.path:
                return api, "/" if end < 0 else path[end:]
        else:
            segments = lower[1:].split("/", self._depth)
            for n in range(min(len(segments), self._depth), 0, -1):
                key = "/".join(segments[:n])
                api = apis.get(key)
                if api is not None and key:
                    remainder = path[len(key) + 1 :]
                    return api, remainder or "/"
        api = apis.get("")
        if api is not None:
            return api, path or "/"
        return None


def api_path_problem(path: str) -> str | None:
    """Why an API path (without outer slashes) could never match a request: requests are routed
    on their normalised path, so the API path must be normalised too."""
    try:
        if normalize("/" + path)[0] == "/" + path:
            return None
    except PathError:
        pass
    return (
        f"'path' {path!r} is not a normalised URL path (no '.', '..' or empty segments, no "
        "escapes of unreserved characters or of '/', no characters a URL must escape)"
    )


def api_route(api_id: str, properties: Mapping[str, Any]) -> ApiRoute:
    """An `ApiRoute` from ARM `apis/{id}` properties (or the whole resource with `properties`)."""
    props = properties.get("properties", properties)
    path = props.get("path")
    if path is None or not isinstance(path, str):
        raise RouteConfigError(
            "path", f"api {api_id!r}: 'path' is required (a string, '' for the root)"
        )
    protocols = props.get("protocols") or ["https"]
    if not isinstance(protocols, list) or not set(protocols) <= {"http", "https"}:
        raise RouteConfigError(
            "protocols", f"api {api_id!r}: 'protocols' must be a list of 'http'/'https'"
        )
    service_url = props.get("serviceUrl")
    if service_url is not None:
        _check_service_url(api_id, service_url)
    path = path.strip("/")
    problem = api_path_problem(path)
    if problem is not None:
        raise RouteConfigError("path", f"api {api_id!r}: {problem}")
    return ApiRoute(
        api_id,
        path,
        service_url,
        frozenset(protocols),
        bool(props.get("forwardClientCertificate")),
    )


def _check_service_url(api_id: str, value: Any) -> None:
    """An absolute http(s) URL with a host and a valid port (what the forwarder can reach)."""
    if not isinstance(value, str) or not _HTTP_URL.match(value):
        raise RouteConfigError("serviceUrl", f"api {api_id!r}: 'serviceUrl' must be an http(s) URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError when out of range)
    except ValueError as error:
        raise RouteConfigError(
            "serviceUrl", f"api {api_id!r}: 'serviceUrl' is not a valid URL ({error})"
        ) from None
    if not parts.hostname:
        raise RouteConfigError("serviceUrl", f"api {api_id!r}: 'serviceUrl' has no host")


def operation_route(
    operation_id: str, properties: Mapping[str, Any], pipeline: Pipeline
) -> OperationRoute:
    """A compiled `OperationRoute` from ARM `apis/{a}/operations/{id}` properties."""
    props = properties.get("properties", properties)
    method = props.get("method")
    if not method or not isinstance(method, str):
        raise RouteConfigError(
            "method", f"operation {operation_id!r}: 'method' is required (or '*')"
        )
    template = props.get("urlTemplate")
    if not template or not isinstance(template, str):
        raise RouteConfigError(
            "urlTemplate", f"operation {operation_id!r}: 'urlTemplate' is required"
        )
    route = OperationRoute(operation_id, method.upper(), template, pipeline)
    _compile_template(route)
    return route
