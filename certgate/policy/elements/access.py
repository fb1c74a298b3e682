"""Access rules: check-header, ip-filter, cors, authentication-basic."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from certgate.httpsyntax import value_problem
from certgate.policy.context import Context, Headers, Response
from certgate.policy.elements.control import string_of
from certgate.policy.errors import PolicyRuntimeError
from certgate.policy.loader import Loader
from certgate.policy.reader import Node
from certgate.policy.registry import Policy, register
from certgate.policy.values import Value, as_bool, as_int

IPAddress = IPv4Address | IPv6Address


@register("check-header")
@dataclass(slots=True)
class CheckHeader(Policy):
    """Refuse the request unless a header is present (with one of the listed values)."""

    header: Value
    status: Value
    message: Value
    ignore_case: Value
    values: tuple[Value, ...]
    attributes = frozenset(
        {"name", "failed-check-httpcode", "failed-check-error-message", "ignore-case"}
    )
    expressions = attributes | {"value/#text"}

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        header = loader.attr(node, "name", required=True)
        status = loader.attr(node, "failed-check-httpcode", required=True)
        message = loader.attr(node, "failed-check-error-message", required=True)
        ignore_case = loader.attr(node, "ignore-case", required=True)
        values = []
        for child in loader.children(node, {"value"}):
            loader.no_children(child)
            values.append(loader.text(child))
        return cls(header, status, message, ignore_case, tuple(values))

    def _fail(self, context: Context, reason: str, detail: str) -> PolicyRuntimeError:
        return PolicyRuntimeError(
            reason,
            detail,
            status=as_int(self.status.evaluate(context)),
            public_message=string_of(self.message, context),
        )

    async def execute(self, context: Context) -> bool | int | None:
        name = string_of(self.header, context)
        present = context.Request.Headers.get_all(name)
        if not present:
            raise self._fail(
                context, "HeaderNotFound", f"Header {name} was not found in the request."
            )
        if not self.values:
            return None
        allowed = [string_of(v, context) for v in self.values]
        fold = as_bool(self.ignore_case.evaluate(context))
        if fold:
            allowed = [a.lower() for a in allowed]
        for value in present:
            if (value.lower() if fold else value) in allowed:
                return None
        raise self._fail(
            context,
            "HeaderValueNotAllowed",
            f"Header {name} value of {','.join(present)} is not allowed.",
        )


@register("ip-filter")
@dataclass(slots=True)
class IpFilter(Policy):
    """Allow or forbid callers by address and address range."""

    allow: bool
    networks: tuple[IPv4Network | IPv6Network, ...]
    ranges: tuple[tuple[int, int, int], ...]  # IP version, first and last address
    attributes = frozenset({"action"})
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        action = loader.literal(node, "action", required=True)
        if action not in ("allow", "forbid"):
            raise node.error("Attribute 'action' must be 'allow' or 'forbid'.")
        networks: list[IPv4Network | IPv6Network] = []
        ranges: list[tuple[int, int, int]] = []
        for child in loader.children(node, {"address", "address-range"}):
            loader.no_children(child)
            try:
                if child.tag == "address":
                    networks.append(ipaddress.ip_network(child.text.strip(), strict=False))
                else:
                    low = ipaddress.ip_address(loader.literal(child, "from", required=True))
                    high = ipaddress.ip_address(loader.literal(child, "to", required=True))
                    ranges.append((low.version, int(low), int(high)))
            except ValueError as exc:
                raise child.error(f"Invalid IP address: {exc}.") from None
        return cls(action == "allow", tuple(networks), tuple(ranges))

    def _listed(self, ip: IPAddress) -> bool:
        if any(ip in network for network in self.networks if network.version == ip.version):
            return True
        value, version = int(ip), ip.version
        return any(v == version and low <= value <= high for v, low, high in self.ranges)

    async def execute(self, context: Context) -> bool | int | None:
        raw = context.Request.IpAddress
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            raise PolicyRuntimeError(
                "FailedToParseCallerIP",
                "Failed to establish IP address for the caller. Access denied.",
                status=403,
                public_message="Forbidden",
            ) from None
        listed = self._listed(ip)
        if self.allow and not listed:
            raise PolicyRuntimeError(
                "CallerIpNotAllowed",
                f"Caller IP address {raw} is not allowed. Access denied.",
                status=403,
                public_message="Forbidden",
            )
        if not self.allow and listed:
            raise PolicyRuntimeError(
                "CallerIpBlocked",
                "Caller IP address is blocked. Access denied.",
                status=403,
                public_message="Forbidden",
            )
        return None


@register("authentication-basic")
@dataclass(slots=True)
class AuthenticationBasic(Policy):
    """Send `Authorization: Basic` to the backend."""

    username: Value
    password: Value
    attributes = frozenset({"username", "password"})
    expressions = attributes
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        loader.no_children(node)
        return cls(
            loader.attr(node, "username", required=True),
            loader.attr(node, "password", required=True),
        )

    async def execute(self, context: Context) -> bool | int | None:
        pair = f"{string_of(self.username, context)}:{string_of(self.password, context)}"
        token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        context.Request.Headers.set("Authorization", [f"Basic {token}"])
        return None


def _items(node: Node, loader: Loader, container: str, item: str) -> list[str]:
    values = []
    for child in loader.children(node, {item}):
        loader.no_children(child)
        values.append(child.text.strip())
    if not values:
        raise node.error(f"Element '{container}' needs at least one '{item}'.")
    return values


@register("cors")
@dataclass(slots=True)
class Cors(Policy):
    """Answer CORS preflight requests and add CORS headers to allowed cross-origin responses."""

    credentials: bool
    terminate: bool
    origins: frozenset[str]
    methods: frozenset[str] | None
    headers: frozenset[str] | None
    expose: tuple[str, ...]
    max_age: int | None
    any_origin: bool
    attributes = frozenset({"allow-credentials", "terminate-unmatched-request"})
    sections = frozenset({"inbound"})

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        credentials = loader.const_bool(node, "allow-credentials", False)
        terminate = loader.const_bool(node, "terminate-unmatched-request", True)
        origins: frozenset[str] = frozenset()
        methods: frozenset[str] | None = None
        headers: frozenset[str] | None = None
        expose: tuple[str, ...] = ()
        max_age = None
        children = {"allowed-origins", "allowed-methods", "allowed-headers", "expose-headers"}
        for child in loader.children(node, children):
            if child.tag == "allowed-origins":
                origins = frozenset(
                    o.rstrip("/") for o in _items(child, loader, child.tag, "origin")
                )
            elif child.tag == "allowed-methods":
                methods = frozenset(m.upper() for m in _items(child, loader, child.tag, "method"))
                max_age = loader.const_int(child, "preflight-result-max-age")
            elif child.tag == "allowed-headers":
                headers = frozenset(h.lower() for h in _items(child, loader, child.tag, "header"))
            else:
                expose = tuple(_items(child, loader, child.tag, "header"))
        if not origins:
            raise node.error("Element 'cors' needs 'allowed-origins'.")
        for item in (*origins, *(methods or ()), *expose):
            problem = value_problem(item)  # each goes into a response header value
            if problem is not None:
                raise node.error(problem)
        any_origin = "*" in origins
        if any_origin and credentials:
            raise node.error("Wildcard origin '*' cannot be used with allow-credentials.")
        return cls(credentials, terminate, origins, methods, headers, expose, max_age, any_origin)

    def _allow_origin(self, origin: str) -> str:
        return "*" if self.any_origin else origin

    async def execute(self, context: Context) -> bool | int | None:
        request = context.Request
        origin = request.Headers.GetValueOrDefault("Origin")
        if origin is None:
            return None
        origin_ok = self.any_origin or origin.rstrip("/") in self.origins
        wanted = request.Headers.GetValueOrDefault("Access-Control-Request-Method")
        if request.Method == "OPTIONS" and wanted is not None:
            return self._preflight(context, origin, origin_ok, wanted)
        if origin_ok:
            context.on_response = [*(context.on_response or ()), self._decorate(origin)]
            return None
        if self.terminate and request.Method in ("GET", "HEAD"):
            context.Response = Response(200, "OK", body=b"")
            return True
        return None

    def _preflight(
        self, context: Context, origin: str, origin_ok: bool, wanted: str
    ) -> bool | None:
        asked = context.Request.Headers.GetValueOrDefault("Access-Control-Request-Headers", "")
        asked_headers = [h.strip().lower() for h in asked.split(",") if h.strip()]
        methods = self.methods if self.methods is not None else frozenset({"GET", "POST"})
        ok = (
            origin_ok
            and ("*" in methods or wanted.upper() in methods)
            and (
                not asked_headers
                or (
                    self.headers is not None
                    and ("*" in self.headers or all(h in self.headers for h in asked_headers))
                )
            )
        )
        if not ok:
            if self.terminate:
                context.Response = Response(200, "OK", body=b"")
                return True
            return None
        headers = Headers()
        headers.set("Access-Control-Allow-Origin", [self._allow_origin(origin)])
        headers.set("Access-Control-Allow-Methods", [wanted.upper()])
        if asked:
            headers.set("Access-Control-Allow-Headers", [asked])
        if self.credentials:
            headers.set("Access-Control-Allow-Credentials", ["true"])
        if self.max_age is not None:
            headers.set("Access-Control-Max-Age", [str(self.max_age)])
        if not self.any_origin:
            headers.set("Vary", ["Origin"])
        context.Response = Response(200, "OK", headers, b"")
        return True

    def _decorate(self, origin: str) -> Callable[[Context], None]:
        def add(context: Context) -> None:
            headers = context.Response.Headers
            headers.set("Access-Control-Allow-Origin", [self._allow_origin(origin)])
            if self.credentials:
                headers.set("Access-Control-Allow-Credentials", ["true"])
            if self.expose:
                headers.set("Access-Control-Expose-Headers", [",".join(self.expose)])

        return add
