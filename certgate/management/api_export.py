"""`GET apis/{id}?export=true&format=...`: an API as an OpenAPI 3 or Swagger 2 document.

The answer has APIM's shape, `{"id", "format", "value"}`. Inline formats (`openapi`,
`openapi+json`, `swagger`) put the document in `value` (YAML text for `openapi`); the `-link`
formats, the only ones the Azure SDK's `api_export.get` sends, put `{"link": url}` there. APIM's
link is a storage SAS URL valid for 5 minutes; certgate's is `/exports/<token>` on the management
API, fetched without the admin token: the token is the API name, format and expiry, signed with a
key derived from the admin token (so every management process accepts it), valid for
`--api-export-link-seconds`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from certgate.config.store import Store
from certgate.management.api_definitions import (
    EXPORT_FORMATS,
    EXPORT_RESULT_FORMATS,
    export_definition,
    render,
)
from certgate.management.errors import ApiError, not_found

MEDIA_TYPES = {"openapi": "application/yaml", "openapi+json": "application/json"}
KINDS = frozenset(EXPORT_FORMATS.values())


def export_key(admin_token: str) -> bytes:
    return hashlib.sha256(b"certgate api export link\0" + admin_token.encode()).digest()


def export_format(query: Mapping[str, str]) -> str:
    fmt = query.get("format", "")
    if fmt not in EXPORT_FORMATS:
        known = ", ".join(sorted(EXPORT_FORMATS))
        raise ApiError(
            400,
            "NotSupported" if fmt.startswith(("wsdl", "wadl", "graphql")) else "ValidationError",
            f"Export 'format' must be one of {known}.",
            target="format",
        )
    return fmt


def document(store: Store, api_path: str, kind: str) -> dict:
    api = store.get(api_path)
    if api is None or api.kind != "api":
        raise not_found(f"API '{api_path.rpartition('/')[2]}'")
    operations = [(row.name, row.properties) for row in store.list("operation", parent=api_path)]
    schemas = [row.properties for row in store.list("apiSchema", parent=api_path)]
    return export_definition(kind, api.properties, operations, schemas)


def export_result(
    store: Store, api_path: str, resource_id: str, fmt: str, base_url: str, key: bytes, ttl: int
) -> dict:
    """APIM's ApiExportResult for `fmt` (checked by `export_format`)."""
    kind = EXPORT_FORMATS[fmt]
    exported = document(store, api_path, kind)
    if fmt.endswith("-link"):
        token = sign(key, api_path.partition("/")[2], kind, int(time.time()) + ttl)
        value: object = {"link": f"{base_url.rstrip('/')}/exports/{token}"}
    elif kind == "openapi":
        value = render(kind, exported)
    else:
        value = exported
    return {"id": resource_id, "format": EXPORT_RESULT_FORMATS.get(fmt, fmt), "value": value}


def sign(key: bytes, api: str, kind: str, expires: int) -> str:
    claims = json.dumps({"api": api, "format": kind, "exp": expires}, separators=(",", ":"))
    body = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    mac = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def verify(key: bytes, token: str) -> tuple[str, str]:
    """(api name, document kind) of a valid, unexpired link token; 404 otherwise."""
    body, _, mac = token.partition(".")
    expected = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    gone = ApiError(404, "ResourceNotFound", "The export link is invalid or has expired.")
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise gone
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        api, kind, expires = claims["api"], claims["format"], int(claims["exp"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise gone from None
    if expires < time.time() or kind not in KINDS or not isinstance(api, str):
        raise gone
    return api, kind


def linked_document(store: Store, key: bytes, token: str) -> tuple[str, str]:
    """The text and media type a link token points at."""
    api, kind = verify(key, token)
    return render(kind, document(store, f"apis/{api}", kind)), MEDIA_TYPES.get(
        kind, "application/json"
    )
