"""OpenID Connect discovery for validate-jwt: the configuration document and its signing keys.

Per process, one entry per configuration URL: the document's `issuer` and the keys of its
`jwks_uri`, fetched through the forwarder (`certgate.policy.sidecall`: the backend leg's trust and
pools). Everything is bounded by `Limits`: an entry is reused for `openid_config_ttl` seconds; a
token naming a key id the entry lacks (the identity provider rotated its keys) refetches at most
once per `openid_refresh_interval` seconds, so forged key ids cannot make the gateway hammer the
provider; at most `openid_documents` entries are kept (least recently used dropped); a fetch takes
at most `openid_timeout` seconds and `max_openid_bytes` bytes per response. Concurrent requests
wait for one fetch. A failed fetch keeps the previous entry, and is not retried for the refresh
interval either.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jwt

from certgate.policy.errors import BackendError
from certgate.policy.sidecall import process_state, send


class OpenIdError(Exception):
    """The configuration or its keys could not be fetched or read (the message says why)."""


@dataclass(slots=True)
class Keys:
    """What one configuration URL gave: the issuer and its keys (`kid` may be None)."""

    issuer: str | None = None
    keys: tuple[tuple[str | None, Any], ...] = ()
    fetched: float = 0.0  # monotonic time of the last successful fetch
    tried: float = float("-inf")  # monotonic time of the last attempt
    error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def has(self, kid: str) -> bool:
        return any(key_id == kid for key_id, _ in self.keys)


async def signing_keys(context: Any, url: str, kid: str | None) -> Keys:
    """The entry for `url`, fetched when absent or stale, or refetched (rate-limited) when the
    token's `kid` is unknown. Raises `OpenIdError` when there is nothing usable."""
    limits = context.forwarder.limits
    entries: OrderedDict[str, Keys] = process_state(context, "openid", OrderedDict)
    entry = entries.get(url)
    if entry is None:
        entry = entries[url] = Keys()
        while len(entries) > limits.openid_documents:
            entries.popitem(last=False)
    else:
        entries.move_to_end(url)
    now = time.monotonic()
    stale = not entry.keys or now - entry.fetched >= limits.openid_config_ttl
    unknown = kid is not None and not entry.has(kid)
    if (stale or unknown) and now - entry.tried >= limits.openid_refresh_interval:
        async with entry.lock:
            if entry.tried < now:  # nobody fetched while this request waited
                await _refresh(context, url, entry)
    if not entry.keys:
        raise OpenIdError(entry.error or "no signing keys")
    return entry


async def _refresh(context: Any, url: str, entry: Keys) -> None:
    entry.tried = time.monotonic()
    try:
        document = await _json(context, url)
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise OpenIdError("the openid-config document has no 'jwks_uri'")
        keys = _keys(await _json(context, jwks_uri))
    except OpenIdError as exc:
        entry.error = str(exc)
        return
    issuer = document.get("issuer")
    entry.issuer = issuer if isinstance(issuer, str) else None
    entry.keys = keys
    entry.fetched = time.monotonic()
    entry.error = None


async def _json(context: Any, url: str) -> dict:
    limits = context.forwarder.limits
    try:
        response = await send(
            context, url, timeout=limits.openid_timeout, limit=limits.max_openid_bytes
        )
    except BackendError as exc:
        raise OpenIdError(f"{url.partition('?')[0]}: {exc.message}") from None
    if response.StatusCode != 200:
        raise OpenIdError(f"{url.partition('?')[0]} answered {response.StatusCode}")
    try:
        data = json.loads(response.Body.As(type_arg="byte[]"))
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise OpenIdError(f"{url.partition('?')[0]} did not answer a JSON object")
    return data


def _keys(jwks: dict) -> tuple[tuple[str | None, Any], ...]:
    """The signature keys of a JWK set; encryption keys and kinds PyJWT cannot use are skipped."""
    found = []
    for item in jwks.get("keys") or ():
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(item).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        kid = item.get("kid")
        found.append((kid if isinstance(kid, str) else None, key))
    if not found:
        raise OpenIdError("the key set has no usable signing key")
    return tuple(found)
