"""The `caches/{cacheId}` kind: APIM's external cache entity (a Redis-compatible cache).

`connectionString` is a sealed secret: responses show it as `*****`, and a write that sends
`*****` (or nothing) back for an existing cache keeps the stored value, so GET -> edit -> PUT
round-trips. It is checked when written (`certgate.policy.stores.connection_url`); errors name the
field and the problem, never the value. One cache per `useFromLocation`; the gateway uses the
cache whose `useFromLocation` is `default` (certgate has no regions), instead of `--redis-url`.
"""

from __future__ import annotations

from typing import Literal, overload

from certgate.config.store import Resource
from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register
from certgate.policy.stores import connection_url

MASK = "*****"
DEFAULT_LOCATION = "default"

_SCHEMA = {
    "type": "object",
    "properties": {
        "connectionString": {"type": "string", "maxLength": 2000},
        "useFromLocation": {"type": "string", "maxLength": 256},
        "description": {"type": "string", "maxLength": 2000},
        "resourceId": {"type": "string", "maxLength": 2000},
    },
    "required": ["connectionString", "useFromLocation"],
}


@overload
def _text(props: dict, name: str, max_length: int, *, required: Literal[True]) -> str: ...
@overload
def _text(props: dict, name: str, max_length: int, *, required: bool = False) -> str | None: ...
def _text(props: dict, name: str, max_length: int, *, required: bool = False) -> str | None:
    value = props.get(name)
    if value is None:
        if required:
            raise ValidationError(f"'{name}' is required.", name)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationError(f"'{name}' must be a non-empty string.", name)
    if len(value) > max_length:
        raise ValidationError(f"'{name}' must be at most {max_length} characters.", name)
    return value


def validate(request: WriteRequest) -> Validated:
    props = request.properties
    connection = props.get("connectionString")
    if connection in (None, MASK) and request.current is not None:
        connection = request.current.secrets.get("connectionString")
    connection = _text({"connectionString": connection}, "connectionString", 2000, required=True)
    try:
        connection_url(connection)
    except ValueError as exc:
        raise ValidationError(
            f"'connectionString' is not usable: {exc}.", "connectionString"
        ) from None
    location = _text(props, "useFromLocation", 256, required=True)
    for other in request.store.list("cache"):
        if other.path != request.path and other.properties["useFromLocation"] == location:
            raise ValidationError(
                f"'useFromLocation': cache '{other.name}' is already used from '{location}'.",
                "useFromLocation",
            )
    public = {"useFromLocation": location}
    for name in ("description", "resourceId"):
        value = _text(props, name, 2000)
        if value is not None:
            public[name] = value
    return Validated(public, secrets={"connectionString": connection})


def present(resource: Resource) -> dict:
    return {**resource.properties, "connectionString": MASK}


def default_cache_url(resources: list[Resource]) -> str | None:
    """The Redis URL of the cache the gateway uses (`useFromLocation` `default`), or None."""
    for resource in resources:
        if resource.properties["useFromLocation"] == DEFAULT_LOCATION:
            return connection_url(resource.secrets["connectionString"])
    return None


CACHES = register(
    Kind(
        name="cache",
        pattern="caches/{cacheId}",
        arm_type="Microsoft.ApiManagement/service/caches",
        validate=validate,
        present=present,
        filter_fields={"name": "string", "useFromLocation": "string", "description": "string"},
        schema=_SCHEMA,
        description="External Redis-compatible caches for the cache policies and shared counters.",
    )
)
