"""The definition a PUT `apis/{id}` with `format` and `value` imports, within the process's bounds.

`-link` formats: the management API fetching a URL a client names is a server-side request forgery
risk, so it is refused unless the URL is below a prefix given with `certgate serve
--api-import-allow-url` (the default is none: every link is refused). Redirects are not followed;
the download is bounded in time (`--api-import-link-timeout`) and size
(`--management-max-body-bytes`, like an inline value). A definition may create at most
`--api-import-max-operations` operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.management.api_definitions import (
    LINK_FORMATS,
    Definition,
    check_format,
    parse_definition,
)
from certgate.management.errors import ApiError, ValidationError


@dataclass(frozen=True)
class _Prefix:
    scheme: str
    netloc: str
    path: str


@dataclass(frozen=True)
class ImportSettings:
    """The link allow-list and the bounds of imports (a process setting, like the limits)."""

    prefixes: tuple[_Prefix, ...] = ()
    timeout: float = DEFAULT_LIMITS.api_import_link_timeout
    max_bytes: int = DEFAULT_LIMITS.management_max_body_bytes
    max_operations: int = DEFAULT_LIMITS.api_import_max_operations


_policy = ImportSettings()


def configure_api_import(allowed: list[str] | tuple[str, ...], limits: Limits) -> None:
    """Sets the URL prefixes `-link` imports may fetch from, and the bounds; `serve` calls it."""
    global _policy
    _policy = ImportSettings(
        tuple(_prefix(url) for url in allowed),
        limits.api_import_link_timeout,
        limits.management_max_body_bytes,
        limits.api_import_max_operations,
    )


def imported_definition(props: dict, existing: list[str]) -> Definition:
    """The definition a PUT with `format` and `value` imports (fetched first for `-link`);
    `existing` are the API's operation names (an operationId naming one keeps it)."""
    fmt = check_format(props.get("format"))
    translate = props.get("translateRequiredQueryParameters", "template")
    if translate not in ("template", "query"):
        raise ValidationError(
            "'translateRequiredQueryParameters' must be 'template' or 'query'.",
            "translateRequiredQueryParameters",
        )
    value = props.get("value")
    if fmt in LINK_FORMATS:
        fmt, value = LINK_FORMATS[fmt], fetch_definition(value)
    elif not isinstance(value, str):
        raise ValidationError("'value' must be the definition document as a string.", "value")
    definition = parse_definition(fmt, value, existing, query_in_template=translate == "template")
    limit = _policy.max_operations
    if len(definition.operations) > limit:
        raise ValidationError(
            f"The definition has {len(definition.operations)} operations; at most {limit} "
            "can be imported (--api-import-max-operations).",
            "value",
        )
    return definition


def _prefix(url: str) -> _Prefix:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--api-import-allow-url needs an absolute http(s) URL, not '{url}'")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return _Prefix(parts.scheme, parts.netloc.lower(), path)


def _allowed(url: str) -> bool:
    """Below an allowed prefix; dot segments (`/specs/../admin`, also `%2e%2e`) are refused
    because HTTP clients resolve them and would leave the prefix."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if any(segment in (".", "..") for segment in unquote(path).split("/")):
        return False
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
