"""Fetching a `-link` API definition (`format: openapi-link`) from a URL on the allow-list.

The management API fetching a URL a client names is a server-side request forgery risk, so it is
refused unless the URL is below a prefix given with `certgate serve --api-import-allow-url` (the
default is none: every link is refused). Redirects are not followed; the download is bounded in
time (`--api-import-link-timeout`) and size (`--management-max-body-bytes`, like an inline value).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.management.errors import ApiError, ValidationError


@dataclass(frozen=True)
class _Prefix:
    scheme: str
    netloc: str
    path: str


@dataclass(frozen=True)
class LinkPolicy:
    """The allow-list and bounds for `-link` imports (a process setting, like the limits)."""

    prefixes: tuple[_Prefix, ...] = ()
    timeout: float = DEFAULT_LIMITS.api_import_link_timeout
    max_bytes: int = DEFAULT_LIMITS.management_max_body_bytes


_policy = LinkPolicy()


def configure_import_links(allowed: list[str] | tuple[str, ...], limits: Limits) -> None:
    """Sets the URL prefixes `-link` imports may fetch from; `certgate serve` calls it."""
    global _policy
    _policy = LinkPolicy(
        tuple(_prefix(url) for url in allowed),
        limits.api_import_link_timeout,
        limits.management_max_body_bytes,
    )


def _prefix(url: str) -> _Prefix:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--api-import-allow-url needs an absolute http(s) URL, not '{url}'")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return _Prefix(parts.scheme, parts.netloc.lower(), path)


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    path = parts.path or "/"
    return any(
        parts.scheme == p.scheme and parts.netloc.lower() == p.netloc and path.startswith(p.path)
        for p in _policy.prefixes
    )


def fetch_definition(url: object) -> str:
    """The document at `url` (the `value` of a `-link` import); 400 naming `value` otherwise."""
    if not isinstance(url, str) or not url:
        raise ValidationError("'value' must be the URL of the definition.", "value")
    if not _allowed(url):
        raise ApiError(
            400,
            "LinkNotAllowed",
            "The definition URL is not on the import allow-list (certgate serve "
            "--api-import-allow-url); send the document inline instead.",
            target="value",
        )
    policy = _policy
    try:
        with (
            httpx.Client(timeout=policy.timeout, follow_redirects=False) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ValidationError(
                    f"Fetching the definition answered HTTP {response.status_code}.", "value"
                )
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > policy.max_bytes:
                    raise ValidationError(
                        f"The definition at the link exceeds {policy.max_bytes} bytes "
                        "(--management-max-body-bytes).",
                        "value",
                    )
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise ValidationError(
            f"Fetching the definition failed: {type(error).__name__}.", "value"
        ) from None
    try:
        return b"".join(chunks).decode()
    except UnicodeDecodeError:
        raise ValidationError("The definition at the link is not UTF-8.", "value") from None
