"""The service resource: CA certificates, hostname configurations and client-certificate trust."""

from __future__ import annotations

import base64

from tests import pki

ARM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/gw"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_defaults(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["etag"]
    body = response.json()
    assert body["type"] == "Microsoft.ApiManagement/service"
    assert body["properties"]["certificates"] == []
    assert body["properties"]["hostnameConfigurations"] == []
    assert body["properties"]["clientCertificateTrust"] == {
        "useSystemRoots": True,
        "requireRevocationInformation": False,
    }


def test_ca_certificates_have_no_cap_and_round_trip(client):
    roots = [pki.ca(f"Root {n}") for n in range(11)]
    intermediate = roots[0].issue("Issuing CA", ca=True)
    entries = [{"storeName": "Root", "encodedCertificate": b64(r.der)} for r in roots]
    entries.append(
        {
            "storeName": "CertificateAuthority",
            "encodedCertificate": b64(intermediate.pfx("ca-pass")),
            "certificatePassword": "ca-pass",
        }
    )
    patched = client.patch("/", json={"properties": {"certificates": entries}})
    assert patched.status_code == 200, patched.text
    listed = patched.json()["properties"]["certificates"]
    assert len(listed) == 12
    assert listed[0]["certificate"]["subject"] == "CN=Root 0"
    assert listed[0]["certificate"]["thumbprint"] == roots[0].thumbprint
    assert listed[0]["certificate"]["expiry"].endswith("Z")
    assert listed[-1]["storeName"] == "CertificateAuthority"
    assert listed[-1]["certificate"]["thumbprint"] == intermediate.thumbprint
    assert "ca-pass" not in patched.text
    stored = client.get("/").json()["properties"]["certificates"]
    kept = client.patch("/", json={"properties": {"certificates": stored[:3]}})
    assert kept.status_code == 200
    assert [c["certificate"]["subject"] for c in kept.json()["properties"]["certificates"]] == [
        "CN=Root 0",
        "CN=Root 1",
        "CN=Root 2",
    ]


def test_ca_certificate_errors_name_the_entry(client):
    root = pki.ca("Some Root")
    cases = [
        ({"storeName": "My", "encodedCertificate": b64(root.der)}, "certificates[0].storeName"),
        ({"storeName": "Root", "encodedCertificate": "@@@"}, "certificates[0].encodedCertificate"),
        ({"storeName": "Root"}, "certificates[0].encodedCertificate"),
        (
            {
                "storeName": "Root",
                "encodedCertificate": b64(root.pfx("p")),
                "certificatePassword": "q",
            },
            "certificates[0].certificatePassword",
        ),
    ]
    for entry, target in cases:
        response = client.patch("/", json={"properties": {"certificates": [entry]}})
        assert response.status_code == 400, entry
        assert response.json()["error"]["details"][0]["target"] == target


def test_hostnames_reference_certificates(client):
    server_cert = pki.server(pki.ca("Host CA"), "api.example.test")
    client.put(
        "/certificates/tls",
        json={"properties": {"data": b64(server_cert.pfx("x")), "password": "x"}},
    )
    client.put("/certificates/public", json={"properties": {"data": b64(server_cert.der)}})
    hostnames = [
        {
            "type": "Proxy",
            "hostName": "api.example.test",
            "certificateId": f"{ARM}/certificates/tls",
            "negotiateClientCertificate": True,
        },
        {"type": "Proxy", "hostName": "localhost", "defaultSslBinding": True},
    ]
    response = client.patch(
        f"{ARM}?api-version=2024-05-01", json={"properties": {"hostnameConfigurations": hostnames}}
    )
    assert response.status_code == 200, response.text
    stored = response.json()["properties"]["hostnameConfigurations"]
    assert stored[0]["negotiateClientCertificate"] is True
    assert stored[0]["defaultSslBinding"] is False
    assert stored[1] == {
        "type": "Proxy",
        "hostName": "localhost",
        "negotiateClientCertificate": False,
        "defaultSslBinding": True,
    }
    refused = client.delete("/certificates/tls", headers={"If-Match": "*"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "CertificateInUse"
    assert [d["target"] for d in refused.json()["error"]["details"]] == ["service"]
    client.patch("/", json={"properties": {"hostnameConfigurations": hostnames[1:]}})
    assert client.delete("/certificates/tls", headers={"If-Match": "*"}).status_code == 200


def test_hostname_errors(client):
    keyless = pki.issue("keyless.example.test")
    client.put("/certificates/keyless", json={"properties": {"data": b64(keyless.der)}})
    cases = [
        (
            {"hostName": "a.test", "certificateId": "missing"},
            "Certificate with id 'missing' not found.",
        ),
        ({"hostName": "a.test", "certificateId": "keyless"}, "has no private key"),
        ({"type": "Management", "hostName": "a.test"}, "must be Proxy"),
        ({"hostName": "not a host"}, "not a valid host name"),
        ({"hostName": "a.test", "negotiateClientCertificate": "yes"}, "must be true or false"),
    ]
    for entry, message in cases:
        response = client.patch("/", json={"properties": {"hostnameConfigurations": [entry]}})
        assert response.status_code == 400, entry
        assert message in response.json()["error"]["message"]
    two_defaults = [{"hostName": h, "defaultSslBinding": True} for h in ("a.test", "b.test")]
    response = client.patch("/", json={"properties": {"hostnameConfigurations": two_defaults}})
    assert response.status_code == 400
    duplicate = [{"hostName": "a.test"}, {"hostName": "A.test"}]
    response = client.patch("/", json={"properties": {"hostnameConfigurations": duplicate}})
    assert "configured twice" in response.json()["error"]["message"]


def test_client_certificate_trust_and_etag(client):
    etag = client.get("/").headers["etag"]
    trust = {"useSystemRoots": False, "requireRevocationInformation": True}
    changed = client.patch(
        "/", json={"properties": {"clientCertificateTrust": trust}}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.json()["properties"]["clientCertificateTrust"] == trust
    stale = client.patch("/", json={"properties": {}}, headers={"If-Match": etag})
    assert stale.status_code == 412
    bad = client.patch("/", json={"properties": {"clientCertificateTrust": {"useSystemRoots": 1}}})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["target"] == "clientCertificateTrust.useSystemRoots"
    partial = client.patch(
        "/", json={"properties": {"clientCertificateTrust": {"useSystemRoots": True}}}
    )
    assert partial.json()["properties"]["clientCertificateTrust"] == {
        "useSystemRoots": True,
        "requireRevocationInformation": True,
    }
