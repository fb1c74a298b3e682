"""A small fixed `context` for expression tests, following the protocol in
`certgate/expressions/__init__.py` (the real one is `certgate/policy/context.py`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certgate.expressions.dotnet import default_value
from certgate.expressions.dotnet.collections import KeyValuePair
from certgate.expressions.dotnet.json import parse_json
from certgate.expressions.model import CsObject
from certgate.policy import context as real


class Dictionary(CsObject):
    """A read-only IReadOnlyDictionary<string, T> with APIM's helpers."""

    __cs_type__ = "IReadOnlyDictionary"
    __cs_members__ = frozenset(
        {"Keys", "Values", "Count", "ContainsKey", "TryGetValue", "GetValueOrDefault"}
    )

    def __init__(self, items: dict, case_insensitive: bool = False) -> None:
        self._ci = case_insensitive
        self._items = {self._k(k): (k, v) for k, v in items.items()}

    def _k(self, key: str) -> str:
        return key.lower() if self._ci else key

    @property
    def Keys(self) -> list:
        return [k for k, _ in self._items.values()]

    @property
    def Values(self) -> list:
        return [v for _, v in self._items.values()]

    @property
    def Count(self) -> int:
        return len(self._items)

    def ContainsKey(self, key: str) -> bool:
        return self._k(key) in self._items

    def TryGetValue(self, key: str) -> tuple[bool, object]:
        hit = self._items.get(self._k(key))
        return (True, hit[1]) if hit else (False, None)

    def GetValueOrDefault(self, key: str, default: object = None, type_arg: str | None = None):
        hit = self._items.get(self._k(key))
        if hit is None:
            return default if default is not None else default_value(type_arg)
        return hit[1]

    def __getitem__(self, key: str) -> object:
        return self._items[self._k(key)][1]

    def __iter__(self):
        return iter([KeyValuePair(k, v) for k, v in self._items.values()])


class Headers(Dictionary):
    """Header values are string[]; GetValueOrDefault joins them with commas."""

    def GetValueOrDefault(self, key: str, default: object = None, type_arg: str | None = None):
        hit = self._items.get(self._k(key))
        return default if hit is None else ",".join(hit[1])


class Url(CsObject):
    __cs_type__ = "IUrl"
    __cs_members__ = frozenset(
        {"Host", "Path", "Port", "Scheme", "Query", "QueryString", "ToString"}
    )

    def __init__(self) -> None:
        self.Host, self.Path, self.Port, self.Scheme = "api.example.com", "/orders/42", 443, "https"
        self.Query = Dictionary({"page": "2", "sort": "desc"})
        self.QueryString = "?page=2&sort=desc"

    def ToString(self) -> str:
        return f"{self.Scheme}://{self.Host}{self.Path}{self.QueryString}"


class Body(CsObject):
    __cs_type__ = "IMessageBody"
    __cs_members__ = frozenset({"As"})

    def __init__(self, text: str) -> None:
        self.text = text
        self.reads = 0

    def As(self, preserveContent: bool = False, type_arg: str = "string"):
        self.reads += 1
        return self.text if type_arg == "string" else parse_json(self.text)


class Certificate(CsObject):
    __cs_type__ = "X509Certificate2"
    __cs_members__ = frozenset(
        {"Thumbprint", "Subject", "Issuer", "NotAfter", "NotBefore", "Verify"}
    )

    def __init__(self, thumbprint: str, subject: str = "CN=client") -> None:
        self.Thumbprint, self.Subject, self.Issuer = thumbprint, subject, "CN=ca"
        self.NotBefore = datetime(2024, 1, 1)
        self.NotAfter = datetime(2099, 1, 1)

    def Verify(self) -> bool:
        return self.Thumbprint == "ABC"


class Request(CsObject):
    __cs_type__ = "IRequest"
    __cs_members__ = real.Request.__cs_members__  # the real request's C# surface, not a copy

    def __init__(self, certificate: Certificate | None) -> None:
        self.Method = "POST"
        self.Url = self.OriginalUrl = Url()
        self.Headers = Headers(
            {
                "Accept": ["application/json", "text/plain"],
                "X-Id": ["7"],
                "Authorization": ["Bearer t0k"],
            },
            case_insensitive=True,
        )
        self.Body = Body('{"name": "Ada", "tags": ["a", "b"], "n": 3, "nested": {"ok": true}}')
        self.IpAddress = "10.1.2.3"
        self.MatchedParameters = Dictionary({"id": "42"})
        self.Certificate = certificate


class Response(CsObject):
    __cs_type__ = "IResponse"
    __cs_members__ = real.Response.__cs_members__

    def __init__(self) -> None:
        self.StatusCode, self.StatusReason = 200, "OK"
        self.Headers = Headers({"Content-Type": ["application/json"]}, case_insensitive=True)
        self.Body = Body("[1, 2, 3]")


class Deployment(CsObject):
    __cs_type__ = "IDeployment"
    __cs_members__ = frozenset({"Certificates", "GatewayId", "Region", "ServiceName"})

    def __init__(self) -> None:
        self.GatewayId, self.Region, self.ServiceName = "managed", "West Europe", "certgate"
        self.Certificates = Dictionary({"ABC": Certificate("ABC"), "DEF": Certificate("DEF")})


class Context(CsObject):
    __cs_type__ = "IProxyRequestContext"
    __cs_members__ = frozenset(
        {"Request", "Response", "Variables", "Deployment", "RequestId", "Timestamp", "Elapsed"}
    )

    def __init__(self, certificate: Certificate | None = None) -> None:
        self.Request = Request(certificate)
        self.Response = Response()
        self.Deployment = Deployment()
        self.Variables = Dictionary(
            {
                "count": 5,
                "name": "ada",
                "flag": True,
                "json": parse_json('{"a": {"b": [10, 20]}, "s": "x"}'),
                "when": datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC),
                "nothing": None,
            }
        )
        self.RequestId = "0f8fad5b-d9cb-469f-a165-70867728950e"
        self.Timestamp = datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC)
        self.Elapsed = timedelta(milliseconds=1500)
