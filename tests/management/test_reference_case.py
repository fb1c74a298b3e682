"""Links and references by id in another case (ARM names are case-insensitive): each one takes the
stored spelling, so the reference index, cascades and delete protection see the stored resource."""

from __future__ import annotations

import base64

from tests import pki

POLICY = (
    "<policies><inbound><base/>{}</inbound><backend><base/></backend><outbound/><on-error/>"
    "</policies>"
)


def _ok(response) -> dict:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _certificate(client, name: str, issued: pki.Issued) -> None:
    data = base64.b64encode(issued.pfx("pw")).decode()
    _ok(client.put(f"/certificates/{name}", json={"properties": {"data": data, "password": "pw"}}))


def test_a_product_link_takes_the_api_spelling_and_goes_with_the_api(server, client):
    _ok(client.put("/apis/orders", json={"properties": {"path": "orders"}}))
    _ok(client.put("/products/p", json={"properties": {"displayName": "P"}}))
    linked = _ok(client.put("/products/p/apis/ORDERS", json={"properties": {}}))
    assert linked["name"] == "orders"
    assert server.store.get("products/p/apis/orders") is not None
    assert client.delete("/apis/Orders", headers={"If-Match": "*"}).status_code in (200, 204)
    assert server.store.get("products/p/apis/orders") is None


def test_a_gateway_authority_takes_the_certificate_spelling(server, client):
    ca = pki.ca("Reference Case CA")
    der = base64.b64encode(ca.der).decode()
    _ok(client.put("/certificates/edgeca", json={"properties": {"data": der}}))
    _ok(client.put("/gateways/edge", json={"properties": {"locationData": {"name": "edge"}}}))
    linked = _ok(
        client.put("/gateways/edge/certificateAuthorities/EdgeCA", json={"properties": {}})
    )
    assert linked["name"] == "edgeca"
    refused = client.delete("/certificates/edgeca", headers={"If-Match": "*"})
    assert refused.status_code == 409
    targets = [d["target"] for d in refused.json()["error"]["details"]]
    assert targets == ["gateways/edge/certificateAuthorities/edgeca"]


def test_policy_references_in_another_case_are_indexed_under_the_stored_id(server, client):
    root = pki.ca("Reference Case Root")
    _certificate(client, "issuer", root)
    _certificate(client, "jwtcert", root.issue("jwt-signer"))
    inbound = (
        "<validate-client-certificate><identities><identity issuer-certificate-id='ISSUER'/>"
        "</identities></validate-client-certificate>"
        "<validate-jwt header-name='Authorization'><issuer-signing-keys>"
        "<key certificate-id='JwtCert'/></issuer-signing-keys>"
        "<decryption-keys><key certificate-id='JWTCERT'/></decryption-keys></validate-jwt>"
    )
    _ok(client.put("/apis/a", json={"properties": {"path": "a"}}))
    _ok(
        client.put(
            "/apis/a/policies/policy", json={"properties": {"value": POLICY.format(inbound)}}
        )
    )
    assert server.store.references("apis/a/policies/policy") == [
        "apis/a",
        "certificates/issuer",
        "certificates/jwtcert",
    ]
    refused = client.delete("/certificates/issuer", headers={"If-Match": "*"})
    assert refused.status_code == 409
    assert refused.json()["error"]["details"][0]["target"] == "apis/a/policies/policy"


def test_a_missing_reference_is_still_refused_naming_it(client):
    _ok(client.put("/apis/b", json={"properties": {"path": "b"}}))
    document = POLICY.format("<set-backend-service backend-id='Nowhere'/>")
    refused = client.put("/apis/b/policies/policy", json={"properties": {"value": document}})
    assert refused.status_code == 400
    assert "Backend with id 'Nowhere' could not be found." in refused.json()["error"]["message"]
