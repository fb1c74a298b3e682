"""The `context` object policy expressions see, built cheaply by the gateway for every request.

Everything an expression can reach is a `CsObject` whose `__cs_members__` lists the C# names.
Constructors do no parsing: the URL, headers and query are split only when something reads them.

Constructors (what the gateway and the upstream client call):

- `Request(method, scheme, host, port, target, headers, body=None, ip_address="",
  certificate=None, authority="")`: `target` is the raw request-target (`/path?query`, still
  percent-encoded), `headers` a `Headers`, `body` a `BodyStream` or `bytes` or None,
  `certificate` an `X509Certificate2` or None, `authority` the Host the client sent.
- `Headers(pairs=None, vetted=False)`: `pairs` is a list (re-iterable) of `(name, value)` str
  pairs in wire order; it is indexed lazily on first read. `Headers.items()` yields the pairs back
  for the wire; `set`, `add`, `remove`, `get_all` are the engine's (case-insensitive) mutators.
  `vetted=True` says every pair came from a strict HTTP parser or the gateway itself (tokens, no
  CR, LF or NUL): the writers then skip their last-guard scan while no policy set or added one.
- `Response(status=200, reason="OK", headers=None, body=None)`.
- `Context(request, api=None, operation=None, product=None, deployment=None, snapshot=None,
  connection=None, backend=None, backend_path=None)`: `backend` is the API's default
  `BackendTarget(url, backend_id=None)`; `backend_path` the request path relative to the API as
  it goes on the wire (normalised, percent-encoded: the operation part; defaults to the whole
  path). `rewrite-uri` replaces it.
- `Api(id, name, path, service_url, ...)`, `Operation(id, name, method, url_template)`,
  `Product(id, name)`, `Deployment(certificates, gateway_id, service_name, region)`.

Engine-internal fields of `Context` (not visible to C#): `backend` (set-backend-service sets
`BackendTarget(url)` or `BackendTarget(None, backend_id)`: the forwarder resolves the entity),
`backend_certificate`, `connection`, `snapshot`, `forwarder` (set by `Pipeline.run`),
`on_response` (callables, sync or async, the engine applies to the final response: CORS headers,
rate-limit counters) and `cache` (cache-lookup's key for cache-store). `context.backend_target()`
is what follows the backend's base URL: the path relative to the API and the current query.

Bodies are streams (`BodyStream`): the engine awaits `Body.buffer()` before evaluating an
expression that reads the content, so `Body.As<T>()` itself is synchronous. `send_body()` on a
request or response gives what to send on: the untouched stream (no `Body` object is built until a
policy reads it), or bytes once buffered or replaced (set-body also drops `Content-Length`; the
sender computes it).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol, overload, runtime_checkable
from urllib.parse import quote, unquote, urlsplit

from certgate.expressions.dotnet import default_value
from certgate.expressions.dotnet.collections import (
    KeyValuePair,
    ReadOnlyDictionary,
    StringValuesDictionary,
)
from certgate.expressions.dotnet.json import parse_json
from certgate.expressions.dotnet.web import Uri
from certgate.expressions.dotnet.xml import XDocument, parse_element
from certgate.expressions.errors import cs_error
from certgate.expressions.model import CsObject
from certgate.expressions.runtime import cs_str
from certgate.limits import DEFAULT_LIMITS
from certgate.policy.contract import EMPTY as EMPTY_CONTRACT
from certgate.policy.contract import Contract
from certgate.policy.errors import BodyTooLarge
from certgate.policy.examples import ResponseExamples
from certgate.policy.forwarding import NO_FORWARDER, Forwarder, SnapshotView

if TYPE_CHECKING:
    from certgate.certs.material import CertificateMaterial
    from certgate.gateway.exchange import ConnectionInfo
    from certgate.gateway.upstream.proxy import Proxy
    from certgate.policy.elements.caching import LookedUp

_VARIANT = dict(zip("0123456789abcdef", "89ab89ab89ab89ab", strict=True))
_RANDOM_BATCH = 256  # ids per os.urandom call: a system call per request costs more than the id
_random: list[str] = []
os.register_at_fork(after_in_child=_random.clear)  # a forked child never repeats its parent's ids


def new_request_id() -> str:
    """A random (version 4) UUID as text, from random bytes read in batches: `str(uuid.uuid4())`
    costs a system call and three times the Python work, and the access log asks one per
    request."""
    if not _random:
        text = os.urandom(16 * _RANDOM_BATCH).hex()
        _random.extend(text[i : i + 32] for i in range(0, len(text), 32))
    h = _random.pop()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status code ('' when unknown)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


@runtime_checkable
class BodyStream(Protocol):
    """A request or response body as it arrives: async iteration of chunks, or all of it at once.

    `certgate.gateway.body.BodyBuffer` implements it for request and backend response bodies.
    A stream is read once.
    """

    @property
    def received(self) -> int:
        """Bytes that arrived so far (read or not): what a bandwidth quota counts."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def read_all(self) -> bytes: ...


class Headers(CsObject):
    """`IReadOnlyDictionary<string, string[]>` over HTTP headers: case-insensitive, multi-valued.

    Policies mutate it through the Python methods (`set`, `add`, `remove`); expressions only read.
    """

    __slots__ = ("_index", "_pairs", "vetted")
    __cs_type__ = "IReadOnlyDictionary<string, string[]>"
    __cs_members__ = frozenset(
        {"GetValueOrDefault", "ContainsKey", "Count", "Keys", "Values", "TryGetValue"}
    )

    def __init__(
        self, pairs: Iterable[tuple[str, str]] | None = None, vetted: bool = False
    ) -> None:
        self._pairs = pairs
        self._index: dict[str, tuple[str, list[str]]] | None = None
        self.vetted = vetted

    def _idx(self) -> dict[str, tuple[str, list[str]]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._pairs or ():
                entry = index.get(name.lower())
                if entry is None:
                    index[name.lower()] = (name, [value])
                else:
                    entry[1].append(value)
            self._index = index
            self._pairs = None
        return index

    # C# members
    @overload
    def GetValueOrDefault(self, name: str, default: str) -> str: ...
    @overload
    def GetValueOrDefault(self, name: str, default: None = None) -> str | None: ...
    def GetValueOrDefault(self, name: str, default: str | None = None) -> str | None:
        entry = self._idx().get(name.lower())
        return default if entry is None else ",".join(entry[1])

    def ContainsKey(self, name: str) -> bool:
        return name.lower() in self._idx()

    @property
    def Count(self) -> int:
        return len(self._idx())

    @property
    def Keys(self) -> list[str]:
        return [name for name, _ in self._idx().values()]

    @property
    def Values(self) -> list[list[str]]:
        return [list(values) for _, values in self._idx().values()]

    def TryGetValue(self, name: str) -> tuple[bool, list[str] | None]:
        entry = self._idx().get(name.lower())
        return (False, None) if entry is None else (True, list(entry[1]))

    def __getitem__(self, name: str) -> list[str]:
        entry = self._idx().get(name.lower())
        if entry is None:
            raise KeyError(name)
        return list(entry[1])

    def __iter__(self) -> Iterator[KeyValuePair]:
        return (KeyValuePair(name, list(values)) for name, values in self._idx().values())

    def __len__(self) -> int:
        return len(self._idx())

    # Engine and wire side
    def get_all(self, name: str) -> list[str]:
        entry = self._idx().get(name.lower())
        return [] if entry is None else entry[1]

    def set(self, name: str, values: list[str]) -> None:
        """Replace every value of `name` (keeps the first spelling already present)."""
        index = self._idx()
        entry = index.get(name.lower())
        index[name.lower()] = (entry[0] if entry else name, list(values))
        self.vetted = False

    def add(self, name: str, values: list[str]) -> None:
        self.vetted = False
        index = self._idx()
        entry = index.get(name.lower())
        if entry is None:
            index[name.lower()] = (name, list(values))
        else:
            entry[1].extend(values)

    def remove(self, name: str) -> None:
        self._idx().pop(name.lower(), None)

    def items(self) -> list[tuple[str, str]]:
        """The headers as wire pairs, in insertion order (the parsed list itself while no policy
        changed them: callers only read it)."""
        if self._index is None:
            return self._pairs if type(self._pairs) is list else list(self._pairs or ())
        return [(name, value) for name, values in self._index.values() for value in values]


def _parse_query(query: str) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        params.setdefault(unquote(name.replace("+", " ")), []).append(
            unquote(value.replace("+", " "))
        )
    return params


_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=\-._~]*").fullmatch


def quote_path(path: str) -> str:
    """A URL path percent-encoded for the wire (most paths need nothing: checked in C first)."""
    return path if _PLAIN_PATH(path) else quote(path, safe=_PATH_SAFE)


class Url(CsObject):
    """`IUrl`: the request URL, split from the raw target only when read."""

    __slots__ = ("_dirty", "_params", "_path", "_query_raw", "_target", "host", "port", "scheme")
    __cs_type__ = "IUrl"
    __cs_members__ = frozenset(
        {"Scheme", "Host", "Port", "Path", "Query", "QueryString", "ToUri", "ToString"}
    )

    def __init__(self, scheme: str, host: str, port: int, target: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self._target: str | None = target
        self._path = ""
        self._query_raw = ""
        self._params: dict[str, list[str]] | None = None
        self._dirty = False

    @classmethod
    def parse(cls, url: str) -> Url:
        """A Url from an absolute URL string (`https://host:port/path?query`)."""
        parts = urlsplit(url)
        scheme = parts.scheme or "https"
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(scheme, parts.hostname or "", port, target)

    def _split(self) -> None:
        target = self._target
        if target is not None:
            path, _, query = target.partition("?")
            self._path = unquote(path) or "/"
            self._query_raw = query
            self._target = None

    def _query(self) -> dict[str, list[str]]:
        self._split()
        if self._params is None:
            self._params = _parse_query(self._query_raw)
        return self._params

    @property
    def Scheme(self) -> str:
        return self.scheme

    @property
    def Host(self) -> str:
        return self.host

    @property
    def Port(self) -> int:
        return self.port

    @property
    def Path(self) -> str:
        self._split()
        return self._path

    @property
    def Query(self) -> StringValuesDictionary:
        return StringValuesDictionary(self._query())

    @property
    def QueryString(self) -> str:
        """`?a=1&b=2`, or '' without a query (as APIM renders it)."""
        query = self.raw_query()
        return f"?{query}" if query else ""

    def ToString(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.path_and_query()}"

    def ToUri(self) -> Uri:
        return Uri(self.ToString())

    # Engine side
    def raw_query(self) -> str:
        """The query string without '?', re-encoded when a policy changed the parameters."""
        self._split()
        params = self._params
        if not self._dirty or params is None:  # changed parameters are parsed ones
            return self._query_raw
        return "&".join(
            f"{quote(name, safe='')}={quote(value, safe='')}"
            for name, values in params.items()
            for value in values
        )

    def path_and_query(self) -> str:
        query = self.raw_query()
        return quote_path(self.Path) + (f"?{query}" if query else "")

    def set_path(self, path: str) -> None:
        self._split()
        self._path = path

    def params(self) -> dict[str, list[str]]:
        """The mutable decoded query parameters (set-query-parameter, rewrite-uri)."""
        self._dirty = True
        return self._query()

    def copy(self) -> Url:
        clone = Url(self.scheme, self.host, self.port, "")
        self._split()
        clone._target = None
        clone._path = self._path
        clone._query_raw = self._query_raw
        clone._params = (
            None if self._params is None else {k: list(v) for k, v in self._params.items()}
        )
        clone._dirty = self._dirty
        return clone


class Body(CsObject):
    """`IMessageBody`: a streamed body, buffered by the engine before an expression reads it."""

    __slots__ = ("_data", "_stream", "present")
    __cs_type__ = "IMessageBody"
    __cs_members__ = frozenset({"As", "AsFormUrlEncodedContent"})

    def __init__(self, source: BodyStream | bytes | None = None) -> None:
        # A message received without a body shows C# a null `Body` until a policy sets one.
        self.present = bool(source)
        self._stream: BodyStream | None = None
        if source is None:
            self._data: bytes | None = b""
        elif isinstance(source, (bytes, bytearray)):
            self._data = bytes(source)
        else:
            self._data = None
            self._stream = source

    async def buffer(
        self, limit: int = DEFAULT_LIMITS.max_buffered_body_bytes, declared: str | None = None
    ) -> bytes:
        """Read the whole stream once, at most `limit` bytes (`certgate.policy.buffering` passes
        the process's limit and the declared Content-Length); later reads use the bytes. A
        longer body raises `BodyTooLarge` before a byte is read when its declared length says
        so, else as soon as it crosses the limit; its stream is closed, nothing more read."""
        if self._data is None:
            stream, self._stream = self._stream, None
            self._data = b""  # what remains if reading fails
            if stream is not None:
                self._data = await _read_bounded(stream, limit, declared)
        return self._data

    def stream(self) -> BodyStream | bytes:
        """What to send on: the untouched stream, or the buffered bytes."""
        if self._data is None and self._stream is not None:
            return self._stream
        return self._data or b""

    def replace(self, data: bytes) -> None:
        self.present = True
        self._data = data
        self._stream = None

    def AsFormUrlEncodedContent(self, preserveContent: bool = False) -> dict[str, list[str]]:
        """The body as `application/x-www-form-urlencoded` fields (name -> values, in order)."""
        return _parse_query(self.As(preserveContent))

    def As(self, preserveContent: bool = False, *, type_arg: str = "string") -> Any:
        """`As<T>(preserveContent)`; without preserveContent the content is consumed, as in APIM."""
        if self._data is None:
            raise RuntimeError("message body was not buffered before reading it")
        data = self._data
        if not preserveContent:
            self._data = b""
        return convert_body(data, type_arg)


def declared_over(declared: str | None, limit: int) -> bool:
    """Whether a Content-Length value says the body is longer than `limit` bytes."""
    return declared is not None and declared.isdigit() and int(declared) > limit


async def _read_bounded(stream: BodyStream, limit: int, declared: str | None) -> bytes:
    if declared_over(declared, limit):
        raise _too_large(stream, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise _too_large(stream, limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(stream: BodyStream, limit: int) -> BodyTooLarge:
    close = getattr(stream, "close", None)
    if close is not None:
        close()  # a backend response: its connection, mid-response, cannot be reused
    return BodyTooLarge(limit)


def convert_body(data: bytes, type_arg: str) -> Any:
    """Body bytes as the C# type `type_arg` names (string, byte[], JObject, JArray, JToken,
    XElement, XDocument)."""
    short = type_arg.rpartition(".")[2]  # `System.String`, `Newtonsoft.Json.Linq.JObject`
    type_arg = _BODY_TYPES.get(short, short)
    if type_arg == "string":
        return data.decode("utf-8", errors="replace")
    if type_arg == "byte[]":
        return data
    if type_arg in ("JObject", "JArray", "JToken"):
        return parse_json(data.decode("utf-8", errors="replace"))
    if type_arg == "XElement":
        return parse_element(data.decode("utf-8", errors="replace"))
    if type_arg == "XDocument":
        return XDocument(parse_element(data.decode("utf-8", errors="replace")))
    raise cs_error("InvalidOperationException", f"Body.As<{type_arg}>() is not supported")


_BODY_TYPES = {"String": "string", "Byte[]": "byte[]"}


MessageBody = Body  # the classes, where `Body` and `Url` name the properties below
RequestUrl = Url


class _Message(CsObject):
    """A request or response whose `Body` object is built only when a policy reads it."""

    __slots__ = ("_body", "_source")
    _body: MessageBody | None
    _source: BodyStream | bytes | None

    @property
    def Body(self) -> MessageBody:
        if self._body is None:
            self._body = Body(self._source)
            self._source = None
        return self._body

    def _cs_body(self) -> MessageBody | None:
        """`Body` as C# sees it: null for a message without a body (APIM's documentation)."""
        body = self.Body
        return body if body.present else None

    __cs_getters__ = {"Body": _cs_body}

    def send_body(self) -> BodyStream | bytes:
        """What to send on: the body as received while no policy built `Body`, else its stream."""
        if self._body is None:
            return self._source if self._source is not None else b""
        return self._body.stream()

    def replace_stream(self, stream: BodyStream) -> None:
        """Send `stream` instead of the unread stream `send_body()` returned (a byte meter)."""
        if self._body is None:
            self._source = stream
        else:
            self._body._stream = stream


class Request(_Message):
    """`IRequest`: the client's request as the policies see and change it."""

    __slots__ = (
        "Certificate",
        "Headers",
        "IpAddress",
        "Method",
        "_authority",
        "_matched",
        "_orig",
        "_target",
        "_url",
    )
    __cs_type__ = "IRequest"
    __cs_members__ = frozenset(
        {
            "Method",
            "Url",
            "OriginalUrl",
            "Headers",
            "Body",
            "IpAddress",
            "MatchedParameters",
            "Certificate",
        }
    )

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        target: str,
        headers: Headers,
        body: BodyStream | bytes | None = None,
        ip_address: str = "",
        certificate: Any = None,
        authority: str = "",
    ) -> None:
        self.Method = method
        self._target = (scheme, host, port, target)
        self._authority = authority  # the Host the client sent
        self._url: RequestUrl | None = None
        self._orig: RequestUrl | None = None
        self.Headers = headers
        self._source = body
        self._body = None
        self.IpAddress = ip_address
        self.Certificate = certificate
        self._matched: dict[str, str] | None = None

    @property
    def Url(self) -> RequestUrl:
        """Built on first use: most requests never look at their URL's parts."""
        if self._url is None:
            self._url = Url(*self._target)
        return self._url

    @property
    def OriginalUrl(self) -> RequestUrl:
        if self._orig is None:
            self._orig = self.Url.copy()
        return self._orig

    @property
    def MatchedParameters(self) -> dict[str, str]:
        return self._matched or {}

    def url_for_change(self) -> RequestUrl:
        """`Url`, after keeping `OriginalUrl` as it was; policies call it before changing it."""
        if self._orig is None:
            self._orig = self.Url.copy()
        return self.Url

    def names_own_host(self, value: str) -> bool:
        """Whether a Host header value is the one the client sent or names this request's host
        (with or without its port): then no policy chose it."""
        if value == self._authority:
            return True
        url = self._url
        host, port = (url.host, url.port) if url is not None else self._target[1:3]
        return value == host or value == f"{host}:{port}"

    def raw_query(self) -> str:
        """The query string to send on, without '?' (read from the target while no policy
        has built `Url`: a policy changes the URL only through it)."""
        if self._url is None:
            return self._target[3].partition("?")[2]
        return self._url.raw_query()

    def set_matched_parameters(self, params: dict[str, str]) -> None:
        """URL template parameters found by the router."""
        self._matched = params


class Response(_Message):
    """`IResponse`: the backend's response, or the one policies build."""

    __slots__ = ("Headers", "StatusCode", "StatusReason")
    __cs_type__ = "IResponse"
    __cs_members__ = frozenset({"StatusCode", "StatusReason", "Headers", "Body"})

    def __init__(
        self,
        status: int = 200,
        reason: str = "OK",
        headers: Headers | None = None,
        body: BodyStream | bytes | None = None,
    ) -> None:
        self.StatusCode = status
        self.StatusReason = reason
        self.Headers = headers if headers is not None else Headers()
        self._source = body
        self._body = None


_CAST_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "double": lambda v: isinstance(v, float),
}


class Variables(ReadOnlyDictionary):
    """`IReadOnlyDictionary<string, object>` written by `set-variable`."""

    __slots__ = ()
    _values: dict[str, object]

    def __init__(self) -> None:
        super().__init__({})

    def GetValueOrDefault(
        self, name: str, default: Any = None, *, type_arg: str | None = None
    ) -> Any:
        """`GetValueOrDefault<T>` throws InvalidCastException when the stored value is no `T`;
        a missing name without a default gives C#'s `default(T)` (false, 0, null)."""
        if name not in self._values:
            return default if default is not None or type_arg is None else default_value(type_arg)
        value = self._values[name]
        expected = _CAST_CHECKS.get(type_arg) if type_arg else None
        if expected is not None and value is not None and not expected(value):
            raise cs_error(
                "InvalidCastException",
                f"Variable '{name}' holds {type(value).__name__}, not {type_arg}.",
            )
        return value

    def set(self, name: str, value: Any) -> None:
        self._values[name] = value


class LastError(CsObject):
    """`ILastError`: what failed, read in `on-error`."""

    __slots__ = ("Message", "Path", "PolicyId", "Reason", "Scope", "Section", "Source")
    __cs_type__ = "ILastError"
    __cs_members__ = frozenset(
        {"Source", "Reason", "Message", "Scope", "Section", "Path", "PolicyId"}
    )

    def __init__(
        self,
        source: str,
        reason: str | None,
        message: str,
        scope: str | None = None,
        section: str | None = None,
        path: str | None = None,
        policy_id: str | None = None,
    ) -> None:
        self.Source = source
        self.Reason = reason
        self.Message = message
        self.Scope = scope
        self.Section = section
        self.Path = path
        self.PolicyId = policy_id


class Api(CsObject):
    """`IApi`."""

    __slots__ = (
        "Id",
        "IsCurrentRevision",
        "Name",
        "Path",
        "Protocols",
        "Revision",
        "ServiceUrl",
        "Version",
    )
    __cs_type__ = "IApi"
    __cs_members__ = frozenset(
        {
            "Id",
            "Name",
            "Path",
            "Protocols",
            "ServiceUrl",
            "Version",
            "Revision",
            "IsCurrentRevision",
        }
    )

    def __init__(
        self,
        id: str,
        name: str,
        path: str = "",
        service_url: str | None = None,
        protocols: tuple[str, ...] = ("https",),
        version: str | None = None,
        revision: str = "1",
    ) -> None:
        self.Id = id
        self.Name = name
        self.Path = path
        self.ServiceUrl = Url.parse(service_url) if service_url else None
        self.Protocols = list(protocols)
        self.Version = version
        self.Revision = revision
        self.IsCurrentRevision = True


class Operation(CsObject):
    """`IOperation`."""

    __slots__ = ("Id", "Method", "Name", "UrlTemplate", "contract", "examples")
    __cs_type__ = "IOperation"
    __cs_members__ = frozenset({"Id", "Name", "Method", "UrlTemplate"})

    def __init__(
        self,
        id: str,
        name: str,
        method: str = "GET",
        url_template: str = "/",
        examples: ResponseExamples | None = None,
        contract: Contract = EMPTY_CONTRACT,
    ) -> None:
        self.Id = id
        self.Name = name
        self.Method = method
        self.UrlTemplate = url_template
        # The contract's response examples, for mock-response, and its parameters,
        # representations and responses, for the validation policies (not visible to C#).
        self.examples = examples if examples is not None else ResponseExamples()
        self.contract = contract


class Product(CsObject):
    """`IProduct`."""

    __slots__ = ("Id", "Name")
    __cs_type__ = "IProduct"
    __cs_members__ = frozenset({"Id", "Name"})

    def __init__(self, id: str, name: str) -> None:
        self.Id = id
        self.Name = name


class Deployment(CsObject):
    """`IDeployment`: `Certificates` maps thumbprint -> `X509Certificate2` (a plain dict)."""

    __slots__ = ("Certificates", "GatewayId", "Region", "ServiceName")
    __cs_type__ = "IDeployment"
    __cs_members__ = frozenset({"Certificates", "GatewayId", "ServiceName", "Region"})

    def __init__(
        self,
        certificates: dict[str, Any] | None = None,
        gateway_id: str = "managed",
        service_name: str = "certgate",
        region: str = "local",
    ) -> None:
        self.Certificates = certificates if certificates is not None else {}
        self.GatewayId = gateway_id
        self.ServiceName = service_name
        self.Region = region


class BackendTarget:
    """Where `forward-request` sends the request: a base URL and the backend entity, if any
    (no URL: the entity's, which the forwarder looks up)."""

    __slots__ = ("backend_id", "url")

    def __init__(self, url: str | None, backend_id: str | None = None) -> None:
        self.url = url
        self.backend_id = backend_id


class Context(CsObject):
    """`IProxyRequestContext`, plus the engine's own per-request state (not visible to C#)."""

    __slots__ = (
        "Api",
        "Deployment",
        "LastError",
        "Operation",
        "Product",
        "Request",
        "Subscription",
        "User",
        "_id",
        "_response",
        "_start",
        "_variables",
        "backend",
        "backend_certificate",
        "backend_path",
        "backend_seconds",  # backend time and status, set by the forwarder (access log, metrics)
        "backend_status",
        "cache",  # what cache-lookup found out, for cache-store (policy/elements/caching.py)
        "connection",
        "expression_seconds",  # set by its first metered expression (expressions/budget.py)
        "forwarder",
        "on_response",
        "snapshot",
        "traces",  # `trace` policy records, for the request's access log line
        "web_proxy",  # set by the proxy policy: the backend leg goes through this HTTP proxy
    )
    __cs_type__ = "IProxyRequestContext"
    __cs_members__ = frozenset(
        {
            "Request",
            "Response",
            "Variables",
            "Api",
            "Operation",
            "Product",
            "Deployment",
            "LastError",
            "RequestId",
            "Timestamp",
            "Elapsed",
            "User",
            "Subscription",
            "Trace",
        }
    )

    def __init__(
        self,
        request: Request,
        api: Api | None = None,
        operation: Operation | None = None,
        product: Product | None = None,
        deployment: Deployment | None = None,
        snapshot: SnapshotView | None = None,
        connection: ConnectionInfo | None = None,
        backend: BackendTarget | None = None,
        backend_path: str | None = None,
    ) -> None:
        self.Request = request
        self._response: Response | None = None
        self._variables: Variables | None = None
        self.Api = api
        self.Operation = operation
        self.Product = product
        self.Deployment = deployment if deployment is not None else _NO_DEPLOYMENT
        self.LastError: LastError | None = None
        self.User = None
        self.Subscription = None
        self._id: str | None = None
        self._start = time.perf_counter()
        self.backend = backend
        self.backend_certificate: CertificateMaterial | None = None
        self.backend_path = backend_path
        self.backend_status: int | None = None
        self.backend_seconds = 0.0
        self.connection = connection
        self.snapshot = snapshot
        self.forwarder: Forwarder = NO_FORWARDER  # the process's, set by `Pipeline.run`
        self.on_response: list[Callable[[Context], Awaitable[None] | None]] | None = None
        self.web_proxy: Proxy | None = None
        self.cache: LookedUp | None = None
        self.traces: list[dict[str, object]] | None = None

    @property
    def Response(self) -> Response:
        if self._response is None:
            self._response = Response()
        return self._response

    @Response.setter
    def Response(self, value: Response) -> None:
        self._response = value

    @property
    def Variables(self) -> Variables:
        if self._variables is None:
            self._variables = Variables()
        return self._variables

    @property
    def RequestId(self) -> str:
        if self._id is None:
            self._id = new_request_id()
        return self._id

    @property
    def Timestamp(self) -> datetime:
        return datetime.now(UTC) - self.Elapsed

    @property
    def Elapsed(self) -> timedelta:
        return timedelta(seconds=time.perf_counter() - self._start)

    def Trace(self, message: object) -> None:
        """`context.Trace(message)`: what the `trace` policy writes at severity verbose."""
        self.add_trace("expression", "verbose", cs_str(message), {})

    def add_trace(self, source: str, severity: str, message: str, metadata: dict[str, str]) -> None:
        """A trace record, written with the request's access log line (`TraceRecords`)."""
        entry: dict[str, object] = {"source": source, "severity": severity, "message": message}
        if metadata:
            entry["metadata"] = metadata
        if self.traces is None:
            self.traces = []
        self.traces.append(entry)

    def backend_target(self) -> str:
        """What follows the backend base URL (without its trailing '/'): the API-relative path
        and the current query."""
        request = self.Request
        path = self.backend_path
        if path is None:
            path = quote_path(request.Url.Path)
        query = request.raw_query()
        return f"{path}?{query}" if query else path


_NO_DEPLOYMENT = Deployment()
