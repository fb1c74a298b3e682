"""The acid test: Azure's own `azure-mgmt-apimanagement` SDK drives certgate's resources."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
import yaml
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import (
    ApiCreateOrUpdateParameter,
    CertificateCreateOrUpdateParameters,
    GatewayCertificateAuthorityContract,
    GatewayContract,
    ResourceLocationDataContract,
)

from tests import pki


class StaticToken:
    """A credential that always presents the admin token (what `az` would get from Entra ID)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **options) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


@pytest.fixture(params=["2022-08-01", "2024-05-01"])
def sdk(server, request):
    with ApiManagementClient(
        StaticToken(server.token),
        "11111111-2222-3333-4444-555555555555",
        base_url=server.base_url,
        api_version=request.param,
        connection_verify=str(server.ca_file),
    ) as client:
        yield client


def test_sdk_creates_lists_reads_and_deletes(sdk):
    certificates = sdk.certificate
    issued = {name: pki.issue(f"{name}.sdk.example.test") for name in ("alpha", "beta", "gamma")}
    for name, cert in issued.items():
        contract = certificates.create_or_update(
            "rg",
            "apim",
            name,
            CertificateCreateOrUpdateParameters(
                data=base64.b64encode(cert.pfx("sdk-pass")).decode(), password="sdk-pass"
            ),
        )
        assert contract.thumbprint == cert.thumbprint
        assert contract.subject == f"CN={name}.sdk.example.test"
        assert contract.id.endswith(
            f"/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim/certificates/{name}"
        )

    everything = [c.name for c in certificates.list_by_service("rg", "apim", top=2)]
    assert everything == ["alpha", "beta", "gamma"]
    filtered = certificates.list_by_service("rg", "apim", filter="contains(subject,'beta')")
    assert [c.name for c in filtered] == ["beta"]

    read = certificates.get("rg", "apim", "gamma")
    assert read.thumbprint == issued["gamma"].thumbprint
    assert read.expiration_date.year == issued["gamma"].cert.not_valid_after_utc.year
    assert certificates.get_entity_tag("rg", "apim", "gamma") is True

    with pytest.raises(HttpResponseError) as refused:
        certificates.create_or_update(
            "rg",
            "apim",
            "bad",
            CertificateCreateOrUpdateParameters(
                data=base64.b64encode(issued["alpha"].pfx("sdk-pass")).decode(), password="nope"
            ),
        )
    assert refused.value.status_code == 400
    assert refused.value.error.code == "ValidationError"
    assert "password is wrong" in refused.value.error.message

    for name in issued:
        certificates.delete("rg", "apim", name, if_match="*")
    with pytest.raises(ResourceNotFoundError):
        certificates.get("rg", "apim", "alpha")
    assert list(certificates.list_by_service("rg", "apim")) == []


POLICY_XML = "<policies><inbound><base /></inbound><backend><base /></backend></policies>"
FRAGMENT_XML = "<fragment><set-header name='x'><value>1</value></set-header></fragment>"


def test_sdk_deletes_every_kind(sdk, client):
    """Each delete as the SDK sends it (begin_delete polls; product-API links send no If-Match)."""
    policy = {"properties": {"format": "xml", "value": POLICY_XML}}
    cert = pki.issue("delete.sdk.example.test")
    created = {
        "/apis/a": {"properties": {"path": "a"}},
        "/apis/a/operations/o": {"properties": {"method": "GET", "urlTemplate": "/o"}},
        "/apis/a/policies/policy": policy,
        "/apis/a/operations/o/policies/policy": policy,
        "/policies/policy": policy,
        "/products/p": {"properties": {"displayName": "P"}},
        "/products/p/policies/policy": policy,
        "/products/p/apis/a": {},
        "/backends/b": {"properties": {"url": "https://backend.example.test", "protocol": "http"}},
        "/namedValues/nv": {"properties": {"displayName": "nv", "value": "v"}},
        "/policyFragments/f": {"properties": {"format": "xml", "value": FRAGMENT_XML}},
        "/certificates/c": {
            "properties": {"data": base64.b64encode(cert.pfx("pw")).decode(), "password": "pw"}
        },
    }
    for path, body in created.items():
        response = client.put(path, json=body)
        assert response.status_code == 201, (path, response.text)

    rg, name = "rg", "apim"
    deletes = [
        ("/products/p/apis/a", lambda: sdk.product_api.delete(rg, name, "p", "a")),
        ("/products/p/policies/policy", lambda: sdk.product_policy.delete(rg, name, "p", "policy", "*")),  # noqa: E501
        ("/apis/a/operations/o/policies/policy",
         lambda: sdk.api_operation_policy.delete(rg, name, "a", "o", "policy", "*")),
        ("/apis/a/policies/policy", lambda: sdk.api_policy.delete(rg, name, "a", "policy", "*")),
        ("/policies/policy", lambda: sdk.policy.delete(rg, name, "policy", "*")),
        ("/apis/a/operations/o", lambda: sdk.api_operation.delete(rg, name, "a", "o", "*")),
        ("/apis/a", lambda: sdk.api.begin_delete(rg, name, "a", "*").result()),
        ("/products/p", lambda: sdk.product.delete(rg, name, "p", "*")),
        ("/backends/b", lambda: sdk.backend.delete(rg, name, "b", "*")),
        ("/namedValues/nv", lambda: sdk.named_value.delete(rg, name, "nv", "*")),
        ("/policyFragments/f", lambda: sdk.policy_fragment.delete(rg, name, "f", "*")),
        ("/certificates/c", lambda: sdk.certificate.delete(rg, name, "c", "*")),
    ]  # fmt: skip
    for path, delete in deletes:
        delete()
        assert client.get(path).status_code == 404, path


PETS_OPENAPI = """
openapi: 3.0.1
info: {title: Pets, version: "1"}
servers: [{url: "https://pets.sdk.example.test"}]
paths:
  /pets/{petId}:
    get:
      operationId: getPet
      parameters: [{name: petId, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
"""


def test_sdk_imports_and_exports_an_openapi_definition(sdk, server):
    """`begin_create_or_update` with format/value imports; `api_export.get` gives a link."""
    poller = sdk.api.begin_create_or_update(
        "rg",
        "apim",
        "pets",
        ApiCreateOrUpdateParameter(path="pets", format="openapi", value=PETS_OPENAPI),
    )
    api = poller.result()
    assert api.service_url == "https://pets.sdk.example.test"
    assert api.display_name == "Pets"
    operations = list(sdk.api_operation.list_by_api("rg", "apim", "pets"))
    assert [(o.name, o.method, o.url_template) for o in operations] == [
        ("getpet", "GET", "/pets/{petId}")
    ]
    assert operations[0].template_parameters[0].name == "petId"

    exported = sdk.api_export.get("rg", "apim", "pets", format="openapi-link", export="true")
    assert exported.export_result_format == "openapi-link"
    assert exported.id.endswith("/service/apim/apis/pets")
    with httpx.Client(verify=server.ssl_context()) as anonymous:
        document = yaml.safe_load(anonymous.get(exported.value.link).text)
    assert document["paths"]["/pets/{petId}"]["get"]["operationId"] == "getpet"
    assert document["servers"] == [{"url": "https://pets.sdk.example.test"}]

    with pytest.raises(HttpResponseError) as refused:
        sdk.api.begin_create_or_update(
            "rg",
            "apim",
            "soap",
            ApiCreateOrUpdateParameter(path="soap", format="wsdl", value="<definitions/>"),
        ).result()
    assert refused.value.status_code == 400 and refused.value.error.code == "NotSupported"


def test_sdk_manages_gateways_and_their_certificate_authorities(sdk, client):
    """APIM's self-hosted gateways as the SDK sends them: a gateway, then a CA it trusts."""
    location = ResourceLocationDataContract(name="rack 2", city="Frankfurt", country_or_region="DE")
    contract = GatewayContract(location_data=location, description="edge node")
    created = sdk.gateway.create_or_update("rg", "apim", "edge-1", contract)
    assert created.location_data.city == "Frankfurt" and created.description == "edge node"
    assert created.id.endswith("/service/apim/gateways/edge-1")
    assert [g.name for g in sdk.gateway.list_by_service("rg", "apim")] == ["edge-1"]
    cert = pki.ca("SDK gateway CA")
    body = {"properties": {"data": base64.b64encode(cert.der).decode()}}
    assert client.put("/certificates/gwca", json=body).status_code == 201
    authorities = sdk.gateway_certificate_authority
    trusted = GatewayCertificateAuthorityContract(is_trusted=True)
    assert authorities.create_or_update("rg", "apim", "edge-1", "gwca", trusted).is_trusted
    listed = authorities.list_by_service("rg", "apim", "edge-1")
    assert [(ca.name, ca.is_trusted) for ca in listed] == [("gwca", True)]
    authorities.delete("rg", "apim", "edge-1", "gwca", if_match="*")
    sdk.gateway.delete("rg", "apim", "edge-1", if_match="*")
    with pytest.raises(ResourceNotFoundError):
        sdk.gateway.get("rg", "apim", "edge-1")
    assert client.delete("/certificates/gwca", headers={"If-Match": "*"}).status_code in (200, 204)
