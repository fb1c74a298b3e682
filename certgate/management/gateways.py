"""APIM's self-hosted `gateways` resource: one per certgate node, and the CAs each node trusts.

`gateways/{gatewayId}` (ARM `Microsoft.ApiManagement/service/gateways`): properties
`locationData {name (required), city, district, countryOrRegion}` and `description`, as APIM.
Operators may create gateways first (PUT) and then start a node as one of them with
`certgate serve --node <gatewayId>`; a node whose gateway does not exist registers it at start
(`register_node`). GET adds what the node reports (certgate extension, read-only): `live` (some
worker of the node renewed its heartbeat in time), `heartbeat`, `revision` (the oldest revision a
live worker serves), `version`, `lastError` and `workers` (the rows of `GET /status`). A node that
stops heartbeating shows `live: false`; a gateway no node ever ran as shows `live: false` and
`heartbeat: null`.

`gateways/{gatewayId}/certificateAuthorities/{certificateId}` (ARM
`.../gateways/certificateAuthorities`): a stored certificate (`certificates/{certificateId}`) that
this gateway's node trusts for client certificates, `isTrusted` true as a trust anchor (Root),
false as an intermediate for chain building only. APIM's self-hosted gateways use only their own
CAs; certgate's nodes use the service's CA certificates plus their gateway's, so a single node keeps
working unchanged and a CA can be added for one node only (docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from certgate.config import status
from certgate.config.store import Store
from certgate.management.arm import check_id
from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register

log = logging.getLogger("certgate.management")

GATEWAYS = "gateways"
LOCATION_FIELDS = {"name": 256, "city": 256, "district": 256, "countryOrRegion": 256}
MAX_DESCRIPTION = 1000


def _text(value: object, field: str, limit: int, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        wanted = "a non-empty string" if required else "a string"
        raise ValidationError(f"'{field}' must be {wanted}.", field)
    if len(value) > limit:
        raise ValidationError(f"'{field}' must be at most {limit} characters.", field)
    return value


def validate_gateway(request: WriteRequest) -> Validated:
    properties = request.properties
    location = properties.get("locationData")
    if not isinstance(location, dict):
        raise ValidationError("'locationData' is required: {\"name\": ...}.", "locationData")
    stored_location = {}
    for name, limit in LOCATION_FIELDS.items():
        value = _text(location.get(name), f"locationData.{name}", limit, required=name == "name")
        if value is not None:
            stored_location[name] = value
    stored: dict[str, Any] = {"locationData": stored_location}
    description = _text(properties.get("description"), "description", MAX_DESCRIPTION)
    if description is not None:
        stored["description"] = description
    return Validated(stored)


def observe_nodes(store: Store) -> Mapping[str, dict]:
    """What each node reports, keyed by the gateway path its node name designates."""
    now = status.now()
    by_node: dict[str, list[status.WorkerStatus]] = {}
    for row in status.read_all(store.engine):
        by_node.setdefault(row.node.casefold(), []).append(row)
    observed = {}
    for name in store.names_in(GATEWAYS):
        rows = by_node.get(name.casefold(), [])
        observed[f"{GATEWAYS}/{name}"] = _node_properties(rows, now)
    return observed


def _node_properties(rows: list[status.WorkerStatus], now) -> dict:
    live = [row for row in rows if row.live(now)]
    latest = max(rows, key=lambda row: row.heartbeat, default=None)
    failing = [row for row in rows if row.error_message is not None]
    error = None
    if failing:
        last = max(failing, key=lambda row: row.error_revision or 0)
        error = {"message": last.error_message, "revision": last.error_revision}
    return {
        "live": bool(live),
        "heartbeat": status.iso(latest.heartbeat) if latest else None,
        "revision": min((row.revision for row in live), default=None),
        "version": latest.version if latest else None,
        "lastError": error,
        "workers": [row.as_json(now) for row in rows],
    }


def validate_certificate_authority(request: WriteRequest) -> Validated:
    trusted = request.properties.get("isTrusted", False)
    if not isinstance(trusted, bool):
        raise ValidationError("'isTrusted' must be true or false.", "isTrusted")
    certificate = f"certificates/{request.name}"
    if request.store.get(certificate) is None:
        raise ValidationError(
            f"certificate '{request.name}' does not exist: upload it to /certificates first.",
            "certificateId",
        )
    return Validated({"isTrusted": trusted}, references=[certificate])


def register_node(store: Store, node: str) -> None:
    """Creates `gateways/<node>` at a node's start unless a gateway of that name exists (any
    case); a node name that is not a valid gateway id is reported in `/status` only."""
    try:
        check_id("gatewayId", node)
    except ValidationError:
        log.warning("node name %r is not a valid gateway id: not listed in /gateways", node)
        return
    if any(name.casefold() == node.casefold() for name in store.names_in(GATEWAYS)):
        return
    store.put(GATEWAY.name, f"{GATEWAYS}/{node}", {"locationData": {"name": node}})


_LOCATION_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {name: {"type": "string", "maxLength": n} for name, n in LOCATION_FIELDS.items()},
}

GATEWAY = register(
    Kind(
        name="gateway",
        pattern="gateways/{gatewayId}",
        arm_type="Microsoft.ApiManagement/service/gateways",
        validate=validate_gateway,
        observe=observe_nodes,
        schema={
            "type": "object",
            "properties": {
                "locationData": _LOCATION_SCHEMA,
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
                "live": {"type": "boolean", "readOnly": True},
                "heartbeat": {"type": ["string", "null"], "readOnly": True},
                "revision": {"type": ["integer", "null"], "readOnly": True},
                "version": {"type": ["string", "null"], "readOnly": True},
                "lastError": {"type": ["object", "null"], "readOnly": True},
                "workers": {"type": "array", "readOnly": True},
            },
        },
        description="Self-hosted gateways: one per certgate node (--node), with its live status",
    )
)

GATEWAY_CERTIFICATE_AUTHORITY = register(
    Kind(
        name="gatewayCertificateAuthority",
        title="GatewayCertificateAuthority",
        pattern="gateways/{gatewayId}/certificateAuthorities/{certificateId}",
        arm_type="Microsoft.ApiManagement/service/gateways/certificateAuthorities",
        validate=validate_certificate_authority,
        link_to="certificates",
        filter_fields={"name": "string", "isTrusted": "bool"},
        schema={"type": "object", "properties": {"isTrusted": {"type": "boolean"}}},
        description="CA certificates one gateway (node) trusts for client certificates",
    )
)
