"""APIM's string extensions for credentials: `AsJwt()`/`TryParseJwt()` and
`AsBasic()`/`TryParseBasic()`, with the `Jwt` and `BasicAuthCredentials` types they return.

Parsing only: neither checks a signature or a password (that is `validate-jwt`'s job). A value
that is not a token (or not `Basic` credentials) gives null, as in APIM. `AsJwt()` takes the
token alone or the whole `Authorization` value (`Bearer <token>`), which real policies pass.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime

from ..model import CsObject
from ..runtime import cs_str
from . import members
from .collections import StringValuesDictionary

MAX_TOKEN = 64 * 1024  # longer than any header the gateway accepts


class Jwt(CsObject):
    """APIM's `Jwt`: the header's and payload's registered claims, and all claims as string[]."""

    __slots__ = (
        "Algorithm",
        "Audiences",
        "Claims",
        "ExpirationTime",
        "Id",
        "IssuedAt",
        "Issuer",
        "NotBefore",
        "Subject",
        "Type",
    )
    __cs_type__ = "Jwt"
    __cs_members__ = frozenset(__slots__)

    def __init__(self, header: dict, payload: dict) -> None:
        self.Algorithm = _text(header.get("alg"))
        self.Type = _text(header.get("typ"))
        claims = {name: _values(value) for name, value in payload.items()}
        self.Claims = StringValuesDictionary(claims)
        self.Audiences = claims.get("aud", [])
        self.Id = _text(payload.get("jti"))
        self.Issuer = _text(payload.get("iss"))
        self.Subject = _text(payload.get("sub"))
        self.ExpirationTime = _time(payload.get("exp"))
        self.IssuedAt = _time(payload.get("iat"))
        self.NotBefore = _time(payload.get("nbf"))


class BasicAuthCredentials(CsObject):
    """APIM's `BasicAuthCredentials` from an `Authorization: Basic ...` value."""

    __slots__ = ("Password", "UserId")
    __cs_type__ = "BasicAuthCredentials"
    __cs_members__ = frozenset(__slots__)

    def __init__(self, user_id: str, password: str) -> None:
        self.UserId = user_id
        self.Password = password


def _text(value: object) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def _values(value: object) -> list[str]:
    """A claim as string[]: each array item, strings as they are, other JSON as its text."""
    items = value if isinstance(value, list) else [value]
    return [
        item if isinstance(item, str) else json.dumps(item, separators=(",", ":")) for item in items
    ]


def _time(value: object) -> datetime | None:
    """A NumericDate claim as a UTC DateTime (null when absent or not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _segment(part: str) -> dict | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def as_jwt(value: object) -> Jwt | None:
    text = cs_str(value).strip() if value is not None else ""
    if len(text) > MAX_TOKEN:
        return None
    scheme, _, rest = text.partition(" ")
    if rest and scheme.lower() == "bearer":
        text = rest.strip()
    parts = text.split(".")
    if len(parts) not in (3, 5):  # JWS compact, or JWE (whose payload we cannot read)
        return None
    header = _segment(parts[0])
    if header is None or len(parts) != 3:
        return None
    payload = _segment(parts[1])
    return None if payload is None else Jwt(header, payload)


def as_basic(value: object) -> BasicAuthCredentials | None:
    text = cs_str(value).strip() if value is not None else ""
    scheme, _, encoded = text.partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > MAX_TOKEN:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        return None
    user, colon, password = decoded.partition(":")
    return BasicAuthCredentials(user, password) if colon else None


def _try(parse: Callable[[object], object]) -> Callable[[object], tuple[bool, object]]:
    """`TryParseX(out x)`: the out parameter comes back as the tuple's second item."""

    def attempt(value: object) -> tuple[bool, object]:
        parsed = parse(value)
        return parsed is not None, parsed

    return attempt


members(
    str,
    methods={
        "AsJwt": as_jwt,
        "TryParseJwt": _try(as_jwt),
        "AsBasic": as_basic,
        "TryParseBasic": _try(as_basic),
    },
)
