"""The `gateways` kind (APIM's self-hosted gateways, one per node) and its certificateAuthorities,
through the real HTTPS management API: shapes, live status from the worker rows, refusals."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from certgate import __version__
from certgate.config import status
from certgate.management.gateways import register_node
from tests import pki

ARM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/gw"
LOCATION = {"name": "Frankfurt rack 2", "city": "Frankfurt", "countryOrRegion": "DE"}


def _row(node: str, worker: str, revision: int, *, expires_in: float, error=None):
    now = status.now()
    return status.WorkerStatus(
        node=node,
        worker=worker,
        pid=1,
        revision=revision,
        error_message=error,
        error_revision=revision if error else None,
        started=now,
        heartbeat=now,
        expires=now + dt.timedelta(seconds=expires_in),
        version=__version__,
    )


def test_a_gateway_shows_what_its_node_reports(server, client):
    body = {"properties": {"locationData": LOCATION, "description": "edge"}}
    created = client.put("/gateways/edge-1", json=body)
    assert created.status_code == 201, created.text
    unseen = client.get("/gateways/edge-1").json()
    assert unseen["type"] == "Microsoft.ApiManagement/service/gateways"
    assert unseen["properties"]["locationData"] == LOCATION
    assert unseen["properties"]["live"] is False and unseen["properties"]["heartbeat"] is None
    status.report(server.store.engine, _row("edge-1", "0", 7, expires_in=60))
    status.report(server.store.engine, _row("edge-1", "1", 6, expires_in=60, error="boom"))
    seen = client.get(f"{ARM}/gateways/edge-1?api-version=2024-05-01").json()["properties"]
    assert seen["live"] is True and seen["revision"] == 6 and seen["version"] == __version__
    assert seen["lastError"] == {"message": "boom", "revision": 6}
    assert [w["worker"] for w in seen["workers"]] == ["0", "1"]
    for worker in ("0", "1"):
        status.report(server.store.engine, _row("edge-1", worker, 7, expires_in=-1))
    listed = client.get("/gateways").json()["value"]
    assert [(g["name"], g["properties"]["live"]) for g in listed] == [("edge-1", False)]


def test_a_node_registers_its_gateway_once_and_keeps_an_operators_one(server, client):
    client.put("/gateways/Edge-2", json={"properties": {"locationData": LOCATION}})
    register_node(server.store, "edge-2")  # the operator's gateway, named in another case
    register_node(server.store, "edge-3")
    register_node(server.store, "rack:7")  # ":" is not allowed in a gateway id
    gateways = {g["name"]: g["properties"] for g in client.get("/gateways").json()["value"]}
    assert set(gateways) == {"Edge-2", "edge-3"}
    assert gateways["Edge-2"]["locationData"] == LOCATION
    assert gateways["edge-3"]["locationData"] == {"name": "edge-3"}


@pytest.mark.parametrize(
    ("properties", "target"),
    [
        ({}, "locationData"),
        ({"locationData": {"city": "x"}}, "locationData.name"),
        ({"locationData": {"name": " "}}, "locationData.name"),
        ({"locationData": {"name": "x" * 257}}, "locationData.name"),
        ({"locationData": {"name": "x", "city": 5}}, "locationData.city"),
        ({"locationData": {"name": "x"}, "description": "d" * 1001}, "description"),
    ],
)
def test_bad_gateways_are_refused_naming_the_field(server, client, properties, target):
    refused = client.put("/gateways/bad", json={"properties": properties})
    assert refused.status_code == 400
    assert refused.json()["error"]["target"] == target
    assert server.store.get("gateways/bad") is None


def test_certificate_authorities_reference_stored_certificates(server, client):
    client.put("/gateways/edge", json={"properties": {"locationData": {"name": "edge"}}})
    missing = client.put("/gateways/edge/certificateAuthorities/ca1", json={"properties": {}})
    assert missing.status_code == 400 and missing.json()["error"]["target"] == "certificateId"
    der = base64.b64encode(pki.ca("Gateway CA").der).decode()
    assert client.put("/certificates/ca1", json={"properties": {"data": der}}).status_code == 201
    wrong = {"properties": {"isTrusted": "yes"}}
    refused = client.put("/gateways/edge/certificateAuthorities/ca1", json=wrong)
    assert refused.status_code == 400 and refused.json()["error"]["target"] == "isTrusted"
    linked = client.put("/gateways/edge/certificateAuthorities/ca1", json={"properties": {}})
    assert linked.status_code == 201 and linked.json()["properties"] == {"isTrusted": False}
    assert client.delete("/certificates/ca1", headers={"If-Match": "*"}).status_code == 409
    orphan = client.put("/gateways/none/certificateAuthorities/ca1", json={"properties": {}})
    assert orphan.status_code == 404
    assert client.delete("/gateways/edge", headers={"If-Match": "*"}).status_code in (200, 204)
    assert client.delete("/certificates/ca1", headers={"If-Match": "*"}).status_code in (200, 204)
