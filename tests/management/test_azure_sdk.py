"""The acid test: Azure's own `azure-mgmt-apimanagement` SDK drives certgate's certificates."""

from __future__ import annotations

import base64
import time

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import CertificateCreateOrUpdateParameters

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
